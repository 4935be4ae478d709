"""Red-team checks of the delta segment (index/segments.py, issue 10 item 1): a small change over a real base build,
then the segmented database compared with the same database merged (which a build from scratch matches).

Each test that starts with a "Shows:" comment was a finding: it failed before its fix and shows, in one line, what a
user would have met. The others guard paths tests/test_segments.py does not walk.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from index import segments
from index.build import Cancellation, merge, rebuild
from index.desk import Newsdesk
from index.errors import BuildInterrupted
from index.search import ArticleEvidence, Searcher
from index.segments import AVGDL_DRIFT, SegmentedArticles, SegmentedIndex
from index.store import Writer
from tests.synthetic import write_articles
from tests.test_segments import _stored

SHIPPED = Path(__file__).resolve().parent.parent / "corpus"
# Two paragraphs wire copy repeats word for word: one passage each, whatever article they stand in.
SHARED = "The glimmerquat council met the harbour pilots at dawn and agreed on a new tariff for the port."
PILOTS = "The harbour pilots went home after the tariff meeting, officials in Misrata said."


def _md(title: str, published: str, *paragraphs: str) -> str:
    return f"---\ntitle: {title}\npublished: {published}\n---\n\n" + "\n\n".join(paragraphs) + "\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole compile of 3,000 generated passages, the shipped articles, a dated harbour story holding SHARED,
    an older story without it and two stories defining and using acronyms."""
    root = tmp_path_factory.mktemp("redteam")
    corpus = write_articles(root / "corpus", 3000, seed=3)
    for f in SHIPPED.iterdir():
        shutil.copy(f, corpus / f.name)
    (corpus / "harbour.md").write_text(_md("Harbour story", "2021-05-01", SHARED, PILOTS))
    (corpus / "earlier.md").write_text(_md("Earlier tariff story", "2019-01-01", "A wobblefin was seen off Zuwara."))
    (corpus / "agency.txt").write_text("Agency story\n\nThe Zentral Blorp Agency (ZBA) opened an office in Misrata.\n\n"
                                       "The Quorvish Frandel Office (QFO) closed its doors.\n")
    # The ZBA form's words also stand together elsewhere; the QFO form's words never do.
    (corpus / "budget.txt").write_text("Budget story\n\nThe ZBA budget was cut again this year.\n\n"
                                       "A zentral blorp agency of tourism was closed.\n\nThe QFO budget was cut too.\n\n"
                                       "A quorvish market was shut.\n\nThe frandel office moved.\n")
    assert rebuild(root / "news.db", corpus).report.compiled == "whole"
    return root


def _copy(base: Path, tmp_path: Path) -> tuple[Path, Path]:
    db, corpus = tmp_path / "news.db", tmp_path / "corpus"
    shutil.copy(base / "news.db", db)
    shutil.copytree(base / "corpus", corpus)
    return db, corpus


def _delta_and_merged(base: Path, tmp_path: Path, change: Callable[[Path], object]) -> tuple[Searcher, Searcher]:
    """The base changed by `change` and built as a delta; and the same database merged."""
    db, corpus = _copy(base, tmp_path)
    change(corpus)
    assert rebuild(db, corpus).report.compiled == "delta"
    merged = tmp_path / "merged.db"
    shutil.copy(db, merged)
    assert merge(merged, corpus).report.compiled == "whole"
    segmented = _stored(db)
    assert isinstance(segmented.index, SegmentedIndex)
    return segmented, _stored(merged)


def _weights(searcher: Searcher, question: str) -> dict[int, float]:
    index = searcher.index
    return {index.term_ids[t]: 1.0 for t in searcher.analyzer.tokenize(question) if t in index.term_ids}


def _article_scores(searcher: Searcher, question: str) -> dict[str, float]:
    """Each named article's evidence score, by source (a delta's article stands for the base's of its source)."""
    articles = searcher.articles
    assert articles is not None
    number = {source: a for a, source in enumerate(articles.sources)}     # the delta's come last and win
    named = np.array(sorted(number.values()), dtype=np.int64)
    scores = articles.scores(named, _weights(searcher, question))
    source_of = {a: source for source, a in number.items()}
    return {source_of[int(a)]: float(s) for a, s in zip(named, scores)}


def _worst_article_error(segmented: Searcher, merged: Searcher, question: str) -> tuple[float, str]:
    a, b = _article_scores(segmented, question), _article_scores(merged, question)
    return max((abs(a[source] - b[source]) / b[source], source) for source in b)


