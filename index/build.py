"""The incremental rebuild: corpus files -> articles -> passages -> tokens -> compiled index, in one transaction.

Everything here blocks: the engine runs it in a worker thread, so the event loop that serves answers
never waits for it, and the analysis workers it starts are spawned processes that die with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index, BM25Params
from .compiled import (BASE_FACT_BLOBS, BUILD_STATE_BLOBS, DELTA_PREFIX, INDEX_FORMAT, BaseFacts, base_facts,
                       delta_blobs, delta_size, has_delta, index_format, layout_format, stored_splitter, to_blobs)
from .corpus import Article, Problem, parse_file, scan_corpus
from .memory import release_gradually
from .errors import BuildFailed, BuildInterrupted, CorpusError, DatabaseDamaged, NewsdeskError
from .passages import Passage, assign_ids, make_passages, short_id
from .quotes import LAYOUT_FORMAT, LayoutMaker
from .search import ArticleEvidence, ExpansionGroup, Searcher, expansion_table
from .segments import AVGDL_DRIFT, MERGE_SHARE, MERGE_SOON_SHARE, Delta, drift, sorted_positions
from .store import BuildRecord, Writer, WriteLock, check_path, quick_check, salvage, swap_in
from .vocabulary import Vocabulary, alias_counts, analyzer_fingerprint, make_analyzer

__all__ = ("BuildReport", "Built", "Cancellation", "Counts", "rebuild", "merge", "repair", "Progress", "DEFAULT_PARAMS",
           "problem_line", "die_with_parent")

_log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called from the build's thread, so it must only record, not render."""

# Chosen by measurement on both eval sets (see README, "Choosing the scoring").
DEFAULT_PARAMS = BM25Params(method="plus", k1=0.6, b=0.9, delta=1.0)


@dataclass
class Counts:
    added: int = 0
    changed: int = 0
    removed: int = 0

    def __str__(self) -> str:
        return f"+{self.added} ~{self.changed} -{self.removed}"


@dataclass
class BuildReport:
    build_id: int
    articles: int
    passages: int
    article_changes: Counts
    passage_changes: Counts
    files_read: int
    files_unchanged: int
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)      # what the person must know: a recovery, say
    compiled: str = "kept"          # "whole", "delta" (index/segments.py) or "kept" (nothing changed)
    delta_passages: int = 0         # passages in the delta segment after this build
    merge_due: bool = False         # the delta passed MERGE_SOON_SHARE of the base: a merge should follow

    def to_dict(self) -> dict:
        return {
            "build": self.build_id, "articles": self.articles, "passages": self.passages,
            "articles_added": self.article_changes.added, "articles_changed": self.article_changes.changed,
            "articles_removed": self.article_changes.removed, "passages_added": self.passage_changes.added,
            "passages_changed": self.passage_changes.changed, "passages_removed": self.passage_changes.removed,
            "files_read": self.files_read, "files_unchanged": self.files_unchanged,
            "problems": [str(p) for p in self.problems], "seconds": round(self.seconds, 3),
            "notes": list(self.notes), "compiled": self.compiled, "delta_passages": self.delta_passages,
            "merge_due": self.merge_due,
        }

    def summary(self) -> str:
        a, p = self.article_changes, self.passage_changes
        lines = [
            f"Build {self.build_id}: {self.articles} articles, {self.passages} passages in {self.seconds:.1f} s.",
            f"Articles: {a.added} added, {a.changed} changed, {a.removed} removed.",
            f"Passages: {p.added} added, {p.changed} changed, {p.removed} removed.",
            f"Files: {self.files_read} read, {self.files_unchanged} unchanged.",
        ]
        if self.compiled == "delta":
            lines.append(f"Index: the changes were indexed on their own ({self.delta_passages} passages in the "
                         f"delta segment).")
        if self.merge_due:
            lines.append("The delta segment has grown: a running bot merges it in the background, or run "
                         "`newsdesk index merge`.")
        lines += [problem_line(problem) for problem in self.problems]
        return "\n".join(self.notes + lines)


