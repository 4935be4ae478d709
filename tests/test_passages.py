"""index.passages: one passage per paragraph, long ones cut at sentences, shared ones merged, IDs from content."""

from __future__ import annotations

import asyncio

import re
import sqlite3
from pathlib import Path

import pytest

from index.analysis import SentenceSplitter
from index.build import rebuild
from index.corpus import Article, Paragraph
from index.passages import ID_LENGTH, MAX_PASSAGE_CHARS, assign_ids, make_passages, passage_key, short_id

ID = re.compile(rf"[a-z2-7]{{{ID_LENGTH}}}")


def stored_passages(db: Path) -> dict[str, str]:
    """text -> id, read straight from the SQLite file."""
    with sqlite3.connect(db) as conn:
        return {text: pid for pid, text in conn.execute("SELECT id, text FROM passages")}


def places(db: Path, passage_id: str) -> list[tuple[str, int, int]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT source, paragraph, part FROM occurrences WHERE passage_id = ?", (passage_id,)))


def test_ids_are_short_base32_and_derived_from_the_text(seed_db):
    passages = stored_passages(seed_db)
    assert len(passages) > 100
    for text, pid in passages.items():
        assert ID.fullmatch(pid), pid
        assert pid == short_id(passage_key(text))


@pytest.mark.asyncio
async def test_ids_are_the_same_in_another_database(seed_db, tmp_path, corpus_copy):
    await asyncio.to_thread(rebuild, tmp_path / "other.db", corpus_copy)
    assert stored_passages(tmp_path / "other.db") == stored_passages(seed_db)


def test_short_id_is_a_prefix_of_the_key_in_base32():
    key = passage_key("Russia vetoed a UN Security Council statement.")
    assert short_id(key) == short_id(key, ID_LENGTH + 3)[:ID_LENGTH]
    assert ID.fullmatch(short_id(key))


# -- the same paragraph in several articles --------------------------------------------------------


def test_paragraph_shared_by_two_articles_is_one_passage_citing_both(seed_db):
    passages = stored_passages(seed_db)
    shared = [text for text in passages if text.startswith("\u201cPFG accused Egypt and the UAE of bombing")]
    assert len(shared) == 1
    assert places(seed_db, passages[shared[0]]) == [
        ("001_b8dd3071ee1f5b21.txt", 16, 1),
        ("002_8b0c8cfba84b287d.txt", 20, 1),
    ]


def test_no_text_is_stored_twice_and_every_shared_paragraph_lists_every_article(seed_db):
    with sqlite3.connect(seed_db) as conn:
        duplicates = conn.execute("SELECT text FROM passages GROUP BY text HAVING count(*) > 1").fetchall()
        shared = conn.execute("""SELECT passage_id, count(DISTINCT source) FROM occurrences
                                 GROUP BY passage_id HAVING count(DISTINCT source) > 1""").fetchall()
    assert duplicates == []
    # 001 and 002 print several paragraphs word for word (the PFG, border and oil-tanker paragraphs).
    assert len(shared) >= 5
    assert all(sources == 2 for _, sources in shared)


def test_make_passages_merges_identical_paragraphs():
    common = "The same wire paragraph, reprinted word for word."
    first = Article("a.txt", "a.txt", "A", [Paragraph("Only in A."), Paragraph(common)])
    second = Article("b.txt", "b.txt", "B", [Paragraph(common, section="Wire"), Paragraph("Only in B.")])
    passages = make_passages([first, second], SentenceSplitter())
    assert [p.text for p in passages] == ["Only in A.", common, "Only in B."]
    merged = passages[1]
    assert merged.key == passage_key(common)
    assert [(o.source, o.paragraph, o.part, o.section) for o in merged.occurrences] == [
        ("a.txt", 2, 1, None), ("b.txt", 1, 1, "Wire")]


# -- long paragraphs -------------------------------------------------------------------------------


def long_paragraph() -> str:
    """60 sentences with abbreviations, curly quotes and NBSP; the last words vary, so Punkt trained on it
    does not take a sentence's last word for an abbreviation."""
    places = ["coast", "border", "port", "capital", "airfield", "desert", "harbour", "valley", "ridge", "bridge"]
    sentences = [
        f"In round {i} Gen. Haftar\u2019s envoy met the U.N. team near the {places[i % 10]} and the "
        f"{places[(i + 3) % 10]}, and \u201cthe talks on the {places[(i + 5) % 10]}\u201d went on\u00a0until "
        f"the {places[(i + 7) % 10]}."
        for i in range(1, 61)
    ]
    return " ".join(sentences)


def test_long_paragraph_is_cut_at_sentences_into_verbatim_parts():
    text = long_paragraph()
    assert len(text) > 3 * MAX_PASSAGE_CHARS
    splitter = SentenceSplitter()
    article = Article("long.txt", "long.txt", "Long", [Paragraph("Short first."), Paragraph(text)])
    passages = make_passages([article], splitter)
    parts = [p for p in passages if p.occurrences[0].paragraph == 2]
    assert len(parts) >= 3
    assert [p.occurrences[0].part for p in parts] == list(range(1, len(parts) + 1))
    sentence_starts = {s for s, _ in splitter.spans(text)}
    sentence_ends = {e for _, e in splitter.spans(text)}
    position = 0
    for part in parts:
        assert len(part.text) <= MAX_PASSAGE_CHARS
        start = text.index(part.text, position)         # verbatim, and in order
        assert start in sentence_starts and start + len(part.text) in sentence_ends
        assert text[position:start].strip() == ""       # nothing between parts but whitespace
        position = start + len(part.text)
    assert position == len(text)
    assert splitter.split(" ".join(p.text for p in parts)) == splitter.split(text)


@pytest.mark.asyncio
async def test_long_paragraph_parts_are_stored_as_parts_of_one_paragraph(tmp_path, db_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = long_paragraph()
    (corpus / "long.txt").write_text(f"A long report\n\nA short opening paragraph.\n\n{text}\n", encoding="utf-8")
    await asyncio.to_thread(rebuild, db_file, corpus)
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute("""SELECT o.paragraph, o.part, p.text FROM occurrences o JOIN passages p ON p.id = o.passage_id
                               ORDER BY o.paragraph, o.part""").fetchall()
    assert rows[0] == (1, 1, "A short opening paragraph.")
    parts = rows[1:]
    assert len(parts) >= 3
    assert [(paragraph, part) for paragraph, part, _ in parts] == [(2, i) for i in range(1, len(parts) + 1)]
    assert all(piece in text and len(piece) <= MAX_PASSAGE_CHARS for _, _, piece in parts)


# -- ID collisions ---------------------------------------------------------------------------------


def test_colliding_prefix_gets_a_longer_id():
    # Two keys equal in their first 39 bits share the 7-character prefix and differ at the 8th character.
    first = "00" * 32
    second = "00" * 4 + "01" + "00" * 27
    assert short_id(first) == short_id(second)
    ids = assign_ids([first, second], known={}, taken=set())
    assert ids[first] == short_id(first)
    assert ids[second] == short_id(second, ID_LENGTH + 1) != short_id(first, ID_LENGTH + 1)
    assert len(ids[second]) == ID_LENGTH + 1


def test_an_id_already_held_in_the_index_is_never_reused():
    held = "00" * 32
    newcomer = "00" * 4 + "01" + "00" * 27
    taken = {short_id(held)}
    ids = assign_ids([newcomer], known={}, taken=taken)
    assert ids[newcomer] not in {short_id(held)}
    assert ids[newcomer].startswith(short_id(held))
    assert ids[newcomer] in taken


def test_known_passages_keep_their_ids():
    key = passage_key("Already indexed.")
    assert assign_ids([key], known={key: "abcdefg"}, taken={"abcdefg"}) == {}