def _article_df_mismatches(segmented: Searcher, merged: Searcher) -> list[str]:
    articles, whole = segmented.articles, merged.articles
    assert isinstance(articles, SegmentedArticles) and isinstance(whole, ArticleEvidence)
    df = np.diff(whole.indptr)
    return [term for term, t in merged.index.term_ids.items() if articles.df[segmented.index.term_ids[term]] != df[t]]


# -- findings ----------------------------------------------------------------------------------------------------


def _add_older_copy(corpus: Path) -> None:
    (corpus / "older.md").write_text(_md("Older tariff story", "2019-06-01", SHARED, "A zorblatt was seen."))


def _edit_older_to_hold_it(corpus: Path) -> None:
    (corpus / "earlier.md").write_text(_md("Earlier tariff story", "2019-01-01", SHARED, "A wobblefin was seen off Zuwara."))


@pytest.mark.parametrize("change", [_add_older_copy, _edit_older_to_hold_it], ids=["added", "edited"])
def test_an_older_article_taking_a_shared_passage_takes_its_article_evidence(
        base: Path, tmp_path: Path, change: Callable[[Path], None]) -> None:
    # Shows: harbour.md keeps SHARED's words in its evidence after older.md became SHARED's primary place; its
    # article score for "glimmerquat council" is ~2.4x the merged index's, and SHARED's terms count twice.
    segmented, merged = _delta_and_merged(base, tmp_path, change)
    assert _article_df_mismatches(segmented, merged) == []
    error, source = _worst_article_error(segmented, merged, "glimmerquat council")
    assert error <= 2 * AVGDL_DRIFT, (source, error)


def test_a_syndicated_copy_adds_no_article(base: Path, tmp_path: Path) -> None:
    # Shows: a newer wire copy of harbour.md (every paragraph shared) adds one to the live article count: the
    # evidence of articles the build never touched ("Generated dispatch" ones) moves by ~10%, past the bound.
    def syndicate(corpus: Path) -> None:
        (corpus / "copy.md").write_text(_md("Harbour copy from the wire", "2023-01-01", SHARED, PILOTS))

    segmented, merged = _delta_and_merged(base, tmp_path, syndicate)
    assert _article_df_mismatches(segmented, merged) == []
    for question in ["Generated dispatch", "harbour pilots"]:
        error, source = _worst_article_error(segmented, merged, question)
        assert error <= 2 * AVGDL_DRIFT, (question, source, error)


def _withdraw_agency(corpus: Path) -> None:
    (corpus / "agency.txt").unlink()


def test_an_alias_only_a_removed_article_wrote_is_not_expanded(base: Path, tmp_path: Path) -> None:
    # Shows: after the article defining "Zentral Blorp Agency (ZBA)" is withdrawn, "ZBA budget" still says it
    # searched for Zentral Blorp Agency and returns passages that never mention the ZBA, as no merge would.
    segmented, merged = _delta_and_merged(base, tmp_path, _withdraw_agency)
    a, b = segmented.search("ZBA budget", k=5), merged.search("ZBA budget", k=5)
    assert [e.label for e in a.expansions] == [e.label for e in b.expansions] == []
    assert [h.passage_id for h in a.hits] == [h.passage_id for h in b.hits]


def test_a_form_occurs_only_in_live_passages(base: Path, tmp_path: Path) -> None:
    # Shows: "Quorvish Frandel Office" counts as written somewhere (so it is added to "QFO") although the only
    # passage holding its three words was removed; the merged index says it occurs nowhere.
    segmented, merged = _delta_and_merged(base, tmp_path, _withdraw_agency)
    form = tuple(segmented.analyzer.tokenize("Quorvish Frandel Office"))
    assert all(t in segmented.index.term_ids for t in form)        # each word is still live, apart
    assert not merged._occurs(form)
    assert not segmented._occurs(form)


