"""The engine, the one way in for the CLI and the bot: open, ask, cite, list, vote, rebuild and repair.

Reads go through a read-only connection and the searcher in memory; a rebuild runs whole in a worker
thread (the event loop only awaits it) and hands back the searcher it compiled, or the delta segment it
wrote over the loaded one (index/segments.py), which is swapped in while searches already running finish on
the old one. When the delta has grown, a merge follows in the background; a rebuild asked for meanwhile
stops it (it rolls back) and runs first.

An answer is one trip to a worker thread: search, the shown passages (from a cache of the loaded build's
records, else one read transaction on a plain connection), their quotes from the layouts the build stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, TypeVar

from . import build as building
from .build import BuildReport, Cancellation, Progress, problem_line
from .compiled import DELTA_PREFIX, INDEX_FORMAT, base_token, from_blobs, index_format, with_delta
from .config import Settings
from .errors import (ArticleNotFound, BuildInterrupted, DatabaseBusy, DatabaseDamaged, IndexNotBuilt,
                     PassageNotFound, QueryError, RebuildInProgress)
from .listing import Named, focus_of, names_in_quotes
from .memory import return_free_memory
from .quotes import QUOTE_CHARS, Quote, TextLayout, quote_of
from .inert import clean, inert
from .search import Hit, Searcher, SearchResult
from .store import ArticleInfo, BuildRecord, PassageRecord, PendingAnswer, Reader, Writer

if TYPE_CHECKING:   # imported where used: fetching needs aiohttp and trafilatura, answering does not
    from .feeds import Feed
    from .fetch import FetchSettings
    from .ingest import Added
    from .poll import FetchReport

__all__ = ("Newsdesk", "Answer", "Result", "Settings", "PendingAnswer")

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# A vote waits this long for the write lock; past it, it is kept in memory and written after the rebuild.
VOTE_WAIT_MS = 1_500
# A pending-answer record waits this long: it sits on the way to an answer. Past it (a rebuild holds the write
# lock) it is kept in memory and written after the rebuild, with the next record, or on closing.
PENDING_WAIT_MS = 250
# How long the build thread may keep the GIL while the event loop waits for it (Python's default: 5 ms).
BUILD_SWITCH_INTERVAL_S = 0.001
# How often use of the desk looks for a build committed by another process.
REFRESH_EVERY_S = 5.0
# A reader replaced by a swap is closed this much later, so that reads already started can finish on it.
READER_GRACE_S = 30.0
# Passages (record and layout, up to ~10 kB each) kept in memory for the loaded build: the last ~170 answers'.
RECORD_CACHE = 1_024


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
    focus: str | None = None              # "countries", "organisations", "people", "leaders": a list question
    named: tuple[Named, ...] = ()         # the names of that kind standing in the quotes

    @property
    def abstained(self) -> str | None:
        return self.search.abstained


@dataclass(frozen=True)
class _Shown:
    """A passage as an answer quotes it: its record and where its words and sentences stand."""

    record: PassageRecord
    layout: TextLayout


class _Records:
    """The passages of one build that answers showed lately, most recent kept (up to `size`).

    A new one is made for every build the desk loads, so a record can only be served by the searcher of
    its own build; and only passages read while that build was the newest committed one are kept.
    Used from worker threads at once, hence the lock.
    """

    def __init__(self, build_id: int, size: int = RECORD_CACHE) -> None:
        self.build_id = build_id
        self.size = size
        self._items: OrderedDict[str, _Shown] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: list[str]) -> dict[str, _Shown]:
        with self._lock:
            found = {pid: self._items[pid] for pid in ids if pid in self._items}
            for pid in found:
                self._items.move_to_end(pid)
        return found

    def put(self, shown: dict[str, _Shown]) -> None:
        with self._lock:
            self._items.update(shown)
            for pid in shown:
                self._items.move_to_end(pid)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _Stale(Exception):
    """Some shown passages are gone from the rows: another process committed a build our searcher predates."""


class Newsdesk:
    """Open with `await Newsdesk.open(settings)`; ask, cite and rebuild; close when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.searcher: Searcher | None = None
        self.build: BuildRecord | None = None
        self.notices: list[str] = []          # what the person should be told about start-up
        self._reader: Reader | None = None
        self._opening = asyncio.Lock()
        self._catching_up = asyncio.Lock()
        self._closed = False
        self._old_readers: set[Reader] = set()    # replaced by a repair, closed once reads on them are done
        self._reader_inode: int | None = None
        self._rebuild_lock = asyncio.Lock()
        self._pending_votes: list[tuple[str, int, str, str, int]] = []
        self._pending_writes: dict[str, PendingAnswer | None] = {}   # token -> to remember, or None: to forget
        self._pending_here: set[str] = set()     # tokens this process remembered and has not forgotten
        self._pending_lock = asyncio.Lock()      # writes in order: a forget never lands before its remember
        self._refreshing = False
        self._last_refresh = time.monotonic()
        self._background: set[asyncio.Future] = set()
        self._retiring: set[asyncio.TimerHandle] = set()     # old searchers waiting to be let go
        self._records = _Records(0)                             # of the build loaded; replaced with it
        self._merging: tuple[asyncio.Future, Cancellation] | None = None   # the background merge, if one runs

    @property
    def db(self) -> Path:
        return self.settings.db

    @property
    def corpus(self) -> Path:
        return self.settings.corpus

    @classmethod
    async def open(cls, settings: Settings | Path | str | None = None, corpus: Path | str | None = None, *,
                   progress: Progress | None = None, build_if_missing: bool = True, load: bool = True,
                   repair: bool = False, on_wait: Callable[[str], None] | None = None) -> "Newsdesk":
        """Load the stored index; build it first if there is none or it holds another corpus.

        settings may be a Settings, or a database path (with corpus beside it); None resolves both from
        the environment and `.env`. load=False only checks the paths (for a caller about to rebuild).
        repair=True rebuilds a database SQLite proves damaged (keeping the damaged file); otherwise that
        is an error naming `newsdesk index repair`.
        """
        if not isinstance(settings, Settings):
            if settings is not None and corpus is not None:
                settings = Settings(Path(settings), Path(corpus).resolve())
            else:
                settings = Settings.resolve(corpus=corpus, db=settings)
        if cls is Newsdesk and settings.search != "embedded":   # a search cluster (index/remote.py)
            from .remote import ClusterDesk

            cls = ClusterDesk
        desk = cls(settings)
        if not load:
            return desk
        try:
            try:
                await desk.reload()
            except IndexNotBuilt as e:
                if not build_if_missing:
                    raise
                desk.notices.append(f"{e.message} Building it from {settings.corpus}.")
                await desk._build_notices(progress, on_wait)
            except DatabaseDamaged as e:
                if not repair:
                    raise
                desk.notices.append(f"{e.message} Rebuilding it (the damaged file is kept).")
                await desk._build_notices(progress, on_wait)
            wanted = str(settings.corpus)
            if desk.build is not None and desk.build.corpus != wanted and build_if_missing:
                desk.notices.append(f"The database holds {desk.build.corpus}; indexing {wanted}.")
                await desk._build_notices(progress, on_wait)
        except BaseException:
            await desk.close()
            raise
        return desk

    async def _build_notices(self, progress: Progress | None, on_wait: Callable[[str], None] | None) -> None:
        report = await self.rebuild(progress, on_wait=on_wait)
        self.notices += report.notes + [problem_line(p) for p in report.problems]

    async def close(self) -> None:
        self._closed = True                  # no read may open a connection after this one is closed
        for handle in self._retiring:
            handle.cancel()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        if self._pending_votes:
            await self._flush_votes(wait_ms=10_000)
            if self._pending_votes:
                _log.warning("%d votes could not be written before closing", len(self._pending_votes))
        if self._pending_writes and not await self._flush_pending(wait_ms=10_000):
            _log.warning("%d pending-answer records could not be written before closing", len(self._pending_writes))
        for old in list(self._old_readers):
            await self._close_old(old)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()

    async def __aenter__(self) -> "Newsdesk":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- loading --------------------------------------------------------------------------------

    async def _read(self) -> Reader:
        """The read-only connection, reopened when the file was replaced (a repaired database).

        One opening at a time: two tasks opening at once would each make a connection, and the one
        overwritten would never be closed; its thread would then keep the process from exiting.
        """
        inode = _inode(self.db)
        if self._reader is not None and inode == self._reader_inode:
            return self._reader
        if self._closed:
            raise IndexNotBuilt("Newsdesk is shutting down.", "Try again in a minute.")
        async with self._opening:
            if self._reader is not None and _inode(self.db) == self._reader_inode:
                return self._reader
            old, self._reader = self._reader, await Reader.open(self.db)
            self._reader_inode = inode
        if old is not None:
            self._old_readers.add(old)
            asyncio.get_running_loop().call_later(READER_GRACE_S, lambda: asyncio.ensure_future(self._close_old(old)))
        return self._reader

    async def _close_old(self, reader: Reader) -> None:
        if reader in self._old_readers:
            self._old_readers.discard(reader)
            await reader.close()

    async def reload(self) -> None:
        """Swap in the newest stored index: searches already running finish on the old one."""
        reader = await self._read()
        build = await reader.current_build()
        if build is None:
            raise IndexNotBuilt("There is no index yet.", "Run: newsdesk index build")
        # The whole compile loaded already is kept when the stored index is the same compile (with a delta over
        # it, or none): then only the delta's blobs are read, in the same statement as the compile's token.
        base = self.searcher if self.searcher is not None and self.searcher.base_token is not None else None
        blobs = await reader.index_blobs(["base", "format", "expansions"], prefix=DELTA_PREFIX) if base else {}
        if base is None or base_token(blobs) != base.base_token:
            base, blobs = None, await reader.index_blobs()
        if index_format(blobs) != INDEX_FORMAT:
            raise IndexNotBuilt("The stored index was made by another version of Newsdesk.", "Run: newsdesk index build")
        searcher = await asyncio.to_thread(from_blobs, blobs, base)
        del blobs
        if self.build is not None and build.id < self.build.id:
            return                        # a newer build was swapped in while this one loaded
        await self._swap(searcher, build)

    async def _catch_up(self) -> None:
        """Load the build that made an ask's hits stale: once, however many asks found it at the same time
        (each load holds a whole index; at 1M passages, 155 MB)."""
        async with self._catching_up:
            # Our own rebuild (or merge: only it can have committed while it holds the write lock) swaps its
            # build in when its thread returns, moments after the commit: loading it again would be a second copy.
            while self._rebuild_lock.locked():
                await asyncio.sleep(0.05)
            stored = await (await self._read()).current_build()
            if stored is not None and self.build is not None and stored.id <= self.build.id:
                return                    # loaded meanwhile, by another ask or by that rebuild
            await self.reload()

    async def refresh(self) -> bool:
        """Load a build another process committed since ours; True if there was one."""
        if self._rebuild_lock.locked() or self._refreshing:     # ours swaps its own build in (a merge's too)
            return False
        self._refreshing = True
        try:
            build = await (await self._read()).current_build()
            if build is None or (self.build is not None and build.id <= self.build.id):
                return False
            await self.reload()
            return True
        finally:
            self._refreshing = False

    def _notice_other_builds(self) -> None:
        """Every few seconds of use, look for a build another process (`newsdesk index build`) committed,
        and load it in the background: the ask that notices it does not wait for it."""
        now = time.monotonic()
        if now - self._last_refresh < REFRESH_EVERY_S or self._refreshing:
            return
        self._last_refresh = now
        task = asyncio.ensure_future(self.refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def _swap(self, searcher: Searcher, build: BuildRecord) -> None:
        if self.build is not None and build.id < self.build.id:
            return                        # a newer build is loaded already
        old, self.searcher, self.build = self.searcher, searcher, build
        self._records = _Records(build.id)
        if old is not None:
            # Asks already running still use the old index. Held here a while longer, it is not freed by
            # whichever of them finishes last (on the loop: a million-passage index takes ~100 ms to free)
            # but emptied later, a slice at a time, in a worker thread.
            handle = asyncio.get_running_loop().call_later(READER_GRACE_S, self._retire, old, searcher)
            self._retiring.add(handle)

    def _retire(self, old: Searcher, successor: Searcher) -> None:
        """Empty the old searcher, keeping what its successor shares (a whole compile under deltas): the
        successor may itself be in its grace, replaced since, and still answering."""
        self._retiring = {h for h in self._retiring if not h.cancelled() and h.when() > asyncio.get_running_loop().time()}
        task = asyncio.ensure_future(asyncio.to_thread(old.release, successor))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda _: self._in_background(return_free_memory))   # once the old index is gone

    def _in_background(self, work: Callable[[], Any]) -> None:
        task = asyncio.ensure_future(asyncio.to_thread(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- rebuilding -----------------------------------------------------------------------------

    @property
    def rebuilding(self) -> bool:
        """Whether a rebuild someone asked for runs (a background merge gives way to one, so it does not count)."""
        return self._rebuild_lock.locked() and not self._merge_running()

    def _merge_running(self) -> bool:
        return self._merging is not None and not self._merging[0].done()

    async def rebuild(self, progress: Progress | None = None, cancel: Cancellation | None = None,
                      on_wait: Callable[[str], None] | None = None) -> BuildReport:
        """Incremental rebuild in a worker thread, then swap. One at a time in this process (a second call
        is refused); another process's rebuild is waited for, and on_wait is told who holds it.

        A background merge running is stopped first (it rolls back; the next rebuild that finds the delta grown
        starts it again)."""
        await self._stop_merge()
        built = await self._write_job(building.rebuild, progress, cancel, on_wait)
        if built.report.merge_due and self.searcher is not None:     # a serving desk; the CLI says to merge
            self._merge_in_background()
        return built.report

    async def merge(self, progress: Progress | None = None, cancel: Cancellation | None = None,
                    on_wait: Callable[[str], None] | None = None) -> BuildReport:
        """A rebuild that compiles the whole index, merging the delta segment into it."""
        await self._stop_merge()
        return (await self._write_job(building.merge, progress, cancel, on_wait)).report

    def _merge_in_background(self) -> None:
        if self._merge_running():
            return
        cancel = Cancellation()

        async def run() -> None:
            try:
                report = (await self._write_job(building.merge, None, cancel, None)).report
                _log.info("Background merge: %s passages compiled whole in %.1f s", report.passages, report.seconds)
            except (BuildInterrupted, RebuildInProgress) as e:
                _log.info("Background merge not done: %s", e.message)

        task = asyncio.ensure_future(run())
        self._merging = (task, cancel)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def _stop_merge(self) -> None:
        if self._merging is not None and self._merge_running():
            task, cancel = self._merging
            cancel.cancel()
            await asyncio.wait({task})

    async def repair(self, progress: Progress | None = None, cancel: Cancellation | None = None,
                     on_wait: Callable[[str], None] | None = None) -> BuildReport | None:
        """quick_check the database; rebuild it into a new file if damaged. None when it is sound."""
        await self._stop_merge()
        built = await self._write_job(building.repair, progress, cancel, on_wait)
        return None if built is None else built.report

    async def _write_job(self, job: Callable[..., Any], progress: Progress | None, cancel: Cancellation | None,
                         on_wait: Callable[[str], None] | None) -> Any:
        if self._rebuild_lock.locked():
            raise RebuildInProgress("A rebuild is already running.", "Wait for it to finish; its report will follow.")
        cancel = cancel or Cancellation()
        async with self._rebuild_lock:
            task = asyncio.ensure_future(asyncio.to_thread(job, self.db, self.corpus, progress, cancel, on_wait))
            # The build thread is CPU-bound; each time the loop gives up the GIL (every socket call) it
            # waits up to one switch interval to get it back. 1 ms instead of 5 keeps answers brisk.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, BUILD_SWITCH_INTERVAL_S))
            try:
                built = await asyncio.shield(task)
            except asyncio.CancelledError:
                cancel.cancel()               # the build rolls back; wait for it, so nothing outlives us
                await asyncio.wait({task})
                raise
            finally:
                sys.setswitchinterval(interval)
            if built is None:
                return None
            await self._read()                # reopened if a repair replaced the file
            if built.searcher is not None:
                await self._swap(built.searcher, built.build)
                built.searcher = None
            elif built.delta is not None and self.searcher is not None and self.searcher.base_token == built.base:
                searcher = await asyncio.to_thread(with_delta, self.searcher, built.delta, built.expansions)
                built.delta = None
                await self._swap(searcher, built.build)
            elif self.searcher is None:
                self.build = built.build      # nothing loaded (the CLI's build): nothing to load either
            elif built.delta is not None:
                await self.reload()           # what we hold is not the compile the delta extends
            elif self.build is None or built.build.id != self.build.id + 1:
                await self.reload()           # nothing changed, but what we hold is not the stored index
            else:
                self.build, self._records = built.build, _Records(built.build.id)
        await self._flush_votes()
        await self._flush_pending()
        return built

    # -- reading --------------------------------------------------------------------------------

    async def ask(self, question: str, k: int = 5, offset: int = 0, source: str | None = None,
                  context: str | None = None) -> Answer:
        """The best k passages for a question (after offset), with their places and quotes.

        source limits the search to one article (its path as `cite` shows it), whose place the
        citations then name first. context: the earlier question a follow-up leans on (Searcher.search).
        """
        searcher, build = self._loaded()
        records = self._records
        reader = await self._read()
        self._notice_other_builds()
        started = time.perf_counter()
        within = None
        if source:
            if await reader.article(source) is None:
                raise ArticleNotFound(f"No indexed article is called {inert(source)}.",
                                      "Give its path as `newsdesk cite` shows it (the bot's /sources lists them).")
            within = await reader.passage_ids_of(source)
        try:
            return await asyncio.to_thread(self._respond, searcher, build, records, reader, question, k, offset,
                                           within, context, source, started, True)
        except _Stale:
            # Load the newer build and search again, rather than answer from the old one with holes in it.
            await self._catch_up()
            searcher, build = self._loaded()
            return await asyncio.to_thread(self._respond, searcher, build, self._records, reader, question, k, offset,
                                           within, context, source, started, False)

    @classmethod
    def _respond(cls, searcher: Searcher, build: BuildRecord, records: _Records, reader: Reader, question: str,
                 k: int, offset: int, within: set[str] | None, context: str | None, source: str | None,
                 started: float, may_be_stale: bool) -> Answer:
        """The whole answer, in a worker thread: search, the shown passages, their quotes."""
        result = searcher.search(question, k, offset, within, **({"context": context} if context else {}))
        ids = [hit.passage_id for hit in result.hits]
        latest = reader.latest_build()
        # Cached records are of the build this searcher was loaded with: served only while it is the newest.
        shown = records.get(ids) if latest == records.build_id else {}
        missing = [pid for pid in ids if pid not in shown]
        if missing:
            read_in, rows = reader.stored_passages(missing)
            if may_be_stale and len(rows) < len(missing) and read_in is not None and read_in > build.id:
                raise _Stale()
            fresh = {pid: _Shown(row.record, TextLayout.from_bytes(row.layout, row.tokens)
                                 or _laid_out_now(row.record.text, searcher)) for pid, row in rows.items()}
            if read_in == records.build_id:
                records.put(fresh)
            shown.update(fresh)
        if source:
            shown = {pid: replace(s, record=_cited_from(s.record, source)) for pid, s in shown.items()}
        return cls._answer(searcher, build, question, result, {pid: s.record for pid, s in shown.items()}, started,
                           {pid: s.layout for pid, s in shown.items()})

    @staticmethod
    def _answer(searcher: Searcher, build: BuildRecord, question: str, result: SearchResult,
                records: dict[str, PassageRecord], started: float,
                layouts: dict[str, TextLayout] | None = None) -> Answer:
        """The answer from the records of its hits; a passage without a layout given is laid out here."""
        layouts = layouts or {}
        results = [
            Result(record, hit, quote_of(record.text, layouts.get(record.id) or _laid_out_now(record.text, searcher),
                                         result.highlight_terms, splitter=searcher.splitter))
            for hit in result.hits if (record := records.get(hit.passage_id))   # a passage gone in a swap is skipped
        ]
        focus = focus_of(question) if results else None
        named = tuple(names_in_quotes(focus, ((r.record.id, r.quote.pieces) for r in results), searcher.places,
                                       question)) if focus else ()
        return Answer(result, results, build, time.perf_counter() - started, focus, named)

    async def cite(self, passage_id: str) -> PassageRecord:
        wanted = passage_id.strip().strip("`").lower()
        reader = await self._read()
        records = await reader.passages([wanted])
        if wanted not in records:
            raise PassageNotFound(clean(passage_id.strip(), 40), await reader.closest_ids(wanted))
        return records[wanted]

    async def passages(self, ids: list[str]) -> dict[str, PassageRecord]:
        return await (await self._read()).passages(ids)

    async def articles(self, offset: int = 0, limit: int = 10) -> list[tuple[ArticleInfo, int]]:
        """Indexed articles, newest first, with their paragraph counts."""
        return await (await self._read()).articles(offset, limit)

    async def count_articles(self) -> int:
        return await (await self._read()).count_articles()

    async def find_articles(self, text: str, limit: int = 25) -> list[ArticleInfo]:
        """Articles whose title or path contains the text, for autocompletion and --source."""
        return await (await self._read()).find_articles(text, limit)

    async def feedback_totals(self, passage_id: str) -> tuple[int, int]:
        return await (await self._read()).feedback_totals(passage_id)

    # -- new articles: feeds, links and files (index/poll.py does the work; the engine rebuilds after) --

    async def feeds(self) -> list["Feed"]:
        from .poll import list_feeds

        return await asyncio.to_thread(list_feeds, self.corpus)

    async def add_feed(self, url: str, fetching: "FetchSettings | None" = None) -> tuple["Feed", int]:
        """Put a feed on the list after checking it serves one; (the feed, its item count)."""
        from .fetch import FetchSettings
        from .ingest import writable_corpus
        from .poll import add_feed

        return await add_feed(writable_corpus(self.corpus), url, fetching or FetchSettings.resolve())

    async def remove_feed(self, url: str) -> "Feed":
        from .poll import remove_feed

        return await asyncio.to_thread(remove_feed, self.corpus, url)

    async def fetch(self, fetching: "FetchSettings | None" = None, progress: Progress | None = None) -> "FetchReport":
        """Poll every feed once, write the new articles into the corpus, then rebuild if any was added."""
        from .fetch import FetchSettings
        from .ingest import writable_corpus
        from .poll import poll_feeds

        report = await poll_feeds(writable_corpus(self.corpus), fetching or FetchSettings.resolve())
        if report.added:
            report.build = await self._rebuild_when_free(progress)
        return report

    async def add(self, url_or_file: str | Path, data: bytes | None = None, fetching: "FetchSettings | None" = None,
                  progress: Progress | None = None,
                  on_added: "Callable[[Added], Awaitable[None]] | None" = None) -> tuple["Added", BuildReport]:
        """Add one article: a URL is fetched and extracted; a file (a path, or a name with its bytes) is copied
        into the corpus if its reader accepts it. Then the incremental rebuild, after which it answers.
        on_added is awaited between the two (the bot shows its preview while the index is rebuilt)."""
        from .fetch import FetchSettings
        from .ingest import writable_corpus
        from .poll import add_file, add_url

        corpus = writable_corpus(self.corpus)
        name = str(url_or_file)
        if data is None and name.lower().startswith(("http://", "https://")):
            added = await add_url(corpus, name, fetching or FetchSettings.resolve())
        else:
            if data is None:
                path = Path(name).expanduser()
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except OSError as e:
                    raise QueryError(f"Cannot read {inert(name)} ({e.strerror or e}).",
                                     "Give an http(s) URL or the path of a .txt, .md, .html or .jsonl file.") from None
            added = await add_file(corpus, Path(name).name, data)
        if on_added is not None:
            await on_added(added)
        return added, await self._rebuild_when_free(progress)

    async def _rebuild_when_free(self, progress: Progress | None) -> BuildReport:
        while self.rebuilding:      # a /reindex or a scheduled fetch is building: ours follows it
            await asyncio.sleep(0.2)
        return await self.rebuild(progress)

    def _loaded(self) -> tuple[Searcher, BuildRecord]:
        if self.searcher is None or self.build is None:
            raise IndexNotBuilt("There is no index yet.", "Run: newsdesk index build")
        return self.searcher, self.build

    # -- feedback -------------------------------------------------------------------------------

    async def record_feedback(self, user_id: int, passage_ids: list[str], query: str, vote: int) -> bool:
        """One vote per person, passage and question (a new one replaces it). True when written now; False
        when a rebuild holds the write lock, and the votes are written as soon as it is released."""
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        self._pending_votes += [(at, user_id, pid, query, vote) for pid in passage_ids]
        return await self._flush_votes()

    async def _flush_votes(self, wait_ms: int = VOTE_WAIT_MS) -> bool:
        if not self._pending_votes:
            return True
        votes, self._pending_votes = self._pending_votes, []
        try:
            await asyncio.to_thread(_write_votes, self.db, votes, wait_ms)
        except DatabaseBusy:
            self._pending_votes = votes + self._pending_votes
            return False
        return True

    # -- answers pending at a crash ----------------------------------------------------------------

    async def remember_pending(self, answer: PendingAnswer) -> bool:
        """Record an answer left "thinking…" until forget_pending, so that a restart after a crash can
        replace it with an apology. True when written now; False when a rebuild holds the write lock (it is
        written as soon as the lock is free: a crash before then loses it)."""
        self._pending_here.add(answer.token)
        self._pending_writes[answer.token] = answer
        return await self._flush_pending()

    async def forget_pending(self, token: str) -> bool:
        """The answer (or an error) has gone out. True when written now; False when kept for later."""
        self._pending_here.discard(token)
        self._pending_writes[token] = None
        return await self._flush_pending()

    async def stale_pending(self, max_age_s: float, shards: Iterable[int] | None = None) -> list[PendingAnswer]:
        """Answers an earlier run left pending that are younger than max_age_s (their tokens still work), of
        the given shards (None: all), oldest first; forget each once it is dealt with. Older ones, whoever
        recorded them, are forgotten here. Raises DatabaseBusy when a rebuild holds the write lock past 10 s."""
        await self._flush_pending()
        since = time.time() - max_age_s
        answers = await asyncio.to_thread(_take_pending, self.db, since, shards, 10_000)
        return [a for a in answers if a.token not in self._pending_here]

    async def _flush_pending(self, wait_ms: int = PENDING_WAIT_MS) -> bool:
        async with self._pending_lock:
            if not self._pending_writes:
                return True
            changes, self._pending_writes = self._pending_writes, {}
            try:
                await asyncio.to_thread(_write_pending, self.db, changes, wait_ms)
            except DatabaseBusy:
                changes.update(self._pending_writes)      # what came in meanwhile is newer
                self._pending_writes = changes
                _log.info("The database is busy (a rebuild); %d pending-answer records wait in memory", len(changes))
                return False
            return True


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.warning("Loading another process's build failed: %s", task.exception())


def _written(db: Path, wait_ms: int, work: Callable[[Writer], _T]) -> _T:
    """work(writer) in one transaction of a writer opened for it; DatabaseBusy past wait_ms."""
    writer = Writer.open(db, busy_ms=wait_ms)
    try:
        with writer.transaction():
            return work(writer)
    finally:
        writer.close()


def _write_votes(db: Path, votes: list[tuple[str, int, str, str, int]], wait_ms: int) -> None:
    _written(db, wait_ms, lambda writer: writer.record_feedback(votes))


def _write_pending(db: Path, changes: dict[str, PendingAnswer | None], wait_ms: int) -> None:
    _written(db, wait_ms, lambda writer: writer.write_pending(changes))


def _take_pending(db: Path, since: float, shards: Iterable[int] | None, wait_ms: int) -> list[PendingAnswer]:
    def take(writer: Writer) -> tuple[int, list[PendingAnswer]]:
        return writer.forget_pending_before(since), writer.pending_answers(since, shards)

    dropped, answers = _written(db, wait_ms, take)
    if dropped:
        _log.info("Forgot %d answers left pending too long ago to edit", dropped)
    return answers


def _laid_out_now(text: str, searcher: Searcher) -> TextLayout:
    """A passage's layout made on the spot (one stored before layouts, or from a search cluster)."""
    return TextLayout.of(text, searcher.analyzer, searcher.splitter, len(text) > QUOTE_CHARS)


def _cited_from(record: PassageRecord, source: str) -> PassageRecord:
    """The record with the asked-for article's place first, so the citation names that article."""
    places = sorted(record.places, key=lambda p: p.article.source != source)
    return replace(record, places=tuple(places))


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
