"""SQLite, the source of truth: articles, passages, the compiled index and build records. The schema lives here.

Every read goes through one aiosqlite connection; a rebuild writes on its own connection inside one
BEGIN IMMEDIATE transaction, so readers (WAL) keep seeing the previous index until it commits, and a
failure or a kill -9 mid-build leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterable, Sequence

import aiosqlite

from .errors import NewsdeskError

__all__ = ("Store", "StoreCorrupt", "ArticleInfo", "Located", "PassageRecord", "BuildRecord", "Writer", "SCHEMA_VERSION")

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    source     TEXT PRIMARY KEY,      -- corpus-relative path, "#id" appended for a .jsonl line
    file       TEXT NOT NULL,         -- corpus-relative path of the file it came from
    file_hash  TEXT NOT NULL,         -- sha256 of the file's bytes: unchanged files are not re-read
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
    tokens TEXT NOT NULL              -- analysed terms, space-separated: kept so rebuilds need not re-analyse
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
    name TEXT PRIMARY KEY,            -- compiled BM25 arrays, passage order, sentence model, aliases
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
"""


# A passage's primary place, the one its citation names: the earliest dated article, then by path.
_PRIMARY_FIRST = "a.published IS NULL, a.published, a.source, o.paragraph"


class StoreCorrupt(NewsdeskError):
    """The database file exists but is not a readable Newsdesk database."""


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


class Store:
    """Async access to one Newsdesk database file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> "Store":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await _connect(self.path)
            await self._db.executescript(SCHEMA)
            await self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await self._db.commit()
        except sqlite3.DatabaseError as e:
            await self.close()
            raise StoreCorrupt(f"The database {self.path} is damaged ({e}).") from e
        return self

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> "Store":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("Store is not open")
        return self._db

    # -- reads ----------------------------------------------------------------------------------

    async def current_build(self) -> BuildRecord | None:
        async with self.db.execute("SELECT * FROM builds ORDER BY id DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        return None if row is None else _build_record(row)

    async def index_blobs(self) -> dict[str, bytes]:
        async with self.db.execute("SELECT name, data FROM index_blobs") as cursor:
            return {name: bytes(data) for name, data in await cursor.fetchall()}

    async def passages(self, ids: Sequence[str]) -> dict[str, PassageRecord]:
        """Passages by ID with every place they stand; unknown IDs are simply absent."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        async with self.db.execute(f"SELECT id, text FROM passages WHERE id IN ({marks})", list(ids)) as cursor:
            texts = dict(await cursor.fetchall())
        places: dict[str, list[Located]] = {pid: [] for pid in texts}
        async with self.db.execute(
            f"""SELECT o.passage_id, o.paragraph, o.part, o.section,
                       a.source, a.title, a.url, a.outlet, a.published, a.author
                FROM occurrences o JOIN articles a USING (source)
                WHERE o.passage_id IN ({marks})
                ORDER BY {_PRIMARY_FIRST}""",
            list(ids),
        ) as cursor:
            async for pid, paragraph, part, section, *article in cursor:
                places[pid].append(Located(ArticleInfo(*article), paragraph, part, section))
        return {pid: PassageRecord(pid, texts[pid], tuple(places[pid])) for pid in texts}

    async def closest_ids(self, wanted: str, limit: int = 3) -> list[str]:
        """IDs that share the longest prefix with a mistyped one (then the nearest in order)."""
        wanted = wanted.strip().lower()
        for length in range(min(len(wanted), 7), 0, -1):
            async with self.db.execute(
                "SELECT id FROM passages WHERE id LIKE ? ORDER BY id LIMIT ?", (wanted[:length] + "%", limit)
            ) as cursor:
                rows = [r[0] for r in await cursor.fetchall()]
            if rows:
                return rows
        return []

    async def articles(self, offset: int = 0, limit: int = 10) -> list[tuple[ArticleInfo, int]]:
        """Indexed articles, newest first, with their paragraph counts."""
        async with self.db.execute(
            """SELECT source, title, url, outlet, published, author, paragraphs FROM articles
               ORDER BY published IS NULL, published DESC, title LIMIT ? OFFSET ?""",
            (limit, offset),
        ) as cursor:
            return [(ArticleInfo(*row[:6]), row[6]) async for row in cursor]

    async def count_articles(self) -> int:
        async with self.db.execute("SELECT count(*) FROM articles") as cursor:
            return (await cursor.fetchone())[0]

    async def find_articles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title contains the text (case-insensitive), for autocompletion."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self.db.execute(
            "SELECT source, title, url, outlet, published, author FROM articles "
            "WHERE title LIKE ? ESCAPE '\\' OR source LIKE ? ESCAPE '\\' ORDER BY title LIMIT ?",
            (pattern, pattern, limit),
        ) as cursor:
            return [ArticleInfo(*row) async for row in cursor]

    async def passage_ids_of(self, source: str) -> set[str]:
        async with self.db.execute("SELECT passage_id FROM occurrences WHERE source = ?", (source,)) as cursor:
            return {row[0] async for row in cursor}

    async def record_feedback(self, user_id: int, passage_id: str, query: str, vote: int) -> None:
        """One vote per person, passage and question: voting again replaces the earlier vote."""
        async with self.writer() as db:
            await db.execute(
                """INSERT INTO feedback (at, user_id, passage_id, query, vote) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (user_id, passage_id, query) DO UPDATE SET vote = excluded.vote, at = excluded.at""",
                (_now(), user_id, passage_id, query, vote),
            )

    async def feedback_totals(self, passage_id: str) -> tuple[int, int]:
        async with self.db.execute(
            "SELECT coalesce(sum(vote = 1), 0), coalesce(sum(vote = -1), 0) FROM feedback WHERE passage_id = ?",
            (passage_id,),
        ) as cursor:
            up, down = await cursor.fetchone()
        return up, down

    # -- writes ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[aiosqlite.Connection]:
        """A separate connection holding the write lock for one transaction; rolled back on error."""
        db = await _connect(self.path)
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.rollback()
                raise
            await db.commit()
        finally:
            await db.close()

    @asynccontextmanager
    async def rebuild(self) -> AsyncIterator["Writer"]:
        async with self.writer() as db:
            yield Writer(db)