def test_retiring_the_base_searcher_spares_the_delta_searcher_still_in_its_grace(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shows: base A -> delta S1 -> background merge W within READER_GRACE_S; when A's grace ends, A.release(W)
    # empties the base vocabulary S1 still reads, and an ask still running on S1 loses its proximity bonus.
    monkeypatch.setattr(segments, "MERGE_SOON_SHARE", 0.0)
    monkeypatch.setattr("index.build.MERGE_SOON_SHARE", 0.0)
    db, corpus = _copy(base, tmp_path)

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            first = desk.searcher
            assert first is not None
            edited = sorted(corpus.glob("gen_*.txt"))[0]
            edited.write_text(edited.read_text().replace("Generated", "Edited", 1))
            assert (await desk.rebuild()).compiled == "delta"
            segmented = desk.searcher
            assert segmented is not None and isinstance(segmented.index, SegmentedIndex)
            before = [(h.passage_id, h.score) for h in segmented.search("Generated dispatch 12", k=5).hits]
            assert desk._merging is not None
            await asyncio.wait_for(desk._merging[0], 60)
            assert desk.searcher is not None and not isinstance(desk.searcher.index, SegmentedIndex)
            desk._retire(first, segmented)      # what first's grace timer does, the merged searcher current by then
            await asyncio.gather(*desk._background)
            assert [(h.passage_id, h.score) for h in segmented.search("Generated dispatch 12", k=5).hits] == before

    asyncio.run(go())


def test_adding_an_article_stops_a_background_merge(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shows: /add (and a feed fetch) during a background merge waits for the whole merge (about a minute at 1M
    # passages) and then builds its delta over the merged base, where rebuild() stops the merge and runs first.
    monkeypatch.setattr(segments, "MERGE_SOON_SHARE", 0.0)
    monkeypatch.setattr("index.build.MERGE_SOON_SHARE", 0.0)
    db, corpus = _copy(base, tmp_path)

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            assert desk.searcher is not None
            first = desk.searcher.index
            edited = sorted(corpus.glob("gen_*.txt"))[0]
            edited.write_text(edited.read_text().replace("Generated", "Edited", 1))
            assert (await desk.rebuild()).compiled == "delta"
            while not desk._rebuild_lock.locked():      # the background merge has taken the rebuild lock
                await asyncio.sleep(0.01)
            assert not desk.rebuilding                  # ...which is no rebuild anyone waits for
            _, report = await desk.add("later.txt", data=b"A later story\n\nThe quibbleworth committee met in Benghazi.\n")
            assert report.compiled == "delta"
            assert isinstance(desk.searcher.index, SegmentedIndex) and desk.searcher.index.base is first

    asyncio.run(go())


def test_appending_to_a_jsonl_indexes_only_the_new_article(base: Path, tmp_path: Path) -> None:
    # Shows: with 200 wire records in one .jsonl (400 of ~3,500 passages), appending a 201st compiles everything;
    # at 1M passages a 10,000-record file makes each append a 20,000-passage delta and a background merge.
    db, corpus = _copy(base, tmp_path)

    def record(i: int) -> str:
        return json.dumps({"id": f"w{i}", "title": f"Wire item {i}", "published": f"2020-01-{i % 28 + 1:02d}",
                           "paragraphs": [f"Wire copy number {i} about the snorkelgrade convoy near Sirte.",
                                          f"Filler line {i} on the qastrel road near Sirte, officials said."]})

    (corpus / "wire.jsonl").write_text("".join(record(i) + "\n" for i in range(200)))
    rebuild(db, corpus)
    with (corpus / "wire.jsonl").open("a") as f:
        f.write(record(200) + "\n")
    report = rebuild(db, corpus).report
    assert (report.article_changes.added, report.article_changes.changed) == (1, 0)
    assert report.compiled == "delta" and report.delta_passages <= 2 * 2, (report.compiled, report.delta_passages)


# -- guards: paths tests/test_segments.py does not walk, which hold now ----------------------------------------


def test_asking_within_an_article_and_paging_match_the_merged_index(base: Path, tmp_path: Path) -> None:
    """--source for an article in the delta, one in the base and one the delta superseded; and pages of five
    that cross from base documents to delta ones list what one long page lists."""
    def change(corpus: Path) -> None:
        (corpus / "new.txt").write_text("Guards seized the port\n\n" + "\n\n".join(
            f"The guards seized oil terminal number {i} near Ras Lanuf and a zorblatt was seen." for i in range(12)))
        first = sorted(corpus.glob("gen_*.txt"))[0]
        first.write_text(first.read_text().replace("Generated", "Edited", 1))

    segmented, merged = _delta_and_merged(base, tmp_path, change)
    writer = Writer.open(tmp_path / "news.db")
    try:
        within = {source: set(writer.passages_in([source])) for source in ("new.txt", "gen_000000.txt", "gen_000003.txt")}
    finally:
        writer.close()
    for source, question in [("new.txt", "oil terminal zorblatt"), ("gen_000000.txt", "edited dispatch"),
                             ("gen_000003.txt", "generated dispatch")]:
        a, b = segmented.search(question, k=5, within=within[source]), merged.search(question, k=5, within=within[source])
        assert a.hits and [h.passage_id for h in a.hits] == [h.passage_id for h in b.hits], source
    assert isinstance(segmented.index, SegmentedIndex)
    for question in ["oil terminal guards", "edited dispatch"]:
        long_page = segmented.search(question, k=30).hits
        whole_page = [h.passage_id for h in long_page]
        assert {h.doc >= segmented.index.offset for h in long_page} == {True, False}     # base and delta documents
        pages = [h.passage_id for offset in range(0, 30, 5) for h in segmented.search(question, k=5, offset=offset).hits]
        assert pages == whole_page


def test_a_cancelled_delta_build_leaves_the_previous_index_serving(base: Path, tmp_path: Path) -> None:
    db, corpus = _copy(base, tmp_path)

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            before, build = desk.searcher, desk.build
            (corpus / "later.txt").write_text("A later story\n\nThe quibbleworth committee met in Benghazi.")
            cancel = Cancellation()

            def progress(stage: str, done: int, total: int) -> None:
                if stage == "saving":           # the delta is compiled and about to be written
                    cancel.cancel()

            with pytest.raises(BuildInterrupted):
                await desk.rebuild(progress, cancel)
            assert desk.searcher is before and desk.build == build
            assert not isinstance(_stored(db).index, SegmentedIndex)
            assert (await desk.rebuild()).compiled == "delta"
            assert (await desk.ask("quibbleworth committee")).results

    asyncio.run(go())


def test_a_rebuild_during_a_background_merge_runs_first(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "MERGE_SOON_SHARE", 0.0)
    monkeypatch.setattr("index.build.MERGE_SOON_SHARE", 0.0)
    db, corpus = _copy(base, tmp_path)
    files = sorted(corpus.glob("gen_*.txt"))

    async def go() -> None:
        async with await Newsdesk.open(db, corpus) as desk:
            files[0].write_text(files[0].read_text().replace("Generated", "Quibbleworth", 1))
            assert (await desk.rebuild()).compiled == "delta"
            assert desk._merging is not None
            merging = desk._merging[0]
            files[1].write_text(files[1].read_text().replace("Generated", "Snorkelgrade", 1))
            assert (await desk.rebuild()).compiled == "delta"       # the merge was stopped, not waited for
            assert merging.done()
            for question in ["quibbleworth dispatch", "snorkelgrade dispatch"]:
                assert (await desk.ask(question)).results
            await asyncio.wait_for(desk._merging[0], 60)           # the rebuild started the merge again
            assert desk.searcher is not None and not isinstance(desk.searcher.index, SegmentedIndex)
            assert (await desk.ask("snorkelgrade dispatch")).results

    asyncio.run(go())


def test_an_article_removed_then_added_back_in_later_deltas_merges_as_built_from_scratch(base: Path, tmp_path: Path) -> None:
    db, corpus = _copy(base, tmp_path)
    removed = sorted(corpus.glob("gen_*.txt"))[3]
    writer = Writer.open(db)
    try:
        gone = writer.passages_in([removed.name])
    finally:
        writer.close()
    text = removed.read_text()
    removed.unlink()
    assert rebuild(db, corpus).report.compiled == "delta"           # a delta that only removes
    hits = _stored(db).search(text.split("\n\n")[1][:80], k=20).hits
    assert hits and not {h.passage_id for h in hits} & gone
    (corpus / "back.txt").write_text(text)
    assert rebuild(db, corpus).report.compiled == "delta"
    segmented = _stored(db)
    assert merge(db, corpus).report.compiled == "whole"
    merged, fresh = _stored(db), rebuild(tmp_path / "fresh.db", corpus).searcher
    assert fresh is not None
    for question in ["Generated dispatch 3", "kalo mira", "PFG"]:
        a, b, c = segmented.search(question, k=10), merged.search(question, k=10), fresh.search(question, k=10)
        # As sets: passages tied across the segments come base first (by document number), not in ID order.
        assert {h.passage_id for h in a.hits} == {h.passage_id for h in b.hits}, question
        assert [(h.passage_id, h.score) for h in b.hits] == [(h.passage_id, h.score) for h in c.hits]