class Cancellation:
    """A stop request for a running build, from another thread or a signal handler.

    The build checks it at every progress report; hooks (stop the SQLite statement, kill the analysis
    workers) make a stop land quickly even inside a long step.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:        # a hook on something already finished: nothing left to stop
                _log.debug("Cancellation hook failed", exc_info=True)

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise BuildInterrupted("The rebuild was interrupted; nothing was changed.",
                                   "The previous index is still answering.")

    @contextmanager
    def hook(self, fn: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._hooks.append(fn)
            already = self._event.is_set()
        if already:
            fn()
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(fn)


@dataclass
class Built:
    """What a rebuild hands back: its report, its build record, and the searcher it compiled (None when
    nothing changed and the stored index was kept as it was, or when it wrote a delta: then `delta` and
    `expansions` are what goes over the base named `base`)."""

    report: BuildReport
    build: BuildRecord
    searcher: Searcher | None
    delta: Delta | None = None
    expansions: list[ExpansionGroup] = field(default_factory=list)
    base: str | None = None


def rebuild(db: Path, corpus: Path, progress: Progress | None = None, cancel: Cancellation | None = None,
            on_wait: Callable[[str], None] | None = None, params: BM25Params = DEFAULT_PARAMS,
            whole: bool = False) -> Built:
    """Bring the index in `db` up to date with the corpus folder; only changed files are read and analysed.

    Blocking: call it from a worker thread. It takes the write lock first (telling on_wait who holds it,
    if someone does). Any failure leaves the stored index as it was (the transaction rolls back); one that
    is not a NewsdeskError is reported as a BuildFailed, with the cause chained. A database that SQLite
    proves damaged is rebuilt into a new file and swapped in, its votes and build records carried over.

    A few changed articles go into a delta segment beside the whole compile (index/segments.py); whole=True
    compiles everything, merging the delta away (see merge).
    """
    cancel = cancel or Cancellation()
    db, corpus = Path(db), Path(corpus)
    check_path(db, writing=True)          # before the lock file beside it is made: --db /dev/null, say
    lock = WriteLock(db)
    with lock.held("rebuild", on_wait=on_wait, cancelled=cancel.is_set), _collector_paused():
        try:
            try:
                writer = Writer.open(db)
            except DatabaseDamaged as damage:
                return _recover(db, corpus, progress, cancel, params, damage)
            try:
                with cancel.hook(writer.interrupt):
                    return _rebuild(writer, corpus, progress, cancel, params, whole)
            except DatabaseDamaged as damage:
                writer.close()
                return _recover(db, corpus, progress, cancel, params, damage)
            finally:
                writer.close()
        except (NewsdeskError, KeyboardInterrupt):
            raise
        except Exception as e:
            _log.exception("Rebuild of %s failed", corpus)
            raise BuildFailed(f"The rebuild failed ({type(e).__name__}: {e}).",
                              "The previous index is unchanged and still answering.") from e


def merge(db: Path, corpus: Path, progress: Progress | None = None, cancel: Cancellation | None = None,
          on_wait: Callable[[str], None] | None = None) -> Built:
    """A rebuild that compiles the whole index, merging the delta segment into it (and reading any changed
    files, as every rebuild does). Interruptible like a rebuild: a cancelled merge leaves the delta serving."""
    return rebuild(db, corpus, progress, cancel, on_wait, whole=True)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a build runs.

    A build allocates hundreds of thousands of containers; each full collection they trigger walks every
    object in the process while holding the GIL, which in the bot stalls the event loop for 50-100 ms at
    a time. What a build allocates is freed by reference counting; the collector resumes after it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def repair(db: Path, corpus: Path, progress: Progress | None = None, cancel: Cancellation | None = None,
           on_wait: Callable[[str], None] | None = None) -> Built | None:
    """Check the database with SQLite's quick_check; rebuild it into a new file if it is damaged.

    Returns None when the check passes (nothing is touched).
    """
    cancel = cancel or Cancellation()
    db = Path(db)
    check_path(db, writing=True)
    with WriteLock(db).held("repair", on_wait=on_wait, cancelled=cancel.is_set):
        verdict = quick_check(db) if db.exists() else None
        if verdict is None:
            return None
        damage = DatabaseDamaged(f"The database {db} is damaged ({verdict}).")
        return _recover(db, Path(corpus), progress, cancel, DEFAULT_PARAMS, damage)


def _recover(db: Path, corpus: Path, progress: Progress | None, cancel: Cancellation, params: BM25Params,
             damage: DatabaseDamaged) -> Built:
    """Build a new database beside the damaged one, with what user data can still be read, and swap it in."""
    _log.warning("%s Rebuilding it into a new file.", damage.message)
    saved = salvage(db)
    fresh = db.with_name(f"{db.name}.rebuilding-{os.getpid()}")
    writer = Writer.open(fresh)
    try:
        with writer.transaction():
            writer.restore(saved)
        with cancel.hook(writer.interrupt):
            built = _rebuild(writer, corpus, progress, cancel, params)
    finally:
        writer.close()
    aside = swap_in(fresh, db)
    built.report.notes.append(f"{damage.message} It is kept as {aside.name}; the index was rebuilt from the corpus "
                              f"into a new file, and {saved.summary()}.")
    return built


def _rebuild(writer: Writer, corpus: Path, progress: Progress | None, cancel: Cancellation,
             params: BM25Params, whole: bool = False) -> Built:
    started = time.perf_counter()

    def report(stage: str, done: int, total: int) -> None:
        cancel.check()
        if progress is not None:
            progress(stage, done, total)

    if not corpus.exists():
        raise CorpusError(f"The corpus folder {corpus} does not exist.", "Pass --corpus PATH or set NEWSDESK_CORPUS.")
    report("scanning", 0, 1)
    stored_files = writer.file_states()     # the write lock is held: no other build changes them meanwhile
    files, problems = scan_corpus(corpus, stored_files)
    if not files:
        raise CorpusError(f"The corpus folder {corpus} has no readable article files (.txt, .md, .html, .jsonl).",
                          "\n".join(str(p) for p in problems) or None)
    vocabulary = Vocabulary.load()
    fingerprint = analyzer_fingerprint(vocabulary, params)
    with writer.transaction():
        stored_hashes = {file: digest for file, (digest, _stat) in stored_files.items()}
        fresh = writer.last_analyzer() != fingerprint
        changed = [f for f in files if fresh or stored_hashes.get(f.relative) != f.digest]
        present = {f.relative for f in files}
        gone = [name for name in stored_hashes if name not in present]
        read = {f.relative for f in changed}
        writer.set_file_stats({f.relative: f.stat for f in files if f.relative in stored_files and f.relative not in read
                               and f.stat != stored_files[f.relative][1]})
        articles, parse_problems = _parse_all(changed, report)
        problems += parse_problems
        # Only the changed files' articles and passages are read back (reading them all was most of a small
        # build: 5 s at 1M passages). Every passage row is still read, keeping nothing: that scan is what
        # meets a damaged page, so a build after a reader's "damaged" error still recovers the database.
        untouched = not changed and not gone
        before_signatures = writer.article_signatures([f.relative for f in changed] + gone)
        before_positions = writer.occurrence_keys([f.relative for f in changed] + gone)
        writer.read_every_passage_row()
        known = writer.passage_ids_by_key(set(before_positions.values()))
        stored = writer.index_blobs(BUILD_STATE_BLOBS)
        # The sentence model is learnt once, on the first build's corpus (or again when the analysis
        # changed, when every file is re-read): re-learning it would move the cuts of long paragraphs.
        splitter = None if fresh else stored_splitter(stored)
        # Passages stored before layouts (or with another format of them) are laid out once, below.
        stale_layouts = not fresh and layout_format(stored) != LAYOUT_FORMAT
        current = splitter is not None and index_format(stored) == INDEX_FORMAT and not stale_layouts
        if splitter is None:
            splitter = SentenceSplitter.train(p.text for a in articles for p in a.paragraphs)
        passages = make_passages(articles, splitter)
        known.update(writer.passage_ids_by_key(p.key for p in passages if p.key not in known))
        # What a delta segment indexes again (index/segments.py): the passages of the articles this build adds,
        # changes or removes (an unchanged article in a changed file keeps its places as they were), and every
        # article they stood or stand in first, before the change: an article that loses a passage to an older
        # one holding the same text is indexed again too.
        after_signatures = {a.source: _signature(a) for a in articles}
        changed_articles = {s for s, sig in after_signatures.items() if before_signatures.get(s) != sig}
        changed_articles |= set(before_signatures) - set(after_signatures)
        moved_keys = {key for (source, _, _), key in before_positions.items() if source in changed_articles}
        moved_keys |= {p.key for p in passages if any(o.source in changed_articles for o in p.occurrences)}
        moved = {known[key] for key in moved_keys if key in known}
        touched = changed_articles | set(writer.primary_sources(moved).values())
        gone_texts = writer.texts_by_id(moved) if current and not fresh and not whole else {}
        report("writing", 0, 1)
        writer.delete_files([f.relative for f in changed] + gone)
        _write_articles(writer, articles, {f.relative: (f.digest, f.stat) for f in changed})
        analyzer = make_analyzer(vocabulary)    # one per build: the irregular table is stemmed once
        new_rows = _analyse(passages, known, _taken_ids(writer, passages, known), analyzer, splitter, fresh, report, cancel)
        writer.update_tokens((tokens, layout, key) for key, (tokens, layout) in new_rows.refreshed.items())
        writer.insert_passages(new_rows.inserted)
        if stale_layouts:
            _lay_out_stored(writer, analyzer, splitter, report, cancel)
        writer.insert_occurrences(
            (o.source, o.paragraph, o.part, new_rows.ids[p.key], o.section) for p in passages for o in p.occurrences)
        removed = writer.delete_orphan_passages(moved)      # only a passage whose places went can be an orphan
        article_count, passage_count = writer.counts()
        if article_count == 0:
            raise CorpusError(f"Nothing in {corpus} could be indexed.", "\n".join(str(p) for p in problems) or None)
        if current and untouched and not (whole and has_delta(stored)):
            _log.info("Nothing changed: the compiled index is kept")
            written = _Written("kept", kept_delta=delta_size(stored))
        else:
            facts = base_facts(writer.index_blobs(BASE_FACT_BLOBS)) if current and not fresh and not whole else None
            moved |= {new_rows.ids[key] for key in moved_keys if key in new_rows.ids}
            written = _store_index(writer, splitter, analyzer, vocabulary.places, params, report, passage_count,
                                   facts, moved, touched, gone_texts)
        article_changes = _article_changes(before_signatures, after_signatures, [f.relative for f in changed] + gone)
        after_keys = {(o.source, o.paragraph, o.part): p.key for p in passages for o in p.occurrences}
        passage_changes = _passage_changes(before_positions, after_keys, {row[1] for row in new_rows.inserted}, removed)
        seconds = time.perf_counter() - started
        result = BuildReport(0, article_count, passage_count, article_changes, passage_changes,
                             files_read=len(changed), files_unchanged=len(files) - len(changed),
                             problems=problems, seconds=seconds, compiled=written.compiled,
                             delta_passages=written.delta_passages)
        result.build_id = writer.add_build(str(corpus.resolve()), fingerprint, article_count, passage_count,
                                           seconds, result.to_dict())
        record = writer.current_build()
        report("committing", 0, 1)
    release_gradually(passages, articles, files, known, after_keys, before_positions, before_signatures,
                       after_signatures, new_rows.ids, new_rows.inserted, new_rows.refreshed)
    for problem in problems:
        _log.warning("%s", problem)
    if progress is not None:
        progress("done", 1, 1)
    assert record is not None
    if written.delta is None:
        return Built(result, record, written.searcher)
    result.merge_due = len(written.delta.passage_ids) > MERGE_SOON_SHARE * written.base_passages
    return Built(result, record, None, written.delta, written.expansions, written.base)


@dataclass
class _Written:
    """How a build stored its index: compiled "whole" (the searcher), a "delta" over the whole compile named
    `base` (of base_passages passages), or "kept" as it was."""

    compiled: str
    searcher: Searcher | None = None
    delta: Delta | None = None
    expansions: list[ExpansionGroup] = field(default_factory=list)
    base: str | None = None
    base_passages: int = 0
    kept_delta: int = 0             # "kept": the passages of the delta stored before, kept with the rest

    @property
    def delta_passages(self) -> int:
        return len(self.delta.passage_ids) if self.delta is not None else self.kept_delta


def _store_index(writer: Writer, splitter: SentenceSplitter, analyzer: Analyzer, places: list[list[str]],
                 params: BM25Params, report: Progress, passage_count: int, facts: BaseFacts | None, moved: set[str],
                 touched: set[str], gone_texts: dict[str, str]) -> _Written:
    """A delta over the stored whole compile when there is one to extend (facts) and the change is small
    enough (_compile_delta), else the whole index compiled; stored either way."""
    if facts is not None:
        report("compiling", 0, 0)
        made = _compile_delta(writer, analyzer, params, facts, moved, touched, gone_texts)
        if made is not None:
            delta, expansions = made
            report("saving", 0, 1)
            writer.replace_index(delta_blobs(delta, expansions, facts.token), prefix=DELTA_PREFIX)
            return _Written("delta", None, delta, expansions, facts.token, len(facts.passage_ids))
    report("compiling", 0, passage_count)
    searcher, blobs = _compile(writer, splitter, analyzer, places, params, report)
    report("saving", 0, 1)
    writer.replace_index(blobs)
    return _Written("whole", searcher)


def problem_line(problem: Problem) -> str:
    return f"Skipped: {problem}" if problem.skipped else f"Warning: {problem}"


def _parse_all(files, report: Progress) -> tuple[list[Article], list[Problem]]:
    articles, problems = [], []
    for i, file in enumerate(files):
        found, trouble = parse_file(file)
        file.data = b""                 # parsed: its text lives on in the articles
        articles += found
        problems += trouble
        if i % 50 == 0:
            report("reading", i, len(files))
    return articles, problems


@dataclass
class _Analysed:
    ids: dict[str, str]                     # key -> passage id, for every passage of the changed files
    inserted: list[tuple[str, str, str, str, bytes]]
    refreshed: dict[str, tuple[str, bytes]]  # key -> (tokens, layout): stored passages whose analysis changed


def _taken_ids(writer: Writer, passages: list[Passage], known: dict[str, str]) -> set[str]:
    """The stored IDs a new passage's ID must avoid: those sharing a new passage's short prefix (a lengthened ID
    keeps the prefix), or every stored ID when the new passages are many."""
    new = [p.key for p in passages if p.key not in known]
    if len(new) > FEW_NEW_PASSAGES:
        return writer.all_passage_ids()
    return writer.ids_starting({short_id(key) for key in new})


# Up to this many new passages, the stored IDs they could collide with are looked up one prefix at a time.
FEW_NEW_PASSAGES = 20_000


def _analyse(passages: list[Passage], known: dict[str, str], taken: set[str], analyzer: Analyzer,
             splitter: SentenceSplitter, fresh: bool, report: Progress, cancel: Cancellation) -> _Analysed:
    """Tokens and layouts for the passages not stored yet (and for all of them when the analysis itself changed).

    known: key -> ID of every stored passage among them; taken: the stored IDs new ones could collide with."""
    new_ids = assign_ids((p.key for p in passages), known, taken)
    ids = {p.key: known.get(p.key) or new_ids[p.key] for p in passages}
    todo = [p for p in passages if fresh or p.key not in known]
    report("analysing", 0, len(todo))
    analysed = _tokenize_all([p.text for p in todo], analyzer, splitter, report, cancel)
    inserted = [(ids[p.key], p.key, p.text, t, layout) for p, (t, layout) in zip(todo, analysed) if p.key not in known]
    refreshed = {p.key: a for p, a in zip(todo, analysed) if p.key in known}
    return _Analysed(ids, inserted, refreshed)


# Passages laid out per step when a database from before layouts gets them: bounds the texts held at once.
LAY_OUT_BATCH = 100_000


def _lay_out_stored(writer: Writer, analyzer: Analyzer, splitter: SentenceSplitter, report: Progress,
                    cancel: Cancellation) -> None:
    """Lay out the stored passages that have no layout of the current format (once, for an older database)."""
    after = done = 0
    while rows := writer.texts_to_lay_out(LAYOUT_FORMAT, after, LAY_OUT_BATCH):
        report("laying out", done, 0)
        analysed = _tokenize_all([text for _, text in rows], analyzer, splitter, report, cancel, tokens=False)
        writer.set_layouts((layout, rowid) for (rowid, _), (_, layout) in zip(rows, analysed))
        after, done = rows[-1][0], done + len(rows)


# Below this many texts a second process costs more than it saves.
PARALLEL_FROM = 20_000


def _tokenize_all(texts: list[str], analyzer: Analyzer, splitter: SentenceSplitter, report: Progress,
                  cancel: Cancellation, tokens: bool = True) -> list[tuple[str, bytes]]:
    """Each text's terms, space-joined as stored (empty when tokens=False), and its layout; spread over the
    CPU cores for a large corpus.

    The workers are spawned, never forked: a fork of the bot would copy its event loop, its sockets and
    hundreds of MB of index into each worker. Each worker also watches its parent and exits with it.
    """
    workers = min(os.cpu_count() or 1, 8)
    if len(texts) < PARALLEL_FROM or workers < 2:
        lay_out = LayoutMaker(analyzer, splitter)
        out = []
        for i, text in enumerate(texts):
            out.append((" ".join(analyzer.tokenize(text)) if tokens else "", lay_out(text)))
            if i % 2000 == 0:
                report("analysing", i, len(texts))
        return out
    chunk = 2000
    pieces = [(texts[i:i + chunk], tokens) for i in range(0, len(texts), chunk)]
    out = []
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker,
                        initargs=(analyzer.term_map, splitter.to_json(), os.getpid()))
    try:
        # Polled, not iterated: a pool terminated under a blocking imap never wakes it, which left a
        # cancelled build (and its write lock and transaction) hanging for good. Terminating is left
        # to this thread's `finally`, so a signal handler never blocks on joining the pool either.
        results = pool.imap(_tokenize_chunk, pieces)
        for done in range(1, len(pieces) + 1):
            while True:
                try:
                    out += results.next(timeout=0.1)
                    break
                except multiprocessing.TimeoutError:
                    cancel.check()
            report("analysing", min(done * chunk, len(texts)), len(texts))
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return out


_worker_analyzer: Analyzer | None = None
_worker_lay_out: LayoutMaker | None = None


def _start_worker(term_map: dict[str, str], sentences: str, parent: int) -> None:
    global _worker_analyzer, _worker_lay_out
    _worker_analyzer = Analyzer(term_map)
    _worker_lay_out = LayoutMaker(_worker_analyzer, SentenceSplitter.from_json(sentences))
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """Make this process exit when `parent` does, kill -9 included.

    Linux's PR_SET_PDEATHSIG does it at once; a watchdog thread polling the parent covers other systems
    and the case where the spawning thread, not the process, ended.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:                 # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _tokenize_chunk(job: tuple[list[str], bool]) -> list[tuple[str, bytes]]:
    texts, tokens = job
    assert _worker_analyzer is not None and _worker_lay_out is not None
    return [(" ".join(_worker_analyzer.tokenize(text)) if tokens else "", _worker_lay_out(text)) for text in texts]