class Writer:
    """The statements of a rebuild, run inside Store.rebuild()'s single transaction."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def file_hashes(self) -> dict[str, str]:
        async with self.db.execute("SELECT DISTINCT file, file_hash FROM articles") as cursor:
            return dict(await cursor.fetchall())

    async def article_signatures(self) -> dict[str, str]:
        async with self.db.execute("SELECT source, signature FROM articles") as cursor:
            return dict(await cursor.fetchall())

    async def occurrence_keys(self, files: Iterable[str]) -> dict[tuple[str, int, int], str]:
        """(source, paragraph, part) -> passage key, for the articles of the given files."""
        files = list(files)
        result: dict[tuple[str, int, int], str] = {}
        for chunk in _chunks(files, 500):
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"""SELECT o.source, o.paragraph, o.part, p.key FROM occurrences o
                    JOIN passages p ON p.id = o.passage_id JOIN articles a USING (source)
                    WHERE a.file IN ({marks})""",
                chunk,
            ) as cursor:
                async for source, paragraph, part, key in cursor:
                    result[(source, paragraph, part)] = key
        return result

    async def passage_ids_by_key(self) -> dict[str, str]:
        """key -> id for every stored passage."""
        async with self.db.execute("SELECT key, id FROM passages") as cursor:
            return dict(await cursor.fetchall())

    async def delete_files(self, files: Iterable[str]) -> None:
        for chunk in _chunks(list(files), 500):
            marks = ",".join("?" * len(chunk))
            await self.db.execute(
                f"DELETE FROM occurrences WHERE source IN (SELECT source FROM articles WHERE file IN ({marks}))", chunk)
            await self.db.execute(f"DELETE FROM articles WHERE file IN ({marks})", chunk)

    async def insert_articles(self, rows: Iterable[tuple]) -> None:
        await self.db.executemany(
            """INSERT INTO articles (source, file, file_hash, signature, title, url, outlet, published, author, paragraphs)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )

    async def insert_passages(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        await self.db.executemany("INSERT INTO passages (id, key, text, tokens) VALUES (?, ?, ?, ?)", rows)

    async def insert_occurrences(self, rows: Iterable[tuple]) -> None:
        await self.db.executemany(
            "INSERT INTO occurrences (source, paragraph, part, passage_id, section) VALUES (?, ?, ?, ?, ?)", rows)

    async def update_tokens(self, rows: Iterable[tuple[str, str]]) -> None:
        """(tokens, key) pairs: passages whose analysis changed while their text did not."""
        await self.db.executemany("UPDATE passages SET tokens = ? WHERE key = ?", rows)

    async def delete_orphan_passages(self) -> int:
        cursor = await self.db.execute(
            "DELETE FROM passages WHERE id NOT IN (SELECT DISTINCT passage_id FROM occurrences)")
        return cursor.rowcount

    async def passages_with_context(self) -> list[tuple[str, str, str, str | None]]:
        """(id, tokens, title, section) of every passage in ID order, the document order of the compiled
        index; title and section are those of the passage's primary place (the one its citation names)."""
        async with self.db.execute(
            f"""SELECT p.id, p.tokens, a.title, o.section
               FROM passages p JOIN occurrences o ON o.passage_id = p.id JOIN articles a USING (source)
               ORDER BY p.id, {_PRIMARY_FIRST}"""
        ) as cursor:
            rows, last = [], None
            for row in await cursor.fetchall():    # one hop to the database thread, not one per row
                if row[0] != last:
                    rows.append(row)
                    last = row[0]
            return rows

    async def replace_index(self, blobs: dict[str, bytes]) -> None:
        await self.db.execute("DELETE FROM index_blobs")
        await self.db.executemany("INSERT INTO index_blobs (name, data) VALUES (?, ?)", blobs.items())

    async def add_build(self, corpus: str, analyzer: str, articles: int, passages: int, seconds: float, report: dict) -> int:
        cursor = await self.db.execute(
            """INSERT INTO builds (finished_at, corpus, analyzer, articles, passages, seconds, report)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (_now(), corpus, analyzer, articles, passages, seconds, json.dumps(report)),
        )
        return cursor.lastrowid

    async def last_analyzer(self) -> str | None:
        async with self.db.execute("SELECT analyzer FROM builds ORDER BY id DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        return row[0] if row else None

    async def counts(self) -> tuple[int, int]:
        async with self.db.execute("SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM passages)") as cursor:
            return tuple(await cursor.fetchone())


async def _connect(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA busy_timeout = 60000")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()    # its thread would otherwise keep the process alive
        raise
    return db


def _build_record(row: tuple) -> BuildRecord:
    build_id, finished_at, corpus, analyzer, articles, passages, seconds, report = row
    return BuildRecord(build_id, finished_at, corpus, analyzer, articles, passages, seconds, json.loads(report))


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
