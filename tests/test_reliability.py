"""Trust under real operation: the real `newsdesk` command against odd --db paths, a foreign SQLite lock,
a second writer, a big rebuild under questions, a damaged page, signals and kill -9.

The command runs as a subprocess (the one a person or a service manager starts) on real SQLite files in
tmp_path, with real signals, and its processes read back from /proc; questions put during a rebuild and
the one-line errors of `cite` and `eval` go through the engine and main() in-process, as tests/test_cli.py
does. The only clocks are the bounds a person would notice: an answer within seconds while the database
is locked, under a second while a rebuild runs, an exit within 2 s of Ctrl-C or SIGTERM, and no process
of a killed build left after 5 s.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import index.build
from index.cli import main
from index.desk import Newsdesk
from index.errors import DatabaseBusy
from index.store import Writer

from tests.conftest import copy_db
from tests.synthetic import write_articles

REPO = Path(__file__).resolve().parent.parent
# What the `newsdesk` console script runs: index.cli.main with the arguments, its return value the exit status.
NEWSDESK = (sys.executable, "-c", "import sys; from index.cli import main; sys.exit(main(sys.argv[1:]))")
QUESTION = "which countries bombed the PFG?"
PFG = "\u201cPFG accused Egypt and the UAE of bombing their forces near the residential district of Ras Lanuf."
BIG_PASSAGES = 30_000        # past index.build.PARALLEL_FROM: the analysis runs in spawned worker processes
VOTES = [("2026-12-01T10:00:00", user, "ymmqiot", QUESTION, 1 if user % 3 else -1) for user in range(1, 8)]


# -- running the command -----------------------------------------------------------------------------


def environment(tmp_path: Path) -> dict[str, str]:
    """No NEWSDESK_* of the person running the tests, and a home of the test's own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    return env | {"PYTHONPATH": str(REPO), "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}


