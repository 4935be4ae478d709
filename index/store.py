"""SQLite, the source of truth: articles, passages, the compiled index, build records and feedback.

Readers and the writer are kept apart, as Datasette does it: every read goes through a read-only
connection (`mode=ro`) and the database is in WAL mode, so a read never waits for a write and always
sees the last committed build. There is one writer at a time, held by an advisory lock file beside the
database that names its holder, so a second writer can say who it is waiting for. A rebuild writes in
one BEGIN IMMEDIATE transaction: a failure, a signal or a kill -9 mid-build leaves nothing half-written.

An error is never taken for damage unless SQLite itself says so (SQLITE_CORRUPT or SQLITE_NOTADB) and
`PRAGMA quick_check` agrees; every other failure (a folder, a device, a lock, a permission) has its
own error, and nothing is moved.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import aiosqlite

from .errors import (BuildInterrupted, DatabaseBusy, DatabaseDamaged, DatabaseIsDirectory, DatabaseNotAFile, DatabasePermission,
                     DatabaseUnderFile, IndexNotBuilt, NewsdeskError, StoreError)

__all__ = ("Reader", "Writer", "WriteLock", "ArticleInfo", "Located", "PassageRecord", "PassageRow", "BuildRecord",
           "PendingAnswer",
           "Salvage",
           "SCHEMA_VERSION", "check_path", "explain", "quick_check", "salvage", "swap_in", "is_damage")

_log = logging.getLogger(__name__)
_R = TypeVar("_R")

# 2 added pending_answers, 3 passages.layout, 4 articles.file_stat. Every statement is IF NOT EXISTS, so
# running SCHEMA migrates an older file; a column added to an existing table is in _ADDED_COLUMNS.
SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    source     TEXT PRIMARY KEY,      -- corpus-relative path, "#id" appended for a .jsonl line
    file       TEXT NOT NULL,         -- corpus-relative path of the file it came from
    file_hash  TEXT NOT NULL,         -- sha256 of the file's bytes: unchanged files are not re-read
    file_stat  TEXT,                  -- its size, mtime and inode when hashed, once settled: the same stat, no new hash
    signature  TEXT NOT NULL,         -- sha256 of title, metadata and paragraphs: tells "changed" apart
    title      TEXT NOT NULL,
    url        TEXT,
    outlet     TEXT,
    published  TEXT,
    author     TEXT,
    paragraphs INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_by_file ON articles(file);
CREATE TABLE IF NOT EXISTS passages (
    id     TEXT PRIMARY KEY,          -- short ID people type into /cite
    key    TEXT NOT NULL UNIQUE,      -- sha256 of the exact text
    text   TEXT NOT NULL,             -- verbatim paragraph (or sentence-aligned part of one)
    tokens TEXT NOT NULL,             -- analysed terms, space-separated: kept so rebuilds need not re-analyse
    layout BLOB                       -- where its words and sentences stand (index/quotes.py); NULL: not laid out yet
);
CREATE TABLE IF NOT EXISTS occurrences (
    source     TEXT NOT NULL REFERENCES articles(source) ON DELETE CASCADE,
    paragraph  INTEGER NOT NULL,
    part       INTEGER NOT NULL,
    passage_id TEXT NOT NULL REFERENCES passages(id),
    section    TEXT,
    PRIMARY KEY (source, paragraph, part)
);
CREATE INDEX IF NOT EXISTS occurrences_by_passage ON occurrences(passage_id);
CREATE TABLE IF NOT EXISTS index_blobs (
    name TEXT PRIMARY KEY,            -- the compiled index (index/compiled.py owns the names)
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    id          INTEGER PRIMARY KEY,
    finished_at TEXT NOT NULL,
    corpus      TEXT NOT NULL,
    analyzer    TEXT NOT NULL,
    articles    INTEGER NOT NULL,
    passages    INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    report      TEXT NOT NULL         -- JSON: added / changed / removed counts and problems
);
CREATE TABLE IF NOT EXISTS feedback (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    passage_id TEXT NOT NULL,
    query      TEXT NOT NULL,
    vote       INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    UNIQUE (user_id, passage_id, query)
);
CREATE TABLE IF NOT EXISTS pending_answers (
    token          TEXT PRIMARY KEY,  -- the interaction token: with the application id, all an edit needs
    application_id INTEGER NOT NULL,
    created_at     REAL NOT NULL,     -- Unix time the interaction was created; its token lives 15 minutes
    kind           TEXT NOT NULL,     -- what was asked: "ask", "Find sources", ...
    ephemeral      INTEGER NOT NULL,
    shard          INTEGER NOT NULL,  -- the gateway shard it came through: a bot process recovers only its own
    question       TEXT               -- the question as asked, for the retry hint
);
"""

_ADDED_COLUMNS = (("passages", "layout", "BLOB"), ("articles", "file_stat", "TEXT"))

