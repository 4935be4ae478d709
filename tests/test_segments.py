"""Segments (index/segments.py): a build that changes a few articles writes a delta beside the whole compile.

Real builds on real files: a generated corpus of 3,000 passages plus the shipped articles, then one article
added, one edited and one removed. Every check compares the segmented index with the same database merged
(compiled whole), which a build from scratch matches exactly.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index import segments
from index.build import merge, rebuild
from index.compiled import from_blobs
from index.desk import Newsdesk
from index.search import Searcher
from index.segments import AVGDL_DRIFT, SegmentedArticles, SegmentedIndex, drift
from index.store import Writer
from tests.synthetic import write_articles

SHIPPED = Path(__file__).resolve().parent.parent / "corpus"
QUESTIONS = ["which countries bombed the PFG?", "who seized the oil terminal near Ras Lanuf", "Petroleum Facilities Guards",
             "kalo mira", "edited dispatch", "Generated dispatch 7", "Haftar LNA Tripoli", "turkey drones"]
NEW_ARTICLE = "Guards seized the port\n\n" + "\n\n".join(
    f"The Petroleum Facilities Guards (PFG) seized oil terminal number {i} near Ras Lanuf, officials said, "
    f"and a zorblatt was seen." for i in range(20)) + "\n\nThe Quorvish Oversight Council (QOC) met the guards."


def _stored(db: Path) -> Searcher:
    writer = Writer.open(db)
    try:
        return from_blobs(writer.index_blobs())
    finally:
        writer.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A base build, then a build that adds, edits and removes an article; and the same database merged."""
    root = tmp_path_factory.mktemp("segments")
    corpus = write_articles(root / "corpus", 3000, seed=3)
    for f in SHIPPED.iterdir():
        shutil.copy(f, corpus / f.name)
    (corpus / "gone.txt").write_text("A story withdrawn\n\nThe florbnax report was withdrawn by its authors.")
    db = root / "news.db"
    first = rebuild(db, corpus)
    removed = sorted(corpus.glob("gen_*.txt"))[1]
    removed_text = removed.read_text()
    (corpus / "new.txt").write_text(NEW_ARTICLE)
    edited = sorted(corpus.glob("gen_*.txt"))[0]
    edited.write_text(edited.read_text().replace("Generated", "Edited", 1))
    removed.unlink()
    (corpus / "gone.txt").unlink()
    second = rebuild(db, corpus)
    merged_db = root / "merged.db"
    shutil.copy(db, merged_db)
    merged = merge(merged_db, corpus)
    return {"root": root, "corpus": corpus, "db": db, "first": first, "second": second, "merged": merged,
            "segmented": _stored(db), "whole": _stored(merged_db), "removed_text": removed_text}


def _live_scores(searcher: Searcher, question: str) -> dict[str, float]:
    """Every live passage's BM25 score for a question, by passage ID."""
    index = searcher.index
    weights = {index.term_ids[t]: 1.0 for t in searcher.analyzer.tokenize(question) if t in index.term_ids}
    scores = index.scores(weights)
    out = {}
    for doc, pid in enumerate(searcher.passage_ids):
        if isinstance(index, SegmentedIndex) and doc < index.offset and index._deleted_mask[doc]:
            continue
        out[pid] = float(scores[doc])
    return out


def test_a_small_change_is_indexed_as_a_delta(built: dict) -> None:
    assert built["first"].report.compiled == "whole"
    report = built["second"].report
    assert report.compiled == "delta"
    assert report.delta_passages == 41          # the new article's 21, and the edited one's 20 (its title changed)
    assert "delta segment" in report.summary()
    assert isinstance(built["segmented"].index, SegmentedIndex)
    assert built["merged"].report.compiled == "whole"
    assert isinstance(built["whole"].index, type(built["first"].searcher.index))