def _write_articles(writer: Writer, articles: list[Article], hashed: dict[str, tuple[str, str | None]]) -> None:
    writer.insert_articles(
        (a.source, a.file, *hashed[a.file], _signature(a), a.title, a.url, a.outlet, a.published, a.author,
         len(a.paragraphs))
        for a in articles)


def _compile(writer: Writer, splitter: SentenceSplitter, analyzer: Analyzer, places: list[list[str]],
             params: BM25Params, report: Progress) -> tuple[Searcher, dict[str, bytes | memoryview]]:
    """The BM25 index over every passage: its own words, then its article's title and section heading;
    and each passage's article, for article evidence (index/search.py ArticleEvidence).

    The title and heading are context (issue: headings are "context for the paragraphs under them"):
    a question naming the story's subject should prefer that story's paragraphs.
    """
    context: dict[tuple[str, str | None], list[str]] = {}
    ids: list[str] = []
    article_numbers: dict[str, int] = {}
    article_of, own_lengths = array("i"), array("i")
    titles: list[str] = []
    sources: list[str] = []

    def documents() -> Iterator[list[str]]:
        for count, (pid, tokens, title, section, source) in enumerate(writer.passages_with_context()):
            if (title, section) not in context:
                context[(title, section)] = analyzer.tokenize(f"{title}\n{section or ''}")
            ids.append(pid)
            if source not in article_numbers:
                article_numbers[source] = len(titles)
                titles.append(title)
                sources.append(source)
            article_of.append(article_numbers[source])
            if count % 20_000 == 0:
                report("compiling", count, 0)
            own = tokens.split()
            own_lengths.append(len(own))
            yield own + context[(title, section)]

    index = BM25Index.build(documents(), params)
    report("articles", 0, 1)
    title_terms = [np.array([index.term_ids[t] for t in analyzer.tokenize(title or "") if t in index.term_ids], dtype=np.int64)
                   for title in titles]
    articles = ArticleEvidence.build(index, np.frombuffer(article_of, dtype=np.int32),
                                     np.frombuffer(own_lengths, dtype=np.int32), title_terms, sources=sources)
    report("aliases", 0, 1)
    aliases = alias_counts(writer.texts())
    expansions = expansion_table(analyzer, sorted(list(pair) for pair in aliases), places)
    searcher = Searcher(index, ids, analyzer, splitter, expansions=expansions, places=places, articles=articles)
    return searcher, to_blobs(searcher, expansions, aliases)