# A passage's primary place, the one its citation names: the earliest dated article, then by path.
_PRIMARY_FIRST = "a.published IS NULL, a.published, a.source, o.paragraph"

# Index blobs are written in pieces of this size (see Writer.replace_index).
_BLOB_PIECE = 4 * 1024 * 1024

# How long a reader waits on SQLite's own locks (only WAL recovery takes one a reader can meet).
READ_BUSY_MS = 5_000


@dataclass(frozen=True)
class ArticleInfo:
    source: str
    title: str
    url: str | None
    outlet: str | None
    published: str | None
    author: str | None = None


@dataclass(frozen=True)
class Located:
    """One place a passage stands."""

    article: ArticleInfo
    paragraph: int
    part: int
    section: str | None


@dataclass(frozen=True)
class PassageRecord:
    id: str
    text: str
    places: tuple[Located, ...]   # first is the primary citation; the rest are "also in"


@dataclass(frozen=True)
class PassageRow:
    """A passage's record with what its build stored for quoting it: its tokens and its layout bytes."""

    record: PassageRecord
    tokens: str
    layout: bytes | None


@dataclass(frozen=True)
class PendingAnswer:
    """An interaction answered with "thinking…" whose answer has not gone out yet (bot start-up recovers it)."""

    token: str
    application_id: int
    created_at: float
    kind: str
    ephemeral: bool = False
    shard: int = 0
    question: str | None = None


@dataclass(frozen=True)
class BuildRecord:
    id: int
    finished_at: str
    corpus: str
    analyzer: str
    articles: int
    passages: int
    seconds: float
    report: dict

    @property
    def label(self) -> str:
        return f"build {self.id} ({self.finished_at[:16].replace('T', ' ')} UTC)"


# -- what a path is, and what an SQLite error means --------------------------------------------------

def check_path(path: Path, writing: bool) -> None:
    """Refuse a path that cannot be a database file, before SQLite (or a rename) ever touches it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise _under_file(path) from None
    except PermissionError:
        raise DatabasePermission(f"Permission denied reading {path}.",
                                 "Check the permissions of the folders above it.") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise DatabaseIsDirectory(f"The database path {path} is a folder, not a file.",
                                      "Pass a file path, e.g. --db {}/newsdesk.db".format(path))
        if not stat.S_ISREG(mode):
            raise DatabaseNotAFile(f"The database path {path} is not a regular file (a device, pipe or socket).",
                                   "Pass the path of a database file with --db or $NEWSDESK_DB.")
        wanted = os.R_OK | (os.W_OK if writing else 0)
        if not os.access(path, wanted):
            raise DatabasePermission(f"Permission denied: {path} cannot be {'written' if writing else 'read'} "
                                     "by this user.", "Fix its permissions, or pass another --db.")
        if writing and not os.access(path.parent, os.W_OK | os.X_OK):
            raise DatabasePermission(f"Permission denied: the folder {path.parent} is not writable, and SQLite "
                                     "needs to write its journal there.", "Fix its permissions, or pass another --db.")
        # A reader creates these with the database's own mode: one run on a read-only file leaves them
        # read-only after the file itself is made writable again, and SQLite then only says "readonly database".
        for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")) if writing else ():
            if companion.exists() and not os.access(companion, os.W_OK):
                raise DatabasePermission(f"Permission denied: {companion}, SQLite's journal beside the database, "
                                         "cannot be written by this user.", "Fix its permissions, or pass another --db.")
        return
    for parent in path.parents:          # the nearest existing ancestor must be a folder
        try:
            parent_mode = os.stat(parent).st_mode
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            raise _under_file(path) from None
        except PermissionError:
            raise DatabasePermission(f"Permission denied looking into {parent}.") from None
        if not stat.S_ISDIR(parent_mode):
            raise _under_file(path)
        if writing and not os.access(parent, os.W_OK | os.X_OK):
            raise DatabasePermission(f"Permission denied: cannot create {path} (the folder {parent} is not writable).",
                                     "Fix its permissions, or pass another --db.")
        return


def _under_file(path: Path) -> DatabaseUnderFile:
    blocker = next((p for p in reversed(path.parents) if p.is_file()), path.parent)
    return DatabaseUnderFile(f"The database path {path} is inside {blocker}, which is a file, not a folder.",
                             "Pass a path in a folder with --db or $NEWSDESK_DB.")


def _code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF     # the primary code; extended codes add high bits


def is_damage(error: BaseException) -> bool:
    """SQLite's own verdict of damage, before confirmation."""
    return _code(error) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def quick_check(path: Path, immutable: bool = False) -> str | None:
    """What SQLite's quick_check finds wrong with the file, or None when it passes."""
    try:
        conn = sqlite3.connect(_ro_uri(path, immutable), uri=True)
    except sqlite3.Error as e:
        return str(e) if is_damage(e) else None
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as e:
        if not immutable and _needs_immutable(path, e):
            return quick_check(path, immutable=True)
        return str(e) if is_damage(e) else None
    finally:
        conn.close()
    return None if rows == ["ok"] else "; ".join(rows)