def test_statistics_are_the_live_ones(built: dict) -> None:
    """Document frequencies and counts across both segments equal the merged index's, term by term."""
    seg, whole = built["segmented"].index, built["whole"].index
    assert seg.num_docs == whole.num_docs
    assert len(seg.term_ids) == len(whole.term_ids)
    for term in whole.term_ids:
        assert seg.document_frequency(term) == whole.document_frequency(term), term
    # A word only the removed article held is gone, as after a merge.
    gone = [t for t in built["first"].searcher.index.term_ids if t not in whole.term_ids]
    assert "florbnax" in gone and not any(t in seg.term_ids for t in gone)
    assert built["segmented"].search("florbnax").abstained == built["whole"].search("florbnax").abstained
    # Articles: the live count and every term's document frequency.
    articles, merged = built["segmented"].articles, built["whole"].articles
    assert isinstance(articles, SegmentedArticles)
    for term, t in whole.term_ids.items():
        assert articles.df[seg.term_ids[term]] == np.diff(merged.indptr)[t], term
    assert articles.idf[seg.term_ids["zorblatt"]] == pytest.approx(merged.idf[whole.term_ids["zorblatt"]])


def test_scores_stay_within_the_stated_bound(built: dict) -> None:
    seg, whole = built["segmented"], built["whole"]
    base_avgdl = seg.index.avgdl
    live_avgdl = whole.index.avgdl
    bound = drift(base_avgdl, live_avgdl)
    assert 0 < bound <= AVGDL_DRIFT
    for question in QUESTIONS:
        a, b = _live_scores(seg, question), _live_scores(whole, question)
        assert a.keys() == b.keys()
        worst = max(abs(a[p] - b[p]) / b[p] for p in b)
        assert worst <= bound * (1 + 1e-9), (question, worst, bound)


def test_top_k_is_exact_over_the_live_documents(built: dict) -> None:
    """The segmented top-k equals sorting every live document's score: deleted ones never appear, and
    asking the base for more than k (for its deleted documents) loses nothing."""
    seg = built["segmented"]
    for question in QUESTIONS:
        weights = {seg.index.term_ids[t]: 1.0 for t in seg.analyzer.tokenize(question) if t in seg.index.term_ids}
        scores = _live_scores(seg, question)
        doc_of = {pid: d for d, pid in enumerate(seg.passage_ids)}      # the delta's copy wins
        matched = {pid for pid in scores if any(doc_of[pid] in set(seg.index.postings(t).tolist()) for t in weights)}
        expected = sorted(scores[p] for p in matched)[::-1][:20]
        got = seg.index.top_k(weights, 20)
        assert [d.score for d in got] == pytest.approx(expected, rel=1e-12), question
        live = {doc_of[p] for p in scores}
        for d in got:       # each a live document, with its own score
            assert d.doc in live and d.score == pytest.approx(scores[seg.passage_ids[d.doc]], rel=1e-12)
        # Every document scoring clearly above the 20th is among them (ties differ only in the last bit).
        assert {doc_of[p] for p in matched if scores[p] > expected[-1] * (1 + 1e-9)} <= {d.doc for d in got}


def test_answers_match_the_merged_index(built: dict) -> None:
    seg, whole = built["segmented"], built["whole"]
    for question in QUESTIONS:
        a, b = seg.search(question, k=5), whole.search(question, k=5)
        assert a.abstained == b.abstained
        assert [h.passage_id for h in a.hits] == [h.passage_id for h in b.hits], question
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], rel=2 * AVGDL_DRIFT)
    # The new article is found, and an alias mined from its own text searched, as after a merge.
    assert "zorblatt" in seg.search("zorblatt", k=3).hits[0].matched
    assert [e.label for e in seg.search("QOC", k=3).expansions] == ["Quorvish Oversight Council"]
    assert [e.label for e in whole.search("QOC", k=3).expansions] == ["Quorvish Oversight Council"]
    removed_words = built["removed_text"].split("\n\n")[1].split()[:6]
    assert all(h.passage_id in whole.passage_ids for h in seg.search(" ".join(removed_words), k=10).hits)


def test_a_merge_equals_a_build_from_scratch(built: dict, tmp_path: Path) -> None:
    fresh = rebuild(tmp_path / "fresh.db", built["corpus"]).searcher
    whole = built["whole"]
    assert fresh is not None
    for question in QUESTIONS:
        a, b = whole.search(question, k=10), fresh.search(question, k=10)
        assert [(h.passage_id, h.score) for h in a.hits] == [(h.passage_id, h.score) for h in b.hits]


def _copy(built: dict, tmp_path: Path, db_name: str = "news.db") -> tuple[Path, Path]:
    """The built database (or the merged one) and its corpus, copied to change them."""
    db, corpus = tmp_path / "news.db", tmp_path / "corpus"
    shutil.copy(built["root"] / db_name, db)
    shutil.copytree(built["corpus"], corpus)
    return db, corpus


