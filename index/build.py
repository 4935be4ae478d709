"""The incremental rebuild: corpus files -> articles -> passages -> tokens -> compiled index, in one transaction."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index, BM25Params
from .corpus import Article, Problem, parse_file, scan_corpus
from .errors import BuildFailed, CorpusError, NewsdeskError
from .passages import Passage, assign_ids, make_passages
from .search import expansion_table
from .store import Store, Writer
from .vocabulary import Vocabulary, analyzer_fingerprint, make_analyzer, mine_aliases

__all__ = ("BuildReport", "Counts", "rebuild", "Progress", "DEFAULT_PARAMS", "INDEX_FORMAT", "index_format",
           "problem_line")

_log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called from worker threads, so it must only record, not render."""

# Bump when the compiled index's blobs change shape: an older one is then rebuilt, not misread.
INDEX_FORMAT = 3

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

    def to_dict(self) -> dict:
        return {
            "build": self.build_id, "articles": self.articles, "passages": self.passages,
            "articles_added": self.article_changes.added, "articles_changed": self.article_changes.changed,
            "articles_removed": self.article_changes.removed, "passages_added": self.passage_changes.added,
            "passages_changed": self.passage_changes.changed, "passages_removed": self.passage_changes.removed,
            "files_read": self.files_read, "files_unchanged": self.files_unchanged,
            "problems": [str(p) for p in self.problems], "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        a, p = self.article_changes, self.passage_changes
        lines = [
            f"Build {self.build_id}: {self.articles} articles, {self.passages} passages in {self.seconds:.1f} s.",
            f"Articles: {a.added} added, {a.changed} changed, {a.removed} removed.",
            f"Passages: {p.added} added, {p.changed} changed, {p.removed} removed.",
            f"Files: {self.files_read} read, {self.files_unchanged} unchanged.",
        ]
        lines += [problem_line(problem) for problem in self.problems]
        return "\n".join(lines)


async def rebuild(store: Store, corpus: Path, progress: Progress | None = None,
                  params: BM25Params = DEFAULT_PARAMS) -> BuildReport:
    """Bring the index up to date with the corpus folder; only changed files are read and analysed.

    Any failure leaves the stored index as it was (the transaction rolls back); one that is not a
    NewsdeskError already is reported as a BuildFailed that says so, with the cause chained.
    """
    try:
        return await _rebuild(store, corpus, progress, params)
    except (NewsdeskError, asyncio.CancelledError):
        raise
    except Exception as e:
        _log.exception("Rebuild of %s failed", corpus)
        raise BuildFailed(f"The rebuild failed ({type(e).__name__}: {e}).",
                          "The previous index is unchanged and still answering.") from e


async def _rebuild(store: Store, corpus: Path, progress: Progress | None, params: BM25Params) -> BuildReport:
    started = time.perf_counter()
    report = _noop if progress is None else progress
    corpus = Path(corpus)
    if not corpus.exists():
        raise CorpusError(f"The corpus folder {corpus} does not exist.", "Pass --corpus PATH or set NEWSDESK_CORPUS.")
    report("scanning", 0, 1)
    files, problems = await asyncio.to_thread(scan_corpus, corpus)
    if not files:
        raise CorpusError(f"The corpus folder {corpus} has no readable article files (.txt, .md, .html, .jsonl).",
                          "\n".join(str(p) for p in problems) or None)
    vocabulary = await asyncio.to_thread(Vocabulary.load)
    fingerprint = analyzer_fingerprint(vocabulary, params)
    async with store.rebuild() as writer:
        stored_hashes = await writer.file_hashes()
        fresh = await writer.last_analyzer() != fingerprint
        changed = [f for f in files if fresh or stored_hashes.get(f.relative) != f.digest]
        present = {f.relative for f in files}
        gone = [name for name in stored_hashes if name not in present]
        articles, parse_problems = await asyncio.to_thread(_parse_all, changed, report)
        problems += parse_problems
        before_signatures = await writer.article_signatures()
        before_positions = await writer.occurrence_keys([f.relative for f in changed] + gone)
        known = await writer.passage_ids_by_key()
        blobs = await store.index_blobs()
        # The sentence model is learnt once, on the first build's corpus (or again when the analysis
        # changed, when every file is re-read): re-learning it would move the cuts of long paragraphs.
        keep_splitter = not fresh and "sentences" in blobs
        splitter = (SentenceSplitter.from_json(blobs["sentences"].decode()) if keep_splitter
                    else await asyncio.to_thread(SentenceSplitter.train, (p.text for a in articles for p in a.paragraphs)))
        current = keep_splitter and index_format(blobs) == INDEX_FORMAT
        passages = await asyncio.to_thread(make_passages, articles, splitter)
        await writer.delete_files([f.relative for f in changed] + gone)
        await _write_articles(writer, articles, {f.relative: f.digest for f in changed})
        analyzer = make_analyzer(vocabulary)    # one per build: the irregular table is stemmed once
        new_rows = await asyncio.to_thread(_analyse, passages, known, analyzer, fresh, report)
        await writer.update_tokens((tokens, key) for key, tokens in new_rows.refreshed.items())
        await writer.insert_passages(new_rows.inserted)
        await writer.insert_occurrences(
            (o.source, o.paragraph, o.part, new_rows.ids[p.key], o.section) for p in passages for o in p.occurrences)
        removed = await writer.delete_orphan_passages()
        article_count, passage_count = await writer.counts()
        if article_count == 0:
            raise CorpusError(f"Nothing in {corpus} could be indexed.", "\n".join(str(p) for p in problems) or None)
        if current and not changed and not gone:
            _log.info("Nothing changed: the compiled index is kept")
        else:
            report("compiling", 0, passage_count)
            await writer.replace_index(await _compile(writer, splitter, analyzer, vocabulary.places, params))
        after_signatures = {a.source: _signature(a) for a in articles}
        article_changes = _article_changes(before_signatures, after_signatures, [f.relative for f in changed] + gone)
        after_keys = {(o.source, o.paragraph, o.part): p.key for p in passages for o in p.occurrences}
        passage_changes = _passage_changes(before_positions, after_keys, {row[1] for row in new_rows.inserted}, removed)
        seconds = time.perf_counter() - started
        result = BuildReport(0, article_count, passage_count, article_changes, passage_changes,
                             files_read=len(changed), files_unchanged=len(files) - len(changed),
                             problems=problems, seconds=seconds)
        result.build_id = await writer.add_build(str(corpus.resolve()), fingerprint, article_count, passage_count,
                                                 seconds, result.to_dict())
    for problem in problems:
        _log.warning("%s", problem)
    report("done", 1, 1)
    return result


def problem_line(problem: Problem) -> str:
    return f"Skipped: {problem}" if problem.skipped else f"Warning: {problem}"


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _parse_all(files, report: Progress) -> tuple[list[Article], list[Problem]]:
    articles, problems = [], []
    for i, file in enumerate(files):
        found, trouble = parse_file(file)
        articles += found
        problems += trouble
        if i % 50 == 0:
            report("reading", i, len(files))
    return articles, problems


@dataclass
class _Analysed:
    ids: dict[str, str]                     # key -> passage id, for every passage of the changed files
    inserted: list[tuple[str, str, str, str]]
    refreshed: dict[str, str]               # key -> tokens: stored passages whose analysis changed


def _analyse(passages: list[Passage], known: dict[str, str], analyzer: Analyzer, fresh: bool,
             report: Progress) -> _Analysed:
    """Tokens for the passages not stored yet (and for all of them when the analysis itself changed)."""
    new_ids = assign_ids((p.key for p in passages), known, set(known.values()))
    ids = {p.key: known.get(p.key) or new_ids[p.key] for p in passages}
    todo = [p for p in passages if fresh or p.key not in known]
    report("analysing", 0, len(todo))
    tokens = _tokenize_all([p.text for p in todo], analyzer, report)
    inserted = [(ids[p.key], p.key, p.text, t) for p, t in zip(todo, tokens) if p.key not in known]
    refreshed = {p.key: t for p, t in zip(todo, tokens) if p.key in known}
    return _Analysed(ids, inserted, refreshed)


# Below this many texts a second process costs more than it saves.
PARALLEL_FROM = 20_000


def _tokenize_all(texts: list[str], analyzer: Analyzer, report: Progress) -> list[str]:
    """Each text's terms, space-joined as stored; spread over the CPU cores for a large corpus."""
    workers = min(os.cpu_count() or 1, 8)
    if len(texts) < PARALLEL_FROM or workers < 2:
        out = []
        for i, text in enumerate(texts):
            out.append(" ".join(analyzer.tokenize(text)))
            if i % 5000 == 0:
                report("analysing", i, len(texts))
        return out
    chunk = 2000
    pieces = [texts[i:i + chunk] for i in range(0, len(texts), chunk)]
    out = []
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(analyzer.term_map,)) as pool:
        for done, tokens in enumerate(pool.map(_tokenize_chunk, pieces), start=1):
            out += tokens
            report("analysing", min(done * chunk, len(texts)), len(texts))
    return out