def explain(path: Path, error: sqlite3.Error) -> NewsdeskError:
    """The user-facing error for an SQLite failure on this database. Damage is confirmed, not guessed."""
    code = _code(error)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseBusy(f"The database {path} is locked by another process ({error}).",
                            "Wait for it to finish and try again; nothing was changed.")
    if is_damage(error):
        verdict = quick_check(path)
        if verdict:
            return DatabaseDamaged(f"The database {path} is damaged ({verdict}).",
                                   "Run: newsdesk index repair (it keeps the damaged file, rebuilds the index "
                                   "and carries over votes and build records).")
        return StoreError(f"SQLite reported damage in {path} ({error}), but its integrity check passes; "
                          "nothing was moved.", "Try again; if it persists, run: newsdesk index repair")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return DatabasePermission(f"The database {path} cannot be written ({error}).",
                                  "Fix its permissions (and its folder's), or pass another --db.")
    if code == sqlite3.SQLITE_CANTOPEN:
        return DatabasePermission(f"The database {path} cannot be opened ({error}).",
                                  "Check that its folder exists and is writable by this user.")
    if code == sqlite3.SQLITE_FULL:
        return StoreError(f"The disk holding {path} is full.", "Free some space; the previous index is unchanged.")
    return StoreError(f"The database {path} cannot be used ({error}).")


def _ro_uri(path: Path, immutable: bool = False) -> str:
    return "file:" + urllib.parse.quote(str(Path(path).absolute())) + "?mode=ro" + ("&immutable=1" if immutable else "")


def _needs_immutable(path: Path, error: sqlite3.Error) -> bool:
    """A WAL database in a folder this user cannot write, with no -wal beside it: a plain read-only
    connection cannot create the -shm it needs, so reading would fail although nothing is wrong.

    No -wal means no connection has the file open and every commit is in the main file (SQLite
    removes the -wal only after checkpointing it all), so reading it as immutable sees the last build.
    """
    return (getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_DIRECTORY
            and not Path(str(path) + "-wal").exists())


# -- reads ---------------------------------------------------------------------------------------------