def newsdesk(tmp_path: Path, *argv: Any, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([*NEWSDESK, *map(str, argv)], cwd=REPO, env=environment(tmp_path), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


@dataclass
class Started:
    """A `newsdesk` process running in the background, its output going to files (a pipe left open by a
    grandchild would keep a reader waiting)."""

    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text(encoding="utf-8")

    def stderr(self) -> str:
        return self.log.with_suffix(".err").read_text(encoding="utf-8")


@contextmanager
def started(tmp_path: Path, *argv: Any, name: str) -> Iterator[Started]:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / name
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen([*NEWSDESK, *map(str, argv)], cwd=REPO, env=environment(tmp_path), stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL)
    try:
        yield Started(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def wait_until(condition: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """The condition's first truthy value, or None when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(every)


def error_lines(done: subprocess.CompletedProcess, code: int) -> list[str]:
    """The stderr of a failed run, checked to be one `Error:` line, at most one hint, and nothing else."""
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert 1 <= len(lines) <= 2, done.stderr
    assert lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines


def quotes_pfg(done: subprocess.CompletedProcess) -> bool:
    """An `ask --json` run that answered with the PFG passage."""
    assert done.returncode == 0, done.stderr
    return any(r["text"].startswith(PFG) for r in json.loads(done.stdout)["results"])


# -- looking at files and databases ----------------------------------------------------------------


def listing(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every path under root with its type, size, inode and device number: a rename, a new file, a write
    or a replaced file all change it."""
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_ino, info.st_rdev)
    return out


def damaged_aside(folder: Path, db: Path) -> list[Path]:
    """The damaged files kept beside db (their journals aside)."""
    return [p for p in folder.iterdir()
            if p.name.startswith(db.name + ".damaged-") and not p.name.endswith(("-wal", "-shm"))]


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def build_ids(db: Path) -> list[int]:
    with closing(read_only(db)) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM builds ORDER BY id")]


def stored_ids(db: Path) -> set[str]:
    with closing(read_only(db)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM passages")}


def votes(db: Path) -> list[tuple]:
    with closing(read_only(db)) as conn:
        rows = conn.execute("SELECT at, user_id, passage_id, query, vote FROM feedback ORDER BY id")
        return [tuple(row) for row in rows]


def integrity(db: Path) -> str:
    try:
        with closing(read_only(db)) as conn:
            return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    except sqlite3.DatabaseError as e:
        return f"error: {e}"


def settle(db: Path) -> None:
    """Checkpoint the WAL into the file and close: SQLite then removes the -wal and -shm, as after a build."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()


def lock_holder(db: Path) -> int | None:
    """The pid the write lock file beside db names (the last process to take it)."""
    try:
        return json.loads(Path(f"{db}.lock").read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 distinct made-up paragraphs in 750 files: a rebuild of several seconds, with analysis workers."""
    assert BIG_PASSAGES > index.build.PARALLEL_FROM
    return write_articles(tmp_path_factory.mktemp("big") / "corpus", BIG_PASSAGES, per_article=40, words=30)


# -- 1. --db that cannot be a database -----------------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "db-folder").mkdir()
    return tmp_path / "db-folder"


def _device(tmp_path: Path) -> Path:
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD, which this user lacks")
    return tmp_path / "null"


def _under_file(tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("notes\n", encoding="utf-8")
    return tmp_path / "file.txt" / "newsdesk.db"


ASK, BUILD, REPAIR = ["ask", QUESTION], ["index", "build"], ["index", "repair"]


@pytest.mark.parametrize(("make", "code", "says", "commands"), [
    (_folder, 3, "is a folder, not a file", [ASK, BUILD]),
    (_device, 4, "is not a regular file", [ASK, BUILD, REPAIR]),     # a .lock beside a device is the danger
    (_under_file, 5, "which is a file, not a folder", [ASK, BUILD]),
], ids=["folder", "device", "under-a-file"])
def test_a_db_path_that_cannot_be_a_database_is_one_error_and_nothing_moves(tmp_path, seed_index, make, code, says,
                                                                            commands):
    db = make(tmp_path)
    environment(tmp_path)                       # the home folder exists before the listing is taken
    before, dev_null = listing(tmp_path), os.stat("/dev/null")
    for command in commands:
        done = newsdesk(tmp_path, *command, "--db", db, "--corpus", seed_index.corpus)
        first = error_lines(done, code)[0]
        assert says in first and str(db) in first, command
    assert listing(tmp_path) == before          # no .lock beside a device, no .damaged-*, no folder made
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_rdev, after.st_ino) == (dev_null.st_rdev, dev_null.st_ino)


# -- 1b. read-only database, read-only folder -----------------------------------------------------------


def unprivileged(probe: Path) -> dict[str, Any] | None:
    """Popen arguments under which the permission bits of files hold for the child.

    A normal user needs nothing. Root ignores the bits by way of CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH;
    the child drops both from its bounding set before exec, so after exec it is root without them, and
    the kernel checks the mode bits for it as for anyone (as owner). None if that cannot be arranged.
    """
    if os.geteuid() != 0:
        return {}
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def drop_dac_capabilities() -> None:
        for capability in (1, 2):          # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if prctl(24, capability, 0, 0, 0) != 0:        # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")

    kwargs = {"preexec_fn": drop_dac_capabilities}
    try:
        check = subprocess.run([sys.executable, "-c", "import os, sys; sys.exit(os.access(sys.argv[1], os.W_OK))",
                                str(probe)], timeout=30, **kwargs)
    except subprocess.SubprocessError:
        return None                             # no CAP_SETPCAP to drop them with
    return kwargs if check.returncode == 0 else None


NOT_ENFORCED = ("running as root, and a child could not be made to drop CAP_DAC_OVERRIDE: permission bits do "
                "not apply, so a refusal to write cannot be shown")


def test_a_read_only_database_answers_and_refuses_to_build(tmp_path, seed_db, seed_index):
    settle(seed_db)                             # no journal yet: the first reader makes its own
    seed_db.chmod(0o444)
    content = seed_db.read_bytes()
    environment(tmp_path)
    before = listing(tmp_path)
    kwargs = unprivileged(seed_db)
    asked = newsdesk(tmp_path, "ask", QUESTION, "--json", "--db", seed_db, "--corpus", seed_index.corpus,
                     **(kwargs or {}))
    assert quotes_pfg(asked)                    # readers need no write access
    if kwargs is None:
        pytest.skip(NOT_ENFORCED)
    done = newsdesk(tmp_path, "index", "build", "--db", seed_db, "--corpus", seed_index.corpus, **kwargs)
    first = error_lines(done, 6)[0]
    assert first == f"Error: Permission denied: {seed_db} cannot be written by this user."
    after = listing(tmp_path)
    # SQLite's own -wal and -shm appear beside a WAL database a reader opens; nothing else may.
    assert set(after) - set(before) <= {"seed.db-wal", "seed.db-shm"} and set(before) <= set(after)
    assert after["seed.db"] == before["seed.db"] and seed_db.read_bytes() == content

    # SQLite gave those journals the database's mode, 0444: with the file writable again, the build
    # names them (not a bare "readonly database"), and builds once they are writable too.
    seed_db.chmod(0o644)
    done = newsdesk(tmp_path, "index", "build", "--db", seed_db, "--corpus", seed_index.corpus, **kwargs)
    first = error_lines(done, 6)[0]
    assert first.startswith(f"Error: Permission denied: {seed_db}-") and "SQLite's journal" in first
    for journal in (Path(f"{seed_db}-wal"), Path(f"{seed_db}-shm")):
        journal.chmod(0o644)
    done = newsdesk(tmp_path, "index", "build", "--db", seed_db, "--corpus", seed_index.corpus, **kwargs)
    assert done.returncode == 0, done.stderr
    assert build_ids(seed_db) == [1, 2] and damaged_aside(tmp_path, seed_db) == []


def test_a_database_in_a_read_only_folder_answers_and_refuses_to_build(tmp_path, seed_index):
    folder = tmp_path / "shared"
    folder.mkdir()
    db = copy_db(seed_index.db, folder / "newsdesk.db")
    settle(db)                                  # as a finished `newsdesk index build` leaves it: no -wal, no -shm
    folder.chmod(0o555)
    try:
        kwargs = unprivileged(folder)
        if kwargs is None:
            pytest.skip(NOT_ENFORCED)
        environment(tmp_path)
        before = listing(tmp_path)
        asked = newsdesk(tmp_path, "ask", QUESTION, "--json", "--db", db, "--corpus", seed_index.corpus, **kwargs)
        assert quotes_pfg(asked)
        for command in (["index", "build"], ["index", "repair"]):
            done = newsdesk(tmp_path, *command, "--db", db, "--corpus", seed_index.corpus, **kwargs)
            first = error_lines(done, 6)[0]
            assert first.startswith("Error: Permission denied") and str(folder) in first
        assert listing(tmp_path) == before      # not even a -shm: nothing can be, and nothing was, created
    finally:
        folder.chmod(0o755)


# -- 2. a foreign process holding SQLite's write lock --------------------------------------------------

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO feedback (at, user_id, passage_id, query, vote) "
             "VALUES ('2026-12-02T00:00:00', 42, 'held', 'held', 1)")
print("locked", flush=True)
conn.execute("COMMIT" if sys.stdin.readline().strip() == "commit" else "ROLLBACK")
print("released", flush=True)
"""


@contextmanager
def foreign_write_lock(db: Path) -> Iterator[Callable[[], None]]:
    """A sqlite3 process inside BEGIN IMMEDIATE with an uncommitted vote; the callable commits and lets go."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)

    def release() -> None:
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "released\n"
        assert holder.wait(10) == 0

    try:
        assert holder.stdout.readline() == "locked\n"
        yield release
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_ask_answers_while_another_process_holds_the_write_lock(tmp_path, seed_db, seed_index):
    environment(tmp_path)
    with foreign_write_lock(seed_db):
        before = listing(tmp_path)
        began = time.monotonic()
        done = newsdesk(tmp_path, "ask", QUESTION, "--json", "--db", seed_db, "--corpus", seed_index.corpus, timeout=30)
        took = time.monotonic() - began
        assert quotes_pfg(done)
        assert took < 10                        # a reader never waits for a writer
        assert listing(tmp_path) == before
    assert damaged_aside(tmp_path, seed_db) == []


def test_index_build_waits_for_a_foreign_write_lock_then_builds(tmp_path, seed_db, seed_index):
    with foreign_write_lock(seed_db) as release:
        with started(tmp_path, "index", "build", "--db", seed_db, "--corpus", seed_index.corpus, name="build") as build:
            assert wait_until(lambda: lock_holder(seed_db) == build.pid, 30), build.stderr()
            time.sleep(1.0)                     # a no-op build is done in this time, unless it is waiting
            assert build.proc.poll() is None, build.stderr()
            assert build_ids(seed_db) == [1]
            release()
            assert build.proc.wait(60) == 0, build.stderr()
    assert "damaged" not in (build.stdout() + build.stderr()).lower()
    assert build.stdout().startswith("Build 2: ") and "Files: 0 read, 5 unchanged." in build.stdout()
    assert votes(seed_db) == [("2026-12-02T00:00:00", 42, "held", "held", 1)]    # its commit stood
    assert damaged_aside(tmp_path, seed_db) == [] and integrity(seed_db) == "ok"


def test_a_writer_that_gives_up_on_a_foreign_lock_is_busy_not_damaged(tmp_path, seed_db):
    with foreign_write_lock(seed_db):
        before = listing(tmp_path)
        writer = Writer.open(seed_db, busy_ms=200)
        try:
            with pytest.raises(DatabaseBusy) as caught:
                with writer.transaction():
                    pass
        finally:
            writer.close()
        assert listing(tmp_path) == before
    assert caught.value.exit_code == 7
    assert "locked by another process" in caught.value.message and "damaged" not in str(caught.value)
    assert build_ids(seed_db) == [1] and integrity(seed_db) == "ok"


# -- 3. a second writer while a rebuild runs ---------------------------------------------------------------


def test_a_second_index_build_names_the_running_one_and_follows_it(tmp_path, seed_db, big_corpus):
    command = ("index", "build", "--db", seed_db, "--corpus", big_corpus)
    with started(tmp_path, *command, name="first") as first:
        assert wait_until(lambda: lock_holder(seed_db) == first.pid, 60), first.stderr()
        with started(tmp_path, *command, name="second") as second:
            assert first.proc.wait(120) == 0, first.stderr()
            assert second.proc.wait(120) == 0, second.stderr()
    assert f"A rebuild is running (process {first.pid}, for " in second.stderr()
    files = BIG_PASSAGES // 40
    assert first.stdout().startswith(f"Build 2: {files} articles, {BIG_PASSAGES} passages")
    # The second read nothing: it ran on what the first had committed.
    assert second.stdout().startswith("Build 3: ") and f"Files: 0 read, {files} unchanged." in second.stdout()
    assert build_ids(seed_db) == [1, 2, 3]


# -- 4. questions during a big rebuild ---------------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    build: int                 # the build the desk loaded
    seconds: float             # opening the database, loading its index and answering
    results: list[tuple[str, str]]
    during: bool = False       # the rebuild process was running when the question was put
    committed: int = 1         # the newest build in the database once the answer was back


async def ask_fresh(db: Path, corpus: Path) -> Asked:
    """What a new `newsdesk ask` would see: open the database, load its index, ask."""
    began = time.perf_counter()
    async with await Newsdesk.open(db, corpus, build_if_missing=False) as desk:
        answer = await desk.ask(QUESTION, k=3)
    return Asked(desk.build.id, time.perf_counter() - began, [(r.record.id, r.record.text) for r in answer.results])


async def ask_until_the_new_build(db: Path, corpus: Path, build: subprocess.Popen) -> list[Asked]:
    seen = []
    while True:
        during = build.poll() is None
        asked = await ask_fresh(db, corpus)
        seen.append(Asked(asked.build, asked.seconds, asked.results, during, committed=build_ids(db)[-1]))
        if seen[-1].committed != 1 or not during:
            return seen


def test_asks_during_a_big_rebuild_answer_from_the_previous_build(tmp_path, seed_db, seed_index, big_corpus):
    before = asyncio.run(ask_fresh(seed_db, seed_index.corpus))
    assert before.build == 1 and any(text.startswith(PFG) for _, text in before.results)
    # The new corpus drops the five shipped articles: the rebuild deletes the very passages quoted here.
    with started(tmp_path, "index", "build", "--db", seed_db, "--corpus", big_corpus, name="build") as build:
        assert wait_until(lambda: lock_holder(seed_db) == build.pid, 60), build.stderr()
        locked = time.monotonic()
        seen = asyncio.run(ask_until_the_new_build(seed_db, seed_index.corpus, build.proc))
        assert build.proc.wait(120) == 0, build.stderr()
        held = time.monotonic() - locked
    # Every ask whose reads all came before the commit (build 2 not yet there when it returned) answered
    # from build 1, whole; the one ask the commit fell into is test_an_ask_after_another_writer_commits...
    old = [a for a in seen if a.committed == 1]
    assert all(a.build == 1 and a.results == before.results for a in old)
    # A reader waiting for the writer would take about as long as the rest of the build (the first ask: all
    # of it). Bounded against the build's own time, which a loaded machine stretches as much as the asks.
    slowest = max(a.seconds for a in old)
    assert slowest < held / 2, (sorted(round(a.seconds, 3) for a in old)[-5:], round(held, 2))
    assert sum(a.during for a in old) >= 3, len(old)
    assert build_ids(seed_db) == [1, 2]
    after = asyncio.run(ask_fresh(seed_db, seed_index.corpus))
    assert after.build == 2 and not any(text.startswith(PFG) for _, text in after.results)


def test_an_ask_after_another_writer_commits_answers_whole_from_one_build(seed_db, seed_index, corpus_copy):
    for name in ("000_baf13ccadf848008.txt", "001_b8dd3071ee1f5b21.txt", "002_8b0c8cfba84b287d.txt"):
        (corpus_copy / name).unlink()                      # where the three best PFG passages stand

    async def go() -> tuple[Asked, Asked]:
        async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
            answer = await desk.ask(QUESTION, k=3)
            first = Asked(desk.build.id, 0.0, [(r.record.id, r.record.text) for r in answer.results])
            await asyncio.to_thread(index.build.rebuild, seed_db, corpus_copy)   # as `newsdesk index build` does
            answer = await desk.ask(QUESTION, k=3)
            return first, Asked(answer.build.id, 0.0, [(r.record.id, r.record.text) for r in answer.results])

    first, second = asyncio.run(go())
    assert first.build == 1 and len(first.results) == 3
    assert build_ids(seed_db) == [1, 2]
    # Either still the old build's answer, whole, or the new build's: never the old one with holes.
    assert second == first or second.build == 2


# -- 5. a damaged page ---------------------------------------------------------------------------------------


def table_leaves(data: bytes, table: str, db: Path) -> list[int]:
    """The leaf pages of a table's b-tree, left to right, read from the file format itself."""
    with closing(read_only(db)) as conn:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    page_size = int.from_bytes(data[16:18], "big")

    def walk(page: int) -> list[int]:
        base = (page - 1) * page_size
        header = base + (100 if page == 1 else 0)
        if data[header] == 0x0D:                           # a table leaf
            return [page]
        assert data[header] == 0x05, f"page {page} is not a table b-tree page"
        cells = int.from_bytes(data[header + 3:header + 5], "big")
        children = []
        for i in range(cells):
            pointer = int.from_bytes(data[header + 12 + 2 * i:header + 14 + 2 * i], "big")
            children.append(int.from_bytes(data[base + pointer:base + pointer + 4], "big"))
        children.append(int.from_bytes(data[header + 8:header + 12], "big"))    # the right-most child
        return [leaf for child in children for leaf in walk(child)]

    return walk(root)


def pfg_page(db: Path) -> tuple[int, int]:
    """(page size, number of the page holding the PFG passage's text)."""
    data = db.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    page = data.index(PFG.encode()) // page_size + 1
    leaves = table_leaves(data, "passages", db)
    assert page in leaves[1:-1], (page, leaves)            # a leaf of passages, in the middle of the table
    return page_size, page


@pytest.fixture
def damaged_db(seed_db: Path) -> tuple[Path, bytes]:
    """The seed database with seven votes, checkpointed, then the page holding the PFG passage overwritten
    with random bytes. Returns the path and the damaged file's bytes."""
    with closing(sqlite3.connect(seed_db)) as conn:
        conn.executemany("INSERT INTO feedback (at, user_id, passage_id, query, vote) VALUES (?, ?, ?, ?, ?)", VOTES)
        conn.commit()
    settle(seed_db)
    page_size, page = pfg_page(seed_db)
    with open(seed_db, "r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(random.Random(5).randbytes(page_size))
    assert integrity(seed_db) != "ok"
    return seed_db, seed_db.read_bytes()


def test_readers_meeting_a_damaged_page_give_one_error_naming_repair(tmp_path, damaged_db, seed_index):
    db, damaged = damaged_db
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"q": QUESTION, "any": ["PFG accused Egypt"]}) + "\n", encoding="utf-8")
    for command in (["ask", QUESTION], ["eval", questions]):
        done = newsdesk(tmp_path, *command, "--db", db, "--corpus", seed_index.corpus)
        first, hint = error_lines(done, 8)
        assert first.startswith(f"Error: The database {db} is damaged (")
        assert hint.startswith("Run: newsdesk index repair")
    assert damaged_aside(tmp_path, db) == [] and db.read_bytes() == damaged     # a reader moves nothing


@pytest.mark.parametrize("command", [["index", "repair"], ["index", "build"]], ids=["repair", "build"])
def test_a_damaged_page_is_kept_aside_and_the_index_rebuilt_with_the_votes(tmp_path, damaged_db, seed_index, command):
    db, damaged = damaged_db
    done = newsdesk(tmp_path, *command, "--db", db, "--corpus", seed_index.corpus)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (aside,) = damaged_aside(tmp_path, db)
    assert aside.read_bytes() == damaged                    # kept as it was, byte for byte
    assert f"It is kept as {aside.name};" in done.stdout
    assert "recovered 7 votes and 1 build records" in done.stdout
    assert integrity(db) == "ok"
    assert votes(db) == VOTES
    assert build_ids(db) == [1, 2]                          # the old build record carried over, then the new one
    asked = asyncio.run(ask_fresh(db, seed_index.corpus))
    assert asked.build == 2 and any(text.startswith(PFG) for _, text in asked.results)


def test_an_overwritten_page_that_passes_the_check_is_never_moved(tmp_path, seed_db, seed_index):
    settle(seed_db)
    page_size, page = pfg_page(seed_db)
    with open(seed_db, "r+b") as f:                         # the page rewritten whole, one word in it changed
        f.seek((page - 1) * page_size)
        content = f.read(page_size)
        f.seek((page - 1) * page_size)
        f.write(content.replace("PFG accused Egypt".encode(), "PFG accused Egypu".encode(), 1))
    assert integrity(seed_db) == "ok"
    inode = seed_db.stat().st_ino
    asked = asyncio.run(ask_fresh(seed_db, seed_index.corpus))
    assert asked.build == 1 and asked.results               # the damage SQLite cannot see is no error
    repaired = newsdesk(tmp_path, "index", "repair", "--db", seed_db, "--corpus", seed_index.corpus)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout == f"{seed_db} passed SQLite's integrity check; nothing to repair.\n"
    built = newsdesk(tmp_path, "index", "build", "--db", seed_db, "--corpus", seed_index.corpus)
    assert built.returncode == 0, built.stderr
    assert "damaged" not in (built.stdout + built.stderr).lower()
    assert damaged_aside(tmp_path, seed_db) == [] and seed_db.stat().st_ino == inode
    assert build_ids(seed_db) == [1, 2]


# -- 6. kill -9, SIGTERM and SIGINT while the analysis workers run ------------------------------------------


def processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (parent pid, state, command line) of every process now on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            found[int(entry.name)] = (int(ppid), state, (entry / "cmdline").read_bytes())
        except (OSError, ValueError):
            continue                            # it ended while we looked
    return found


def descendants(pid: int) -> dict[int, bytes]:
    table, found, todo = processes(), {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, cmdline) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                todo.append(child)
    return found


def analysis_workers(pid: int) -> dict[int, bytes]:
    return {child: cmdline for child, cmdline in descendants(pid).items() if b"multiprocessing.spawn" in cmdline}


def alive(pids: dict[int, bytes]) -> list[int]:
    """Those still running as the same program (a zombie waiting for init has ended)."""
    table = processes()
    return [pid for pid, cmdline in pids.items() if pid in table and table[pid][1] != "Z" and table[pid][2] == cmdline]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: the analysis runs in the build process itself")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill-9", "SIGTERM", "SIGINT"])