_worker_analyzer: Analyzer | None = None


def _start_worker(term_map: dict[str, str]) -> None:
    global _worker_analyzer
    _worker_analyzer = Analyzer(term_map)


def _tokenize_chunk(texts: list[str]) -> list[str]:
    return [" ".join(_worker_analyzer.tokenize(text)) for text in texts]


def index_format(blobs: dict[str, bytes]) -> int | None:
    """The format a stored compiled index was written in (None for one from before formats were kept)."""
    try:
        return int(blobs["format"])
    except (KeyError, ValueError):
        return None


async def _write_articles(writer: Writer, articles: list[Article], digests: dict[str, str]) -> None:
    await writer.insert_articles(
        (a.source, a.file, digests[a.file], _signature(a), a.title, a.url, a.outlet, a.published, a.author,
         len(a.paragraphs))
        for a in articles)


async def _compile(writer: Writer, splitter: SentenceSplitter, analyzer: Analyzer, places: list[list[str]],
                   params: BM25Params) -> dict[str, bytes]:
    """The BM25 index over every passage: its own words, then its article's title and section heading.

    The title and heading are context (issue: headings are "context for the paragraphs under them"):
    a question naming the story's subject should prefer that story's paragraphs.
    """
    rows = await writer.passages_with_context()
    context: dict[tuple[str, str | None], list[str]] = {}

    def tokens_of(row: tuple[str, str, str, str | None]) -> list[str]:
        _pid, tokens, title, section = row
        if (title, section) not in context:
            context[(title, section)] = analyzer.tokenize(f"{title}\n{section or ''}")
        return tokens.split() + context[(title, section)]

    ids = [row[0] for row in rows]
    index = await asyncio.to_thread(BM25Index.build, (tokens_of(row) for row in rows), params)
    del rows
    aliases = await asyncio.to_thread(mine_aliases, await _texts(writer))
    blobs = index.to_arrays()
    blobs["format"] = str(INDEX_FORMAT).encode()
    blobs["passage_ids"] = "\n".join(ids).encode()
    blobs["sentences"] = splitter.to_json().encode()
    # The analysis tables, resolved now so that start-up does not stem them again.
    blobs["term_map"] = json.dumps(analyzer.term_map).encode()
    blobs["expansions"] = json.dumps(expansion_table(analyzer, aliases, places)).encode()
    return blobs


async def _texts(writer: Writer) -> list[str]:
    async with writer.db.execute("SELECT text FROM passages ORDER BY id") as cursor:
        return [row[0] for row in await cursor.fetchall()]


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