class Reader:
    """Read-only async access: never takes the write lock, never changes the file, never waits for a writer."""

    def __init__(self, path: Path, db: aiosqlite.Connection, immutable: bool = False) -> None:
        self.path = path
        self._db = db
        self._immutable = immutable
        # The answer path's reads (stored_passages, latest_build) run in the worker thread that answers, on a
        # plain connection of their own: no hop through aiosqlite's thread and back for each.
        self._now: sqlite3.Connection | None = None
        self._now_lock = threading.Lock()
        self._now_closed = False
        self._has_layout = False
        self._data_version: int | None = None       # PRAGMA data_version when the two below were read
        self._latest: int | None = None             # the newest committed build's id

    @classmethod
    async def open(cls, path: Path | str) -> "Reader":
        path = Path(path)
        check_path(path, writing=False)
        if not path.exists():
            raise IndexNotBuilt(f"There is no index yet ({path} does not exist).", "Run: newsdesk index build")
        immutable = False
        while True:
            db = None
            try:
                db = await aiosqlite.connect(_ro_uri(path, immutable), uri=True, isolation_level=None)
                await db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")
                async with db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'builds'") as cursor:
                    row = await cursor.fetchone()
                has_tables = bool(row and row[0])
                break
            except sqlite3.Error as e:
                if db is not None:
                    await db.close()      # its thread would otherwise keep the process alive
                if not immutable and _needs_immutable(path, e):
                    immutable = True
                    continue
                raise await _explained(path, e) from e
        reader = cls(path, db, immutable)
        if not has_tables:
            await reader.close()
            raise IndexNotBuilt(f"There is no index yet in {path}.", "Run: newsdesk index build")
        return reader

    async def close(self) -> None:
        await self._db.close()
        await asyncio.to_thread(self._close_now)      # waits for a read under way on it

    def _close_now(self) -> None:
        with self._now_lock:
            self._now_closed = True
            if self._now is not None:
                self._now.close()
                self._now = None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            async with self._db.execute(sql, params) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]
        except sqlite3.Error as e:
            raise await _explained(self.path, e) from e

    async def current_build(self) -> BuildRecord | None:
        rows = await self._all("SELECT * FROM builds ORDER BY id DESC LIMIT 1")
        return _build_record(rows[0]) if rows else None

    async def index_blobs(self, names: Sequence[str] | None = None, prefix: str | None = None) -> dict[str, bytes]:
        """Every stored blob; or those named, and (with prefix) those whose names start with it."""
        if names is None and prefix is None:
            rows = await self._all("SELECT name, data FROM index_blobs")
        else:
            names = list(names or ())
            rows = await self._all(f"SELECT name, data FROM index_blobs WHERE name IN ({','.join('?' * len(names))}) "
                                   "OR substr(name, 1, ?) = ?", [*names, len(prefix or ""), prefix or "\x00"])
        return {name: bytes(data) for name, data in rows}

    async def passages(self, ids: Sequence[str]) -> dict[str, PassageRecord]:
        """Passages by ID with every place they stand; unknown IDs are simply absent."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        texts = dict(await self._all(f"SELECT id, text FROM passages WHERE id IN ({marks})", list(ids)))
        return _records(texts, await self._all(_places_sql(len(ids)), list(ids)))

    # -- the answer path: blocking reads, for the worker thread that answers ---------------------------

    def stored_passages(self, ids: Sequence[str]) -> tuple[int | None, dict[str, PassageRow]]:
        """Blocking: passages by ID with their tokens and layouts, and the build they were read from (read by
        the same statement as the rows, so the two agree; when no row is found, by a second one). Unknown IDs
        are absent."""
        if not ids:
            return self.latest_build(), {}

        def read(conn: sqlite3.Connection) -> tuple[int | None, dict[str, PassageRow]]:
            # One statement, so one read transaction: the build id comes with the rows.
            rows = conn.execute(_stored_sql(len(ids), self._has_layout), list(ids)).fetchall()
            if not rows:
                return _latest_build(conn), {}
            stored = {pid: (text, tokens, layout) for pid, text, tokens, layout, *_ in rows}
            records = _records({pid: text for pid, (text, _, _) in stored.items()},
                               (row[:1] + row[4:-1] for row in rows))
            return rows[0][-1], {pid: PassageRow(r, stored[pid][1], stored[pid][2]) for pid, r in records.items()}

        return self._reading(read)

    def latest_build(self) -> int | None:
        """Blocking: the id of the newest committed build. Cheap when nothing was committed since the last
        call (PRAGMA data_version says so without reading a table), which is most answers."""
        return self._reading(lambda conn: self._latest)

    def _reading(self, read: Callable[[sqlite3.Connection], _R]) -> _R:
        with self._now_lock:
            if self._now_closed:
                raise IndexNotBuilt("Newsdesk is shutting down.", "Try again in a minute.")
            try:
                if self._now is None:
                    conn = sqlite3.connect(_ro_uri(self.path, self._immutable), uri=True, isolation_level=None,
                                           check_same_thread=False)
                    conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")
                    self._now = conn
                version = self._now.execute("PRAGMA data_version").fetchone()[0]
                if version != self._data_version:
                    # Another connection committed: a new build, perhaps one that added the layout column in place.
                    columns = self._now.execute("PRAGMA table_info(passages)").fetchall()
                    self._has_layout = any(column[1] == "layout" for column in columns)
                    self._latest, self._data_version = _latest_build(self._now), version
                return read(self._now)
            except sqlite3.Error as e:
                raise explain(self.path, e) from e

    async def closest_ids(self, wanted: str, limit: int = 3) -> list[str]:
        """IDs that share the longest prefix with a mistyped one. A range, not LIKE: no wildcard to escape."""
        wanted = wanted.strip().lower()
        for length in range(min(len(wanted), 7), 0, -1):
            prefix = wanted[:length]
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = await self._all("SELECT id FROM passages WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                                   (prefix, upper, limit))
            if rows:
                return [r[0] for r in rows]
        return []

    async def articles(self, offset: int = 0, limit: int = 10) -> list[tuple[ArticleInfo, int]]:
        """Indexed articles, newest first, with their paragraph counts."""
        rows = await self._all(
            """SELECT source, title, url, outlet, published, author, paragraphs FROM articles
               ORDER BY published IS NULL, published DESC, title LIMIT ? OFFSET ?""", (limit, offset))
        return [(ArticleInfo(*row[:6]), row[6]) for row in rows]

    async def article(self, source: str) -> ArticleInfo | None:
        rows = await self._all("SELECT source, title, url, outlet, published, author FROM articles WHERE source = ?",
                               (source,))
        return ArticleInfo(*rows[0]) if rows else None

    async def count_articles(self) -> int:
        return (await self._all("SELECT count(*) FROM articles"))[0][0]

    async def find_articles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title or path contains the text (case-insensitive), for autocompletion."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._all(
            "SELECT source, title, url, outlet, published, author FROM articles "
            "WHERE title LIKE ? ESCAPE '\\' OR source LIKE ? ESCAPE '\\' ORDER BY title LIMIT ?",
            (pattern, pattern, limit))
        return [ArticleInfo(*row) for row in rows]

    async def passage_ids_of(self, source: str) -> set[str]:
        return {row[0] for row in await self._all("SELECT passage_id FROM occurrences WHERE source = ?", (source,))}

    async def feedback_totals(self, passage_id: str) -> tuple[int, int]:
        rows = await self._all(
            "SELECT coalesce(sum(vote = 1), 0), coalesce(sum(vote = -1), 0) FROM feedback WHERE passage_id = ?",
            (passage_id,))
        return rows[0][0], rows[0][1]


async def _explained(path: Path, error: sqlite3.Error) -> NewsdeskError:
    return await asyncio.to_thread(explain, path, error)   # confirming damage reads the whole file


_PLACE_COLUMNS = "o.paragraph, o.part, o.section, a.source, a.title, a.url, a.outlet, a.published, a.author"


def _places_sql(count: int) -> str:
    """Every place of `count` passages, primary first: (passage id, paragraph, part, section, article...)."""
    return f"""SELECT o.passage_id, {_PLACE_COLUMNS} FROM occurrences o JOIN articles a USING (source)
               WHERE o.passage_id IN ({','.join('?' * count)}) ORDER BY {_PRIMARY_FIRST}"""


def _stored_sql(count: int, layout: bool) -> str:
    """_places_sql's rows with each passage's text, tokens and layout (NULL from a file older than the column)
    after its id, and the newest build's id last."""
    return f"""SELECT p.id, p.text, p.tokens, {'p.layout' if layout else 'NULL'}, {_PLACE_COLUMNS},
                      (SELECT max(id) FROM builds)
               FROM passages p JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
               WHERE p.id IN ({','.join('?' * count)}) ORDER BY {_PRIMARY_FIRST}"""


