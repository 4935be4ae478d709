"""index.build, index.store and index.desk: incremental rebuilds in one transaction, on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import index.build
import index.desk
from index.build import Counts, rebuild
from index.desk import Newsdesk
from index.errors import BuildFailed, CorpusError, IndexNotBuilt, NewsdeskError, RebuildInProgress
from index.quotes import LayoutMaker

from tests.conftest import SHIPPED_CORPUS

REPO = Path(__file__).resolve().parent.parent
EDITED = "003_c877ea3053c63f58.txt"
OLD_SENTENCE = "Russia vetoed a UN Security Council statement"
NEW_SENTENCE = "Russia blocked a UN Security Council statement"
QUESTIONS = ["who bombed the PFG forces?", "who is the spokesman of the LNA?", "did Russia veto the UN statement?"]


def stored_ids(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return {text: pid for pid, text in conn.execute("SELECT id, text FROM passages")}


def build_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM builds").fetchone()[0]


async def answers(desk: Newsdesk) -> list[list[tuple[str, str]]]:
    """What the desk says to a few questions: (passage id, quoted text) per result."""
    out = []
    for question in QUESTIONS:
        answer = await desk.ask(question, k=3)
        out.append([(r.record.id, r.record.text) for r in answer.results])
    assert any(out)
    return out


async def build(db: Path, corpus: Path) -> index.build.BuildReport:
    return (await asyncio.to_thread(rebuild, db, corpus)).report


# -- incremental rebuilds --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_build_adds_everything(db_file, corpus_copy):
    report = await build(db_file, corpus_copy)
    assert report.articles == 5
    assert report.article_changes == Counts(added=5)
    assert report.passage_changes == Counts(added=report.passages)
    assert report.passages == len(stored_ids(db_file)) > 100
    assert (report.files_read, report.files_unchanged) == (5, 0)
    assert report.problems == []
    assert "Articles: 5 added, 0 changed, 0 removed." in report.summary()


@pytest.mark.asyncio
async def test_rebuild_with_nothing_changed_reads_nothing_and_keeps_every_id(seed_db, seed_index):
    before = stored_ids(seed_db)
    report = await build(seed_db, seed_index.corpus)
    assert (report.files_read, report.files_unchanged) == (0, 5)
    assert report.article_changes == Counts() and report.passage_changes == Counts()
    assert stored_ids(seed_db) == before


@pytest.mark.asyncio
async def test_unchanged_files_are_not_parsed_again(db_file, corpus_copy, monkeypatch):
    parsed: list[str] = []
    parse_file = index.build.parse_file

    def counting(file):
        parsed.append(file.relative)
        return parse_file(file)

    monkeypatch.setattr(index.build, "parse_file", counting)
    await build(db_file, corpus_copy)
    assert len(parsed) == 5
    parsed.clear()
    await build(db_file, corpus_copy)
    assert parsed == []
    path = corpus_copy / EDITED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_SENTENCE, NEW_SENTENCE), encoding="utf-8")
    await build(db_file, corpus_copy)
    assert parsed == [EDITED]


@pytest.mark.asyncio
async def test_editing_one_paragraph_changes_one_article_and_one_passage(db_file, corpus_copy):
    await build(db_file, corpus_copy)
    before = stored_ids(db_file)
    path = corpus_copy / EDITED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_SENTENCE, NEW_SENTENCE), encoding="utf-8")
    report = await build(db_file, corpus_copy)
    assert report.article_changes == Counts(changed=1)
    assert report.passage_changes == Counts(changed=1)
    assert (report.files_read, report.files_unchanged) == (1, 4)
    after = stored_ids(db_file)
    gone = set(before) - set(after)
    new = set(after) - set(before)
    assert [text[:len(OLD_SENTENCE)] for text in gone] == [OLD_SENTENCE]
    assert [text[:len(NEW_SENTENCE)] for text in new] == [NEW_SENTENCE]
    assert {t: i for t, i in after.items() if t not in new} == {t: i for t, i in before.items() if t not in gone}


@pytest.mark.asyncio
async def test_a_rebuild_lays_out_only_the_passages_it_adds(db_file, corpus_copy, monkeypatch):
    await build(db_file, corpus_copy)
    laid_out: list[str] = []
    lay_out = LayoutMaker.__call__

    def counted(self: LayoutMaker, text: str) -> bytes:
        laid_out.append(text)
        return lay_out(self, text)

    monkeypatch.setattr(LayoutMaker, "__call__", counted)
    path = corpus_copy / EDITED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_SENTENCE, NEW_SENTENCE), encoding="utf-8")
    await build(db_file, corpus_copy)
    assert [text[:len(NEW_SENTENCE)] for text in laid_out] == [NEW_SENTENCE]
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT count(*) FROM passages WHERE layout IS NULL").fetchone()[0] == 0


@pytest.mark.asyncio
async def test_adding_and_removing_files(db_file, corpus_copy):
    await build(db_file, corpus_copy)
    (corpus_copy / "900_new.md").write_text("---\ntitle: Quokka census\n---\n\nThe quokka census counted 12,000 quokkas.\n",
                                            encoding="utf-8")
    report = await build(db_file, corpus_copy)
    assert report.article_changes == Counts(added=1)
    assert report.passage_changes == Counts(added=1)
    assert report.articles == 6

    (corpus_copy / "900_new.md").unlink()
    report = await build(db_file, corpus_copy)
    assert report.article_changes == Counts(removed=1)
    assert report.passage_changes == Counts(removed=1)
    assert report.articles == 5

    # 001 shares several paragraphs with 002: removing 001 removes only the passages nobody else prints.
    before = stored_ids(db_file)
    (corpus_copy / "001_b8dd3071ee1f5b21.txt").unlink()
    report = await build(db_file, corpus_copy)
    assert report.article_changes == Counts(removed=1)
    assert 0 < report.passage_changes.removed < 20
    assert report.passages == len(before) - report.passage_changes.removed
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT count(*) FROM occurrences WHERE source LIKE '001%'").fetchone()[0] == 0
    shared = [t for t in stored_ids(db_file) if t.startswith("\u201cPFG accused Egypt and the UAE")]
    assert len(shared) == 1


# -- failures leave the previous index -------------------------------------------------------------


@pytest.mark.asyncio
async def test_failure_mid_build_leaves_the_previous_index_answering(seed_db, seed_index, corpus_copy, monkeypatch):
    path = corpus_copy / EDITED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_SENTENCE, NEW_SENTENCE), encoding="utf-8")
    (corpus_copy / "004_fd8deb390daa752a.txt").unlink()
    before_ids = stored_ids(seed_db)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    async with await Newsdesk.open(seed_db, corpus_copy, build_if_missing=False) as desk:
        before = await answers(desk)
        build_id = desk.build.id
        monkeypatch.setattr(index.build.BM25Index, "build", broken)   # after every table was rewritten
        with pytest.raises(BuildFailed, match="disk on fire") as failed:
            await desk.rebuild()
        assert "previous index is unchanged" in str(failed.value)
        assert isinstance(failed.value.__cause__, RuntimeError)
        assert not desk.rebuilding
        assert desk.build.id == build_id
        assert await answers(desk) == before
    monkeypatch.undo()

    assert stored_ids(seed_db) == before_ids
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        assert desk.build.id == build_id
        assert await answers(desk) == before


@pytest.mark.asyncio
async def test_corpus_of_only_broken_files_is_refused_and_the_index_kept(seed_db, seed_index, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "empty.txt").write_text("", encoding="utf-8")
    (broken / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    async with await Newsdesk.open(seed_db, broken, build_if_missing=False) as desk:
        before = await answers(desk)
        with pytest.raises(CorpusError) as caught:
            await desk.rebuild()
        message = str(caught.value)
        assert "could be indexed" in message
        assert "empty.txt: empty file" in message and "binary.txt: binary file" in message
        assert await answers(desk) == before
    assert build_count(seed_db) == 1
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        assert await answers(desk) == before


@pytest.mark.asyncio
async def test_searches_during_a_rebuild_see_the_previous_index(seed_db, seed_index, corpus_copy, monkeypatch):
    """While the rebuild holds its transaction (old rows deleted, new ones not committed) answers do not change."""
    for name in ("000_baf13ccadf848008.txt", "001_b8dd3071ee1f5b21.txt", "002_8b0c8cfba84b287d.txt"):
        (corpus_copy / name).unlink()
    inside, release = threading.Event(), threading.Event()
    compile_index = index.build.BM25Index.build

    def paused(*args, **kwargs):      # runs in a worker thread, after every table was rewritten
        inside.set()
        assert release.wait(30)
        return compile_index(*args, **kwargs)

    monkeypatch.setattr(index.build.BM25Index, "build", paused)
    async with await Newsdesk.open(seed_db, corpus_copy, build_if_missing=False) as desk:
        before = await answers(desk)
        task = asyncio.create_task(desk.rebuild())
        try:
            assert await asyncio.to_thread(inside.wait, 30)
            assert desk.rebuilding
            assert await answers(desk) == before
            with pytest.raises(RebuildInProgress):
                await desk.rebuild()
        finally:
            release.set()
        report = await task
        assert report.article_changes == Counts(removed=3)
        assert await answers(desk) != before


def test_kill_9_mid_build_leaves_the_previous_index(seed_db, seed_index, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    rng = random.Random(9)
    words = [a + b for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu") for b in ("bar", "den", "fol", "gun", "hal", "jim")]
    for i in range(400):
        paragraphs = [" ".join(rng.choices(words, k=60)).capitalize() + "." for _ in range(6)]
        (big / f"gen_{i:04d}.txt").write_text(f"Generated article {i}\n\n" + "\n\n".join(paragraphs) + "\n",
                                              encoding="utf-8")
    before_ids = stored_ids(seed_db)
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        from index.build import rebuild

        def progress(stage, done, total):
            if stage == "compiling":          # every table rewritten, nothing committed
                os.kill(os.getpid(), signal.SIGKILL)

        rebuild(Path(sys.argv[1]), Path(sys.argv[2]), progress)
        print("finished")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(seed_db), str(big)], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "finished" not in done.stdout
    wal = Path(str(seed_db) + "-wal")
    assert wal.exists() and wal.stat().st_size > 0          # it had started writing

    async def check() -> None:
        async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
            assert desk.build.id == 1
            assert desk.build.articles == 5
            answer = await desk.ask("which countries bombed the PFG?")
            assert answer.results and "PFG" in answer.results[0].record.text
            report = await desk.rebuild()                   # and the next build works
            assert (report.files_read, report.files_unchanged) == (0, 5)

    asyncio.run(check())
    assert stored_ids(seed_db) == before_ids
    with sqlite3.connect(seed_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- damaged and missing inputs --------------------------------------------------------------------


CORRUPT_CHILD = textwrap.dedent("""
    import asyncio, json, os, sys, threading
    from pathlib import Path
    from index.desk import Newsdesk

    async def main():
        async with await Newsdesk.open(Path(sys.argv[1]), Path(sys.argv[2]), repair=True) as desk:
            answer = await desk.ask("who leads the LNA?")
            return {"notices": desk.notices, "results": len(answer.results)}

    out = asyncio.run(main())
    out["threads"] = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    print(json.dumps(out), flush=True)
    os._exit(0)   # report, rather than hang on a thread left running