def _compile_delta(writer: Writer, analyzer: Analyzer, params: BM25Params, facts: BaseFacts, moved: set[str],
                   touched: set[str], gone_texts: dict[str, str]) -> tuple[Delta, list[ExpansionGroup]] | None:
    """The delta segment over the stored whole compile: every passage a build since then touched, indexed again
    with its context, and every article they stand in, whole (index/segments.py). None when a merge is due
    instead: the delta would pass MERGE_SHARE of the base, or move the average lengths by more than AVGDL_DRIFT.

    moved: the passages that stood or stand in this build's changed articles; touched: those articles, and the
    primary articles of the moved passages before the change; gone_texts: the moved passages' texts as they
    were before this build (a removed passage's text is deleted with it).
    """
    base_count = len(facts.passage_ids)
    if params != facts.params or params.method != "plus" or not base_count:
        return None
    rows = list(writer.context_of(moved | set(facts.delta_ids)))
    deleted = np.union1d(facts.deleted, sorted_positions(facts.passage_ids, sorted(moved | set(facts.delta_ids))))
    if max(len(rows), len(deleted)) > MERGE_SHARE * base_count:
        return None
    context: dict[tuple[str, str | None], list[str]] = {}
    documents = []
    for _pid, tokens, title, section, _source in rows:
        if (title, section) not in context:
            context[(title, section)] = analyzer.tokenize(f"{title}\n{section or ''}")
        documents.append(tokens.split() + context[(title, section)])
    base_avgdl = float(facts.lengths.mean())
    live = (facts.lengths.sum() - facts.lengths[deleted.astype(np.int64)].sum() + sum(map(len, documents))) \
        / max(base_count - len(deleted) + len(documents), 1)
    if drift(base_avgdl, live) > AVGDL_DRIFT:
        return None
    index = BM25Index.build(documents, params, vocabulary=facts.vocabulary, avgdl=base_avgdl)
    del documents
    # Every article a moved passage stands in, and every article this build read, is indexed again whole.
    touched = set(facts.superseded) | touched | {row[4] for row in rows}
    # An article is some passage's primary place, as in a whole compile: a copy whose every passage stands first
    # elsewhere has no article document.
    titles = writer.titles(touched)
    members = [row for row in writer.context_of(writer.passages_in(titles)) if row[4] in titles]
    sources = sorted({row[4] for row in members})
    number = {source: a for a, source in enumerate(sources)}
    words, owners = [], []
    for _pid, tokens, _title, _section, source in members:
        ids = [index.term_ids.get(t) for t in tokens.split()]
        words += [t for t in ids if t is not None]
        owners += [number[source]] * sum(t is not None for t in ids)
    for source in sources:
        ids = [index.term_ids.get(t) for t in analyzer.tokenize(titles[source] or "")]
        words += [t for t in ids if t is not None]
        owners += [number[source]] * sum(t is not None for t in ids)
    base_article_avgdl = float(facts.article_lengths.mean()) if len(facts.article_lengths) else 0.0
    articles = ArticleEvidence.of_words(np.array(words, dtype=np.int64), np.array(owners, dtype=np.int64), len(sources),
                                        len(index.vocabulary), facts.article_params, sources, avgdl=base_article_avgdl)
    articles.article_of = np.array([number.get(row[4], -1) for row in rows], dtype=np.int32)
    superseded = [a for a, source in enumerate(facts.article_sources) if source in touched]
    live_articles = (facts.article_lengths.sum() - facts.article_lengths[superseded].sum() + articles.lengths.sum()) \
        / max(len(facts.article_lengths) - len(superseded) + len(sources), 1)
    if drift(base_article_avgdl, live_articles) > AVGDL_DRIFT:
        return None
    # An alias pair stays while some live passage writes it: the base's count, less its deleted passages' (their
    # texts read before this build deleted any), plus the delta's.
    removed = dict(facts.aliases_removed)
    newly_deleted = set(deleted.tolist()) - set(facts.deleted.tolist())
    for pair, n in alias_counts(gone_texts[facts.passage_ids[d]] for d in newly_deleted
                                if facts.passage_ids[d] in gone_texts).items():
        removed[pair] = removed.get(pair, 0) + n
    added = alias_counts(writer.texts_by_id(row[0] for row in rows).values())
    live = {pair for pair in facts.aliases.keys() | added.keys()
            if facts.aliases.get(pair, 0) - removed.get(pair, 0) + added.get(pair, 0) > 0}
    # The base's table analysed already: its live alias rows and its places; only new pairs are analysed.
    kept = [(kind, forms) for kind, forms in facts.expansions
            if kind != "alias" or tuple(form for form, _ in forms) in live]
    expansions = kept + expansion_table(analyzer, sorted(list(pair) for pair in live - facts.aliases.keys()), [])
    delta = Delta(index, [row[0] for row in rows], articles, deleted.astype(np.int64), sorted(touched),
                  base_terms=len(facts.vocabulary), aliases_removed=removed)
    return delta, expansions


