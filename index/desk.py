"""The engine as the CLI and the bot use it: one store, the searcher loaded from it, and rebuilds that swap in."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index
from .build import INDEX_FORMAT, BuildReport, Progress, index_format, problem_line, rebuild
from .errors import IndexNotBuilt, PassageNotFound, RebuildInProgress
from .listing import Named, focus_of, names_in_quotes
from .quotes import Quote, select_quote
from .search import Hit, Searcher, SearchResult
from .store import BuildRecord, PassageRecord, Store, StoreCorrupt
from .vocabulary import Vocabulary

__all__ = ("Newsdesk", "Answer", "Result", "default_corpus", "default_db")

_log = logging.getLogger(__name__)


def default_corpus() -> Path:
    """$NEWSDESK_CORPUS, else the articles shipped beside the package."""
    env = os.environ.get("NEWSDESK_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "corpus"


def default_db() -> Path:
    """$NEWSDESK_DB, else newsdesk.db in the user's data folder."""
    env = os.environ.get("NEWSDESK_DB")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "newsdesk" / "newsdesk.db"


@dataclass(frozen=True)
class Result:
    record: PassageRecord
    hit: Hit
    quote: Quote


@dataclass(frozen=True)
class Answer:
    search: SearchResult
    results: list[Result]
    build: BuildRecord
    seconds: float
    focus: str | None = None              # "countries", "organisations", "people" for a list question
    named: tuple[Named, ...] = ()         # the names of that kind standing in the quotes

    @property
    def abstained(self) -> str | None:
        return self.search.abstained


class Newsdesk:
    """Open with `await Newsdesk.open(db, corpus)`; ask, cite and rebuild; close when done."""

    def __init__(self, store: Store, corpus: Path) -> None:
        self.store = store
        self.corpus = corpus
        self.searcher: Searcher | None = None
        self.build: BuildRecord | None = None
        self.notices: list[str] = []          # what the person should be told about start-up
        self._rebuild_lock = asyncio.Lock()

    @classmethod
    async def open(cls, db: Path | str, corpus: Path | str | None = None, progress: Progress | None = None,
                   build_if_missing: bool = True, load: bool = True) -> "Newsdesk":
        """Load the stored index; build it first if there is none, or if the database was damaged.

        load=False only opens the database (for a caller about to rebuild anyway).
        """
        db, corpus = Path(db), Path(corpus) if corpus else default_corpus()
        notices = []
        try:
            store = await Store(db).open()
        except StoreCorrupt as e:
            aside = db.with_name(f"{db.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                if Path(str(db) + suffix).exists():
                    os.replace(str(db) + suffix, str(aside) + suffix)
            notices.append(f"{e} It was moved to {aside.name} and the index is rebuilt from {corpus}.")
            store = await Store(db).open()
        desk = cls(store, corpus)
        desk.notices = notices
        if not load:
            return desk
        try:
            try:
                await desk.reload()
            except IndexNotBuilt as e:
                if not build_if_missing:
                    raise
                if not notices:
                    desk.notices.append(f"{e.message} Building it from {corpus}.")
                report = await desk.rebuild(progress)
                desk.notices += [problem_line(p) for p in report.problems]
        except BaseException:
            await store.close()
            raise
        return desk

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> "Newsdesk":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def reload(self) -> None:
        """Swap in the newest stored index: searches already running finish on the old one."""
        build = await self.store.current_build()
        if build is None:
            raise IndexNotBuilt("There is no index yet.", "Run: newsdesk index build")
        blobs = await self.store.index_blobs()
        if index_format(blobs) != INDEX_FORMAT:
            raise IndexNotBuilt("The stored index was made by another version of Newsdesk.", "Run: newsdesk index build")
        self.searcher = await asyncio.to_thread(_searcher_from, blobs)
        self.build = build

    @property
    def rebuilding(self) -> bool:
        return self._rebuild_lock.locked()

    async def rebuild(self, progress: Progress | None = None, corpus: Path | None = None) -> BuildReport:
        """Incremental rebuild, then swap. One at a time: a second call while one runs is refused."""
        if self._rebuild_lock.locked():
            raise RebuildInProgress("A rebuild is already running.", "Wait for it to finish; its report will follow.")
        async with self._rebuild_lock:
            report = await rebuild(self.store, corpus or self.corpus, progress)
            await self.reload()
        return report

    async def ask(self, question: str, k: int = 5, offset: int = 0, source: str | None = None) -> Answer:
        """The best k passages for a question (after offset), with their places and quotes."""
        searcher, build = self._loaded()
        started = time.perf_counter()
        within = await self.store.passage_ids_of(source) if source else None
        result = await asyncio.to_thread(searcher.search, question, k, offset, within)
        records = await self.store.passages([hit.passage_id for hit in result.hits])
        results = [
            Result(records[hit.passage_id], hit,
                   select_quote(records[hit.passage_id].text, result.highlight_terms, searcher.analyzer, searcher.splitter))
            for hit in result.hits if hit.passage_id in records   # a passage gone in a swap is skipped
        ]
        focus = focus_of(question) if results else None
        named = tuple(names_in_quotes(focus, ((r.record.id, r.quote.pieces) for r in results), searcher.places)) if focus else ()
        return Answer(result, results, build, time.perf_counter() - started, focus, named)

    async def cite(self, passage_id: str) -> PassageRecord:
        wanted = passage_id.strip().strip("`").lower()
        records = await self.store.passages([wanted])
        if wanted not in records:
            raise PassageNotFound(passage_id.strip(), await self.store.closest_ids(wanted))
        return records[wanted]

    def _loaded(self) -> tuple[Searcher, BuildRecord]:
        if self.searcher is None or self.build is None:
            raise IndexNotBuilt("There is no index yet.", "Run: newsdesk index build")
        return self.searcher, self.build


def _searcher_from(blobs: dict[str, bytes]) -> Searcher:
    index = BM25Index.from_arrays(blobs)
    passage_ids = blobs["passage_ids"].decode().split("\n") if blobs["passage_ids"] else []
    return Searcher(index, passage_ids, Analyzer(term_map=json.loads(blobs["term_map"])),
                    SentenceSplitter.from_json(blobs["sentences"].decode()),
                    expansions=json.loads(blobs["expansions"]), places=Vocabulary.load().places)
