"""The answer path reads what the build stored: layouts give the quotes the analyzer and Punkt would give on
the spot, a database from before layouts answers alike and gets them at its next build, and the records an
answer shows are never those of a build that was replaced."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import index.build
import index.compiled
import index.desk
from index.desk import Newsdesk
from index.quotes import QUOTE_CHARS, LayoutMaker, TextLayout, quote_of, select_quote
from index.render import answer_markdown
from index.store import Reader

pytestmark = pytest.mark.asyncio

QUESTIONS = ["Which countries bombed the PFG?", "who leads the LNA?", "Haftar Cairo emergency meeting",
             "Russia Moscow Putin", "oil terminals Ras Lanuf"]


def as_schema_2(db: Path) -> None:
    """Make the file what schema 2 left: passages without the layout column, no layouts recorded."""
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(f"""
            CREATE TABLE old (id TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE, text TEXT NOT NULL, tokens TEXT NOT NULL);
            INSERT INTO old SELECT id, key, text, tokens FROM passages;
            DROP TABLE passages;
            ALTER TABLE old RENAME TO passages;
            DELETE FROM index_blobs WHERE name = '{index.compiled._LAYOUTS}';
            PRAGMA user_version = 2;""")


def rows(db: Path) -> list[tuple[str, str, str, bytes | None]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT id, text, tokens, layout FROM passages").fetchall()


async def rendered(db: Path, corpus: Path) -> list[str]:
    """The answers to QUESTIONS as printed, without the footer (which names the build)."""
    async with await Newsdesk.open(db, corpus, build_if_missing=False) as desk:
        return [answer_markdown(await desk.ask(q, k=5)).rsplit("\n\n-# ", 1)[0] for q in QUESTIONS]


def with_long_paragraphs(corpus: Path) -> Path:
    """The shipped articles plus one more of long paragraphs: four of the shipped ones joined at a time,
    real sentences past QUOTE_CHARS, quoted in part."""
    paragraphs = [p for f in sorted(corpus.glob("*.txt")) for p in f.read_text(encoding="utf-8").split("\n\n")[1:]]
    joined = [" ".join(p.strip() for p in paragraphs[i:i + 4]) for i in range(0, len(paragraphs) - 3, 4)]
    (corpus / "900_joined.txt").write_text("Joined paragraphs\n\n" + "\n\n".join(joined) + "\n", encoding="utf-8")
    return corpus


async def test_every_stored_layout_quotes_the_shipped_corpus_as_the_analyzer_and_punkt_would(db_file, corpus_copy):
    async with await Newsdesk.open(db_file, with_long_paragraphs(corpus_copy)) as desk:
        assert desk.searcher is not None
        analyzer, splitter = desk.searcher.analyzer, desk.searcher.splitter
    stored = rows(db_file)
    long = 0
    for _, text, tokens, data in stored:
        layout = TextLayout.from_bytes(data, tokens)
        assert layout is not None
        assert layout.words(text) == analyzer.word_spans(text)
        assert layout.sentences == (tuple(splitter.spans(text)) if len(text) > QUOTE_CHARS else None)
        terms = tokens.split()
        for chosen in (terms[::3], terms[1::7], terms[-2:], []):
            quote = quote_of(text, layout, chosen)
            assert quote == select_quote(text, chosen, analyzer, splitter)
            assert quote.is_verbatim(text)
        long += len(text) > QUOTE_CHARS
    assert len(stored) > 100 and long >= 10       # long passages: their stored sentences are read


async def test_layouts_place_words_right_past_odd_whitespace_long_chunks_and_repeated_contexts(seed_db, seed_index):
    """Stored layouts place words inside their whitespace chunk and the chunks are found again in the text:
    tabs, newlines, no-break and ideographic spaces, leading and trailing blanks, chunks without words; a chunk too long for the
    one-byte encoding (a long URL) takes the two-byte one; chunks met before reuse their bytes."""
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        assert desk.searcher is not None
        analyzer, splitter = desk.searcher.analyzer, desk.searcher.splitter
    texts = sorted((text for _, text, _, _ in rows(seed_db)), key=len)[-40:]
    odd = [" \t" + texts[0].replace(" ", "\u00a0", 5).replace(". ", ".\n\n", 3) + "\u3000 ",
           "See https://example.org/" + "long-path-" * 40 + " for Haftar's (LNA) reply.  " + texts[1],
           "U.N.-backed\tGNA—Tripoli’s “government” said — ... 3,000 fled (\u00bd of them).", "", "   "]
    make = LayoutMaker(analyzer, splitter)
    for text in odd + texts + texts:           # twice: the second pass finds every chunk encoded
        tokens = " ".join(analyzer.tokenize(text))
        data = make(text)
        layout = TextLayout.from_bytes(data, tokens)
        assert layout is not None
        assert layout.words(text) == analyzer.word_spans(text)
        assert layout.sentences == (tuple(splitter.spans(text)) if len(text) > QUOTE_CHARS else None)
        for chosen in (tokens.split()[::2], tokens.split()[-3:]):
            assert quote_of(text, layout, chosen) == select_quote(text, chosen, analyzer, splitter)
    assert make(odd[1])[1] == 2                # the long URL's passage took the two-byte layout


async def test_a_database_from_before_layouts_answers_alike_and_its_next_build_lays_out_every_passage(
        seed_db, seed_index):
    before = await rendered(seed_db, seed_index.corpus)
    as_schema_2(seed_db)
    assert await rendered(seed_db, seed_index.corpus) == before       # laid out on the spot

    built = await asyncio.to_thread(index.build.rebuild, seed_db, seed_index.corpus)
    assert built.searcher is not None                    # recompiled, to record that layouts are current
    assert str(built.report.passage_changes) == "+0 ~0 -0"
    assert all(TextLayout.from_bytes(data, tokens) is not None for _, _, tokens, data in rows(seed_db))
    assert await rendered(seed_db, seed_index.corpus) == before

    again = await asyncio.to_thread(index.build.rebuild, seed_db, seed_index.corpus)
    assert again.searcher is None                        # layouts current: nothing to recompile


async def test_answers_read_no_row_through_aiosqlite(seed_db, seed_index, monkeypatch):
    async def refused(self, ids):
        raise AssertionError("an answer read its records through aiosqlite")

    monkeypatch.setattr(Reader, "passages", refused)
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        for question in QUESTIONS + QUESTIONS:           # the second time from the cache
            assert (await desk.ask(question)).results


def retitle(corpus: Path, name: str, title: str) -> None:
    path = corpus / name
    _, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(f"{title}\n{rest}", encoding="utf-8")


PFG_FILE = "000_baf13ccadf848008.txt"


async def titles_of_answer(desk: Newsdesk) -> set[str]:
    answer = await desk.ask("Haftar Cairo emergency military meeting", k=3)
    return {r.record.places[0].article.title for r in answer.results}


async def test_a_rebuild_by_the_desk_replaces_the_cached_records(seed_db, corpus_copy):
    async with await Newsdesk.open(seed_db, corpus_copy, build_if_missing=False) as desk:
        first = await titles_of_answer(desk)
        assert any(t.startswith("Haftar to attend") for t in first)
        retitle(corpus_copy, PFG_FILE, "Renamed dispatch from Cairo")
        report = await desk.rebuild()
        assert report.passage_changes.added == 0          # the same passages, under a new title
        titles = await titles_of_answer(desk)
    assert "Renamed dispatch from Cairo" in titles and not any(t.startswith("Haftar to attend") for t in titles)


async def test_a_build_another_writer_commits_is_served_before_the_desk_reloads(seed_db, corpus_copy, monkeypatch):
    monkeypatch.setattr(index.desk, "REFRESH_EVERY_S", 3600.0)      # the desk does not notice it by itself
    async with await Newsdesk.open(seed_db, corpus_copy, build_if_missing=False) as desk:
        assert any(t.startswith("Haftar to attend") for t in await titles_of_answer(desk))
        retitle(corpus_copy, PFG_FILE, "Renamed dispatch from Cairo")
        await asyncio.to_thread(index.build.rebuild, seed_db, corpus_copy)   # as `newsdesk index build` does
        titles = await titles_of_answer(desk)
        assert desk.build is not None and desk.build.id == 1    # still the old searcher...
    assert "Renamed dispatch from Cairo" in titles          # ...but not the old build's cached records