def _signature(article: Article) -> str:
    h = hashlib.sha256()
    for part in (article.title, article.url, article.outlet, article.published, article.author):
        h.update((part or "").encode() + b"\x00")
    for paragraph in article.paragraphs:
        h.update(paragraph.text.encode() + b"\x00" + (paragraph.section or "").encode() + b"\x01")
    return h.hexdigest()


def _article_changes(before: dict[str, str], after: dict[str, str], touched_files: list[str]) -> Counts:
    touched = set(touched_files)
    before_touched = {s: sig for s, sig in before.items() if s.split("#", 1)[0] in touched}
    return Counts(
        added=sum(1 for s in after if s not in before),
        changed=sum(1 for s, sig in after.items() if s in before and before[s] != sig),
        removed=sum(1 for s in before_touched if s not in after),
    )


def _passage_changes(before_positions: dict, after_positions: dict, inserted_keys: set[str], removed: int) -> Counts:
    """Passages new to the index, gone from it, and how many of those are a new text where an old one stood."""
    changed = sum(1 for pos, key in after_positions.items()
                  if key in inserted_keys and pos in before_positions and before_positions[pos] != key)
    changed = min(changed, len(inserted_keys), removed)
    return Counts(added=len(inserted_keys) - changed, changed=changed, removed=removed - changed)