LATER = "A later story\n\nThe quibbleworth committee met in Benghazi on Monday."


def test_a_large_change_compiles_whole(built: dict, tmp_path: Path) -> None:
    db, corpus = _copy(built, tmp_path)
    write_articles(corpus / "more", 400, seed=11)          # 400 passages: past MERGE_SHARE of ~3,100
    assert rebuild(db, corpus).report.compiled == "whole"
    assert isinstance(_stored(db).index, type(built["whole"].index))


def test_a_later_delta_keeps_the_earlier_changes(built: dict, tmp_path: Path) -> None:
    """Each delta build indexes everything changed since the whole compile, not only its own changes."""
    db, corpus = _copy(built, tmp_path)
    (corpus / "later.txt").write_text(LATER)
    report = rebuild(db, corpus).report
    assert report.compiled == "delta" and report.delta_passages == 42
    seg = _stored(db)
    assert seg.search("zorblatt", k=1).hits and seg.search("quibbleworth", k=1).hits


def test_the_desk_swaps_a_delta_in_over_the_loaded_base(built: dict, tmp_path: Path) -> None:
    """In a serving process the base arrays are reused: only the delta is built and loaded."""
    db, corpus = _copy(built, tmp_path, "merged.db")

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            base = desk.searcher.index
            (corpus / "later.txt").write_text(LATER)
            report = await desk.rebuild()
            assert report.compiled == "delta"
            assert isinstance(desk.searcher.index, SegmentedIndex) and desk.searcher.index.base is base
            answer = await desk.ask("quibbleworth committee")
            assert "quibbleworth" in answer.results[0].record.text
            # Another process's desk loads the same thing from the file.
            async with await Newsdesk.open(db, corpus) as other:
                assert isinstance(other.searcher.index, SegmentedIndex)
                assert (await other.ask("quibbleworth committee")).results[0].record.id == answer.results[0].record.id

    asyncio.run(go())


def test_a_grown_delta_is_merged_in_the_background(built: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "MERGE_SOON_SHARE", 0.0)
    monkeypatch.setattr("index.build.MERGE_SOON_SHARE", 0.0)
    db, corpus = _copy(built, tmp_path, "merged.db")

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            (corpus / "later.txt").write_text(LATER)
            assert (await desk.rebuild()).compiled == "delta"
            assert desk._merging is not None
            await asyncio.wait_for(desk._merging[0], 60)
            assert not isinstance(desk.searcher.index, SegmentedIndex)
            assert (await desk.ask("quibbleworth committee")).results
        assert not isinstance(_stored(db).index, SegmentedIndex)

    asyncio.run(go())


def test_a_build_by_another_process_is_loaded_over_the_same_base(built: dict, tmp_path: Path) -> None:
    """A serving desk refreshing after another process's build reads only the delta (or, when that build
    changed nothing, nothing but the token) and keeps the base it holds."""
    db, corpus = _copy(built, tmp_path, "merged.db")

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            base = desk.searcher.index
            rebuild(db, corpus)                                   # nothing changed: a new build record only
            assert await desk.refresh()
            assert desk.searcher.index is base and desk.searcher.search("zorblatt").hits
            (corpus / "later.txt").write_text(LATER)
            assert rebuild(db, corpus).report.compiled == "delta"
            assert await desk.refresh()
            assert isinstance(desk.searcher.index, SegmentedIndex) and desk.searcher.index.base is base
            assert (await desk.ask("quibbleworth committee")).results

    asyncio.run(go())


def test_newsdesk_index_merge_compiles_the_delta_away(built: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from index.cli import main

    db, corpus = _copy(built, tmp_path)
    assert main(["index", "merge", "--db", str(db), "--corpus", str(corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["compiled"] == "whole" and report["delta_passages"] == 0
    assert not isinstance(_stored(db).index, SegmentedIndex)
    assert main(["index", "merge", "--db", str(db), "--corpus", str(corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compiled"] == "kept"      # nothing left to merge


def test_a_build_that_changes_nothing_reports_the_delta_it_keeps(built: dict, tmp_path: Path) -> None:
    db, corpus = _copy(built, tmp_path)
    report = rebuild(db, corpus).report
    assert (report.compiled, report.delta_passages) == ("kept", built["second"].report.delta_passages)