def test_a_build_stopped_while_its_workers_analyse_leaves_no_process_and_the_old_index(
        tmp_path, seed_db, seed_index, big_corpus, sig):
    before = stored_ids(seed_db)
    workers = min(os.cpu_count() or 1, 8)
    family: dict[int, bytes] = {}
    with started(tmp_path, "index", "build", "--db", seed_db, "--corpus", big_corpus, name="build") as build:
        try:
            assert wait_until(lambda: len(analysis_workers(build.pid)) >= workers, 60, every=0.1), build.stderr()
            family = descendants(build.pid)     # the workers and multiprocessing's resource tracker
            own_cmdline = Path(f"/proc/{build.pid}/cmdline").read_bytes()
            build.proc.send_signal(sig)
            signalled = time.monotonic()
            code = build.proc.wait(10)
            took = time.monotonic() - signalled
            # A worker still starting up (importing, on a loaded machine that takes seconds) when its parent
            # died notices at the end of its start-up; before the fix they ran on with no parent for good.
            left = wait_until(lambda: not alive(family), 20, every=0.1)
            assert left, f"still running 20 s after the build ended: {alive(family)}"
        finally:
            for pid in alive(family):           # only what this test started
                os.kill(pid, signal.SIGKILL)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        # 130 for SIGTERM too: the build rolled back by itself. 143 would mean the CLI's hard exit after
        # 1.5 s had to cut it short, as when the analysis waited on a terminated pool for ever (the bot,
        # which has no such exit, then hung on shutdown holding the write lock).
        assert code == 130, (code, build.stderr())
        assert took < 2.0
        assert build.stderr().count("Interrupted") == 1 and "Traceback" not in build.stderr()
    table = processes()
    assert not [pid for pid, (ppid, state, _) in table.items() if ppid == build.pid and state != "Z"]
    assert not [pid for pid, (_, state, cmdline) in table.items() if cmdline == own_cmdline and state != "Z"]
    assert build_ids(seed_db) == [1] and integrity(seed_db) == "ok"
    assert stored_ids(seed_db) == before
    asked = asyncio.run(ask_fresh(seed_db, seed_index.corpus))
    assert asked.build == 1 and any(text.startswith(PFG) for _, text in asked.results)


# -- 7 and 8: the CLI in-process, as tests/test_cli.py runs it -----------------------------------------------


@pytest.fixture
def no_environment(monkeypatch):
    for name in ("NEWSDESK_DB", "NEWSDESK_CORPUS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("wildcard", ["%", "___", "%%%%%%%"])
def test_cite_with_a_like_wildcard_finds_no_passage_and_lists_none(capsys, no_environment, seed_db, seed_index,
                                                                   wildcard):
    code = main(["cite", wildcard, "--db", str(seed_db), "--corpus", str(seed_index.corpus)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == f"Error: No passage has the ID '{wildcard}'.\n"       # no "Closest IDs:" listing every passage
    assert out == ""


@pytest.mark.parametrize("folder", [False, True], ids=["missing", "folder"])
def test_eval_of_a_missing_file_or_a_folder_is_one_line(capsys, no_environment, tmp_path, seed_db, seed_index, folder):
    questions = tmp_path / "questions.jsonl"
    if folder:
        questions.mkdir()
    code = main(["eval", str(questions), "--db", str(seed_db), "--corpus", str(seed_index.corpus)])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and str(questions) in err
    assert out == ""