def _records(texts: dict[str, str], place_rows: Iterable[tuple]) -> dict[str, PassageRecord]:
    places: dict[str, list[Located]] = {pid: [] for pid in texts}
    for pid, paragraph, part, section, *article in place_rows:
        if pid in places:     # a passage committed between the two reads is left for the next ask
            places[pid].append(Located(ArticleInfo(*article), paragraph, part, section))
    return {pid: PassageRecord(pid, texts[pid], tuple(places[pid])) for pid in texts if places[pid]}


def _latest_build(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT max(id) FROM builds").fetchone()[0]


# -- the one writer ------------------------------------------------------------------------------------

class WriteLock:
    """An advisory lock file beside the database: one writer at a time, and who it is.

    flock dies with its holder (kill -9 included), so a crashed writer never leaves a stale lock; the
    file itself stays (it is tiny) and names the last holder.
    """

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, what: str, on_wait: Callable[[str], None] | None = None,
                cancelled: Callable[[], bool] = lambda: False, timeout: float | None = None) -> None:
        """Take the lock, waiting for a current holder; on_wait is told once who that is."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DatabasePermission(f"Cannot create the lock file {self.path} ({e.strerror}).",
                                     "The database's folder must be writable by this user.") from e
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told and on_wait is not None:
                        on_wait(self.describe_holder())
                        told = True
                    if cancelled() or (deadline is not None and time.monotonic() > deadline):
                        raise DatabaseBusy(f"{self.describe_holder()}; gave up waiting.",
                                           "Try again when it has finished.")
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time(), "what": what}).encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def describe_holder(self) -> str:
        info = self.holder()
        if not info:
            return "Another process is writing to the database"
        seconds = max(0, time.time() - float(info.get("started", time.time())))
        return f"A {info.get('what', 'rebuild')} is running (process {info.get('pid', '?')}, for {seconds:.0f} s)"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing drops the flock
            self._fd = None

    @contextmanager
    def held(self, what: str, **kwargs: Any) -> Iterator["WriteLock"]:
        self.acquire(what, **kwargs)
        try:
            yield self
        finally:
            self.release()


class Writer:
    """The one write connection (plain sqlite3: it lives in one worker thread, off the event loop)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._interrupted = False

    @classmethod
    def open(cls, path: Path | str, busy_ms: int = 60_000) -> "Writer":
        path = Path(path)
        check_path(path, writing=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except PermissionError as e:
            raise DatabasePermission(f"Permission denied creating the folder {path.parent} ({e.strerror}).") from e
        conn = None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"The database {path} was written by a newer Newsdesk (schema {version}).",
                                 "Upgrade Newsdesk, or pass another --db.")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            if version < SCHEMA_VERSION or not _has_tables(conn):
                conn.executescript(SCHEMA)
                for table, column, kind in _ADDED_COLUMNS:
                    if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as e:
            if conn is not None:
                conn.close()
            raise explain(path, e) from e
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator["Writer"]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception. An SQLite error inside becomes the
        user-facing error explain() gives (damage confirmed), or BuildInterrupted after interrupt()."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            if self.conn.in_transaction:
                self.conn.rollback()
            if self._interrupted:
                raise BuildInterrupted("The rebuild was interrupted; nothing was changed.",
                                       "The previous index is still answering.") from e
            raise explain(self.path, e) from e

    def interrupt(self) -> None:
        """Stop the running statement from another thread: the transaction then rolls back."""
        self._interrupted = True
        self.conn.interrupt()

    # -- the statements of a rebuild --------------------------------------------------------------

    def file_states(self) -> dict[str, tuple[str, str | None]]:
        """File -> (sha256 of its bytes, its stat when hashed or None), for every file the index holds."""
        return {file: (digest, stat) for file, digest, stat in
                self.conn.execute("SELECT DISTINCT file, file_hash, file_stat FROM articles")}

    def _rows_in(self, sql: str, values: Iterable[str]) -> Iterator[tuple]:
        """The rows of sql, whose "{marks}" is an IN list, for all the values: in pieces of 500 (SQLite bounds
        the variables of a statement), the values sorted and each once."""
        for chunk in _chunks(sorted(set(values)), 500):
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def set_file_stats(self, stats: dict[str, str | None]) -> None:
        """Record the stat of files hashed again and found unchanged (touched, or hashed before stats were kept)."""
        self.conn.executemany("UPDATE articles SET file_stat = ? WHERE file = ?", [(st, f) for f, st in stats.items()])

    def article_signatures(self, files: Iterable[str]) -> dict[str, str]:
        """Source -> signature, for the articles of the given files."""
        return dict(self._rows_in("SELECT source, signature FROM articles WHERE file IN ({marks})", files))

    def occurrence_keys(self, files: Iterable[str]) -> dict[tuple[str, int, int], str]:
        """(source, paragraph, part) -> passage key, for the articles of the given files."""
        return {(source, paragraph, part): key for source, paragraph, part, key in self._rows_in(
            """SELECT o.source, o.paragraph, o.part, p.key FROM occurrences o
               JOIN passages p ON p.id = o.passage_id JOIN articles a USING (source) WHERE a.file IN ({marks})""", files)}

    def passage_ids_by_key(self, keys: Iterable[str]) -> dict[str, str]:
        """Key -> ID, for the stored passages among these keys."""
        return dict(self._rows_in("SELECT key, id FROM passages WHERE key IN ({marks})", keys))

    def ids_starting(self, prefixes: Iterable[str]) -> set[str]:
        """The stored passage IDs that start with one of these prefixes (a new ID must not be one of them)."""
        found: set[str] = set()
        for prefix in prefixes:
            found.update(pid for (pid,) in self.conn.execute(
                "SELECT id FROM passages WHERE id >= ? AND id < ?", (prefix, prefix + "\uffff")))
        return found

    def all_passage_ids(self) -> set[str]:
        return {pid for (pid,) in self.conn.execute("SELECT id FROM passages")}

    def read_every_passage_row(self) -> int:
        """Read each row of the passages table where it is stored (not through an index), keeping nothing:
        what meets a damaged page, so that a build after a reader's "damaged" error still recovers the database."""
        return self.conn.execute("SELECT count(key) FROM passages NOT INDEXED").fetchone()[0]

    def delete_files(self, files: Iterable[str]) -> None:
        for chunk in _chunks(list(files), 500):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(
                f"DELETE FROM occurrences WHERE source IN (SELECT source FROM articles WHERE file IN ({marks}))", chunk)
            self.conn.execute(f"DELETE FROM articles WHERE file IN ({marks})", chunk)

    def insert_articles(self, rows: Iterable[tuple]) -> None:
        self.conn.executemany(
            """INSERT INTO articles (source, file, file_hash, file_stat, signature, title, url, outlet, published, author,
                                     paragraphs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)

    def insert_passages(self, rows: Iterable[tuple[str, str, str, str, bytes]]) -> None:
        """(id, key, text, tokens, layout) rows."""
        self.conn.executemany("INSERT INTO passages (id, key, text, tokens, layout) VALUES (?, ?, ?, ?, ?)", rows)

    def insert_occurrences(self, rows: Iterable[tuple]) -> None:
        self.conn.executemany(
            "INSERT INTO occurrences (source, paragraph, part, passage_id, section) VALUES (?, ?, ?, ?, ?)", rows)

    def update_tokens(self, rows: Iterable[tuple[str, bytes, str]]) -> None:
        """(tokens, layout, key): passages whose analysis changed while their text did not."""
        self.conn.executemany("UPDATE passages SET tokens = ?, layout = ? WHERE key = ?", rows)

    def texts_to_lay_out(self, layout_format: int, after: int = 0, limit: int = 20_000) -> list[tuple[int, str]]:
        """(rowid, text) of passages without a layout of this format, the next `limit` after rowid `after`."""
        return self.conn.execute(
            "SELECT rowid, text FROM passages WHERE rowid > ? AND (layout IS NULL OR substr(layout, 1, 1) != ?) "
            "ORDER BY rowid LIMIT ?", (after, bytes((layout_format,)), limit)).fetchall()

    def set_layouts(self, rows: Iterable[tuple[bytes, int]]) -> None:
        """(layout, rowid) pairs."""
        self.conn.executemany("UPDATE passages SET layout = ? WHERE rowid = ?", rows)

    def delete_orphan_passages(self, candidates: Iterable[str]) -> int:
        """Delete those of the candidates no article holds any more (only passages whose places were deleted
        can be orphans); how many were deleted."""
        deleted = 0
        for chunk in _chunks(sorted(set(candidates)), 500):
            cursor = self.conn.execute(
                f"""DELETE FROM passages WHERE id IN ({','.join('?' * len(chunk))})
                    AND NOT EXISTS (SELECT 1 FROM occurrences o WHERE o.passage_id = passages.id)""", chunk)
            deleted += cursor.rowcount
        return deleted

    def passages_with_context(self) -> Iterator[tuple[str, str, str, str | None, str]]:
        """(id, tokens, title, section, source) of every passage in ID order, the document order of the
        compiled index; title, section and article source are those of the passage's primary place (the
        one its citation names)."""
        last = None
        for row in self.conn.execute(
                f"""SELECT p.id, p.tokens, a.title, o.section, a.source
                   FROM passages p JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
                   ORDER BY p.id, {_PRIMARY_FIRST}"""):
            if row[0] != last:
                last = row[0]
                yield row

    def texts(self) -> Iterator[str]:
        for (text,) in self.conn.execute("SELECT text FROM passages ORDER BY id"):
            yield text

    # -- what a delta segment reads (index/segments.py): only the passages and articles a build touched --

    def context_of(self, ids: Iterable[str]) -> Iterator[tuple[str, str, str, str | None, str]]:
        """passages_with_context for these passage IDs only (absent ones are left out), in ID order."""
        last = None
        for row in self._rows_in(f"""SELECT p.id, p.tokens, a.title, o.section, a.source
                                     FROM passages p JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
                                     WHERE p.id IN ({{marks}}) ORDER BY p.id, {_PRIMARY_FIRST}""", ids):
            if row[0] != last:
                last = row[0]
                yield row

    def primary_sources(self, ids: Iterable[str]) -> dict[str, str]:
        """Passage ID -> the article of its primary place, for these passages (absent ones are left out)."""
        return {pid: source for pid, _tokens, _title, _section, source in self.context_of(ids)}

    def passages_in(self, sources: Iterable[str]) -> set[str]:
        """The IDs of every passage that stands in one of these articles."""
        return {pid for (pid,) in self._rows_in("SELECT DISTINCT passage_id FROM occurrences WHERE source IN ({marks})", sources)}

    def texts_by_id(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(self._rows_in("SELECT id, text FROM passages WHERE id IN ({marks})", ids))

    def titles(self, sources: Iterable[str]) -> dict[str, str]:
        """Source -> title, for the articles among these that exist."""
        return dict(self._rows_in("SELECT source, title FROM articles WHERE source IN ({marks})", sources))

    def index_blobs(self, names: Sequence[str] | None = None) -> dict[str, bytes]:
        if names is None:
            rows = self.conn.execute("SELECT name, data FROM index_blobs")
        else:
            rows = self.conn.execute(f"SELECT name, data FROM index_blobs WHERE name IN ({','.join('?' * len(names))})",
                                     list(names))
        return {name: bytes(data) for name, data in rows}

    def replace_index(self, blobs: dict[str, bytes | memoryview], prefix: str = "") -> None:
        """Each blob is written a piece at a time: handed to SQLite whole, a 100+ MB array is copied in one
        call that holds the GIL (and stalls the bot's event loop) for as long.

        With a prefix, only the blobs whose names start with it are replaced (a delta segment's); the rest stay."""
        self.conn.execute("DELETE FROM index_blobs WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))
        for name, data in blobs.items():
            view = memoryview(data).cast("B")
            cursor = self.conn.execute("INSERT INTO index_blobs (name, data) VALUES (?, zeroblob(?))", (name, len(view)))
            with self.conn.blobopen("index_blobs", "data", cursor.lastrowid or 0) as blob:
                for start in range(0, len(view), _BLOB_PIECE):
                    blob.write(view[start:start + _BLOB_PIECE])

    def add_build(self, corpus: str, analyzer: str, articles: int, passages: int, seconds: float, report: dict) -> int:
        cursor = self.conn.execute(
            """INSERT INTO builds (finished_at, corpus, analyzer, articles, passages, seconds, report)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (_now(), corpus, analyzer, articles, passages, seconds, json.dumps(report)))
        return int(cursor.lastrowid or 0)

    def last_analyzer(self) -> str | None:
        row = self.conn.execute("SELECT analyzer FROM builds ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def counts(self) -> tuple[int, int]:
        articles, passages = self.conn.execute(
            "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM passages)").fetchone()
        return articles, passages

    def current_build(self) -> BuildRecord | None:
        row = self.conn.execute("SELECT * FROM builds ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _build_record(row)

    # -- user data ------------------------------------------------------------------------------

    def record_feedback(self, votes: Iterable[tuple[str, int, str, str, int]]) -> None:
        """(at, user_id, passage_id, query, vote); one vote per person, passage and question: a new one replaces it."""
        self.conn.executemany(
            """INSERT INTO feedback (at, user_id, passage_id, query, vote) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (user_id, passage_id, query) DO UPDATE SET vote = excluded.vote, at = excluded.at""",
            votes)

    def write_pending(self, changes: dict[str, PendingAnswer | None]) -> None:
        """token -> the answer to remember, or None to forget it."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO pending_answers (token, application_id, created_at, kind, ephemeral, shard, question) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(a.token, a.application_id, a.created_at, a.kind, int(a.ephemeral), a.shard, a.question)
             for a in changes.values() if a is not None])
        self.conn.executemany("DELETE FROM pending_answers WHERE token = ?",
                              [(token,) for token, a in changes.items() if a is None])

    def pending_answers(self, since: float, shards: Iterable[int] | None = None) -> list[PendingAnswer]:
        """Remembered answers created at or after `since` (Unix time), of the given shards (None: all)."""
        rows = self.conn.execute(
            "SELECT token, application_id, created_at, kind, ephemeral, shard, question FROM pending_answers "
            "WHERE created_at >= ? ORDER BY created_at", (since,)).fetchall()
        wanted = None if shards is None else set(shards)
        return [PendingAnswer(token, app, created, kind, bool(ephemeral), shard, question)
                for token, app, created, kind, ephemeral, shard, question in rows
                if wanted is None or shard in wanted]

    def forget_pending_before(self, before: float) -> int:
        """Drop answers created before `before`: their tokens are dead, whoever recorded them."""
        return self.conn.execute("DELETE FROM pending_answers WHERE created_at < ?", (before,)).rowcount

    def restore(self, saved: "Salvage") -> None:
        """Put salvaged user data into a fresh database (inside a transaction)."""
        self.conn.executemany("INSERT OR IGNORE INTO builds VALUES (?, ?, ?, ?, ?, ?, ?, ?)", saved.builds)
        self.conn.executemany("INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?, ?)", saved.feedback)


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'builds'").fetchone()[0] > 0


# -- damage: what can be saved, and the swap -----------------------------------------------------------

@dataclass
class Salvage:
    """The user data read back from a damaged database: rows as stored, and what could not be read."""

    builds: list[tuple] = field(default_factory=list)
    feedback: list[tuple] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def summary(self) -> str:
        said = f"recovered {len(self.feedback)} votes and {len(self.builds)} build records"
        return said + (f" ({'; '.join(self.unreadable)})" if self.unreadable else "")


def salvage(path: Path) -> Salvage:
    """Read feedback and build records from a damaged file, row by row from both ends around bad pages."""
    saved = Salvage()
    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True)
    except sqlite3.Error as e:
        saved.unreadable.append(f"nothing could be read: {e}")
        return saved
    try:
        for table, rows in (("builds", saved.builds), ("feedback", saved.feedback)):
            complete = _read_rows(conn, f"SELECT * FROM {table} ORDER BY id", rows)
            if not complete:
                last = rows[-1][0] if rows else None
                before = len(rows)
                _read_rows(conn, f"SELECT * FROM {table} ORDER BY id DESC", rows, stop_at=last)
                saved.unreadable.append(f"some {table} rows were unreadable; {len(rows)} kept"
                                        if rows or before else f"the {table} table was unreadable")
    finally:
        conn.close()
    return saved


def _read_rows(conn: sqlite3.Connection, sql: str, into: list[tuple], stop_at: Any = None) -> bool:
    """Append rows until the end (True) or an error (False); a backward pass stops where the forward one ended."""
    try:
        for row in conn.execute(sql):
            if stop_at is not None and row[0] <= stop_at:
                return True
            into.append(tuple(row))
    except sqlite3.DatabaseError:
        return False
    return True


def swap_in(fresh: Path, path: Path) -> Path:
    """Replace a proven-damaged database with a freshly built one; the damaged file (and its journal) is
    kept under a new name, never deleted. Returns that name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.link(path, aside)
    # A journal left beside the damaged file must never be replayed into the new one: it goes aside too.
    for suffix in ("-wal", "-shm"):
        companion = Path(str(path) + suffix)
        if companion.exists():
            os.replace(companion, Path(str(aside) + suffix))
    os.replace(fresh, path)            # atomic: readers see the damaged file or the new one, never neither
    return aside


def _build_record(row: tuple) -> BuildRecord:
    build_id, finished_at, corpus, analyzer, articles, passages, seconds, report = row
    return BuildRecord(build_id, finished_at, corpus, analyzer, articles, passages, seconds, json.loads(report))


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())