""")


@pytest.fixture(scope="module")
def opened_corrupt(tmp_path_factory) -> tuple[Path, bytes, dict]:
    """A database file of garbage opened by a fresh process (which reports the threads it left running)."""
    root = tmp_path_factory.mktemp("corrupt")
    corpus = Path(shutil.copytree(SHIPPED_CORPUS, root / "corpus"))
    db = root / "newsdesk.db"
    garbage = random.Random(3).randbytes(8192)
    db.write_bytes(garbage)
    done = subprocess.run([sys.executable, "-c", CORRUPT_CHILD, str(db), str(corpus)], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 0, done.stderr
    return db, garbage, json.loads(done.stdout.splitlines()[-1])


def test_corrupt_database_is_moved_aside_and_rebuilt(opened_corrupt):
    db, garbage, result = opened_corrupt
    notice = " ".join(result["notices"])
    assert "damaged" in notice and "rebuilt" in notice
    assert result["results"] > 0
    aside = [p for p in db.parent.iterdir() if p.name.startswith(db.name + ".damaged-")]
    assert len(aside) == 1
    assert aside[0].name in notice
    assert aside[0].read_bytes() == garbage
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM builds").fetchone() == (1,)


def test_corrupt_database_leaves_no_thread_running(opened_corrupt):
    assert opened_corrupt[2]["threads"] == []


@pytest.mark.asyncio
async def test_missing_corpus_folder_is_a_corpus_error(db_file, tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        await Newsdesk.open(db_file, tmp_path / "nowhere")


@pytest.mark.asyncio
async def test_empty_corpus_folder_is_a_corpus_error(db_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.docx").write_bytes(b"not an article format")
    with pytest.raises(CorpusError, match="no readable article files") as caught:
        await Newsdesk.open(db_file, empty)
    assert isinstance(caught.value, NewsdeskError)


@pytest.mark.asyncio
async def test_no_index_without_building_is_index_not_built(db_file, corpus_copy):
    with pytest.raises(IndexNotBuilt, match="newsdesk index build"):
        await Newsdesk.open(db_file, corpus_copy, build_if_missing=False)


@pytest.mark.asyncio
async def test_a_build_committed_by_another_process_is_picked_up_while_asking(seed_db, seed_index, corpus_copy,
                                                                              monkeypatch):
    monkeypatch.setattr(index.desk, "REFRESH_EVERY_S", 0.0)
    async with await Newsdesk.open(seed_db, corpus_copy, build_if_missing=False) as desk:
        first = desk.build.id
        (corpus_copy / "950_extra.txt").write_text("Quokka report\n\nThe quokka census counted 12,000 quokkas.\n",
                                                   encoding="utf-8")
        built = subprocess.run([sys.executable, "-m", "index.cli", "index", "build", "--db", str(seed_db),
                                "--corpus", str(corpus_copy)], cwd=REPO, capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
        assert built.returncode == 0, built.stderr
        await desk.ask("quokka census")                    # notices the new build, loads it in the background
        for _ in range(100):
            if desk.build.id > first:
                break
            await asyncio.sleep(0.05)
        answer = await desk.ask("quokka census")
        assert desk.build.id == first + 1
        assert answer.results and "12,000 quokkas" in answer.results[0].record.text


def test_a_file_whose_stat_is_unchanged_is_not_hashed_again(tmp_path, monkeypatch):
    """Size, mtime and inode as they were when the file was hashed: the stored hash stands (as git does). A
    change that moves the mtime is read; a file written just now is hashed again until it has settled."""
    import index.corpus

    corpus = tmp_path / "corpus"
    shutil.copytree(SHIPPED_CORPUS, corpus)
    hour_ago = os.stat(corpus).st_mtime - 3600
    for f in corpus.iterdir():
        os.utime(f, (hour_ago, hour_ago))
    db = tmp_path / "news.db"
    rebuild(db, corpus)
    hashed: list[str] = []
    real_digest = index.corpus._digest
    monkeypatch.setattr(index.corpus, "_digest", lambda path: hashed.append(path.name) or real_digest(path))

    assert rebuild(db, corpus).report.files_read == 0 and hashed == []
    first = sorted(corpus.iterdir())[0]
    text = first.read_text(encoding="utf-8")
    first.write_text(text.replace("the", "teh", 1), encoding="utf-8")           # the same size
    os.utime(first, (hour_ago + 60, hour_ago + 60))
    report = rebuild(db, corpus).report
    assert hashed == [first.name] and report.files_read == 1 and report.article_changes.changed == 1

    hashed.clear()
    (corpus / "fresh.txt").write_text("A fresh story\n\nThe zanzibarite council met on Monday.\n", encoding="utf-8")
    rebuild(db, corpus)
    rebuild(db, corpus)                         # written just now: not settled, hashed again
    assert hashed == ["fresh.txt", "fresh.txt"]
    os.utime(corpus / "fresh.txt", (hour_ago, hour_ago))
    rebuild(db, corpus)                         # hashed (its stat moved), found unchanged, its stat kept
    rebuild(db, corpus)
    assert hashed == ["fresh.txt"] * 3
