"""The engine over a search cluster: the same Searcher, fed candidates by a backend and scoring them here.

The cluster's ranking only picks `candidate_depth(N)` candidates; each is re-scored with the embedded
formula (BM25+, index/build.py DEFAULT_PARAMS) and the *global* df, N and avgdl the build stored in the
cluster's metadata, then re-ranked by proximity exactly as the embedded searcher does. Per-shard IDF,
bm25a on disk chunks and global_idf misses (docs/search-cluster.md) therefore never reach an answer; the
only way the two can differ is a passage the cluster ranked below the depth (README, "Beyond one machine").
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import asdict, replace
from typing import Any, Callable, Sequence

import numpy as np

from .analysis import Analyzer, SentenceSplitter
from .backend import EMBEDDED, Candidates, StoredPassage, content_hash
from .bm25 import BM25Index, BM25Params, TermSequence, _idf
from .desk import Answer, Newsdesk
from .errors import IndexNotBuilt, PassageNotFound, QueryError
from .inert import clean
from .memory import release_gradually
from .search import ArticleEvidence, SearchResult, SearchSettings, Searcher
from .sphinx import SphinxBackend
from .store import BuildRecord, PassageRecord
from .vocabulary import Vocabulary

__all__ = ("ClusterDesk", "ClusterSearcher", "sync", "CANDIDATE_DEPTH", "candidate_depth")

_log = logging.getLogger(__name__)

# How many candidates the cluster returns for re-scoring (README, "Beyond one machine"). 200 gives the embedded
# top 5 on SQuAD and on 495 / 500 questions at 200k generated passages, but only 427 / 500 at 1M, where the
# shards' own IDF pushes more of the global top 5 below it; 500 gives 499 / 500 there (for ~40% more latency).
CANDIDATE_DEPTH = 200
LARGE_CORPUS = 500_000
LARGE_CORPUS_DEPTH = 500


def candidate_depth(num_docs: int) -> int:
    """The depth that keeps the cluster's top 5 the embedded one, for a corpus of num_docs passages."""
    return LARGE_CORPUS_DEPTH if num_docs >= LARGE_CORPUS else CANDIDATE_DEPTH
FETCH_TIMEOUT_S = 30.0
RECORD_CACHE = 5_000


class _Stats:
    """The global statistics of a build, in the shape the Searcher and proximity read from an index."""

    def __init__(self, vocabulary: list[str], df: Sequence[int], num_docs: int, avgdl: float, params: BM25Params) -> None:
        self.vocabulary = vocabulary
        self.term_ids = {t: i for i, t in enumerate(vocabulary)}
        self.df = np.asarray(df, dtype=np.int64)
        self.num_docs = num_docs
        self.avgdl = avgdl
        self.params = params
        self.idf = _idf(params, self.df, num_docs)
        self.constants = self.idf * params.delta if params.method == "plus" else np.zeros(len(self.idf))

    def document_frequency(self, term: str) -> int:
        t = self.term_ids.get(term)
        return 0 if t is None else int(self.df[t])


class _Window:
    """The candidates of one query as a tiny forward index (doc numbers in passage-ID order, as embedded)."""

    def __init__(self, stats: _Stats, token_lists: list[list[str]]) -> None:
        ids = [[stats.term_ids.get(t, -1) for t in tokens] for tokens in token_lists]
        self.params, self.avgdl, self.idf, self.vocabulary = stats.params, stats.avgdl, stats.idf, stats.vocabulary
        self.sequence = TermSequence(np.array([t for doc in ids for t in doc], dtype=np.int64))   # ids as they are
        self.doc_starts = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(doc) for doc in ids], out=self.doc_starts[1:])
        self.ids = ids


class ClusterSearcher(Searcher):
    """A Searcher whose BM25 step asks a backend for candidates (fetch runs on the event loop)."""

    def __init__(self, stats: _Stats, analyzer: Analyzer, splitter: SentenceSplitter, expansions: Sequence,
                 places: Sequence[Sequence[str]], cooccurring: Sequence[Sequence[str]],
                 fetch: Callable[[dict[str, float], int], Candidates], depth: int = CANDIDATE_DEPTH,
                 settings: SearchSettings | None = None, articles: ArticleEvidence | None = None) -> None:
        self._local = threading.local()
        # Candidates name their article by its source: the numbers the article index was built with.
        self._article_number = {source: i for i, source in enumerate(articles.sources)} if articles else {}
        self._cooccurring = {tuple(c) for c in cooccurring}
        self._fetch = fetch
        self.depth = depth
        self._records: OrderedDict[str, PassageRecord] = OrderedDict()
        self._records_lock = threading.Lock()
        super().__init__(stats, [], analyzer, splitter, expansions=expansions, places=places, settings=settings,  # type: ignore[arg-type]
                         articles=articles)

    @property  # type: ignore[override]
    def passage_ids(self) -> list[str]:
        return getattr(self._local, "ids", [])

    @passage_ids.setter
    def passage_ids(self, value: list[str]) -> None:
        pass                     # per query, in _rank

    def search(self, question: str, k: int = 5, offset: int = 0, within: set[str] | None = None,
               context: str | None = None) -> SearchResult:
        if within is not None:
            raise QueryError("Searching within one article is not available with a search cluster yet.",
                             "Ask without --source, or use the embedded index (--search embedded).")
        self._local.missing = ()
        result = super().search(question, k, offset, within, context)
        result.partial_shards = tuple(self._local.missing)
        return result

    def release(self, keep: Searcher | None = None) -> None:
        super().release(keep)
        release_gradually(self._article_number)

    def records(self, ids: Sequence[str]) -> dict[str, PassageRecord]:
        with self._records_lock:
            return {i: self._records[i] for i in ids if i in self._records}

    def _occurs(self, terms: tuple[str, ...]) -> bool:
        if len(terms) == 1:
            return terms[0] in self.index.term_ids
        return tuple(terms) in self._cooccurring

    def _rank(self, weights: dict[str, float], depth: int, within: set[str] | None) -> list[tuple[int, float]]:
        stats: _Stats = self.index  # type: ignore[assignment]
        fetched = self._fetch(weights, max(self.depth, depth, self.settings.rerank_depth))
        self._local.missing = fetched.missing_shards
        items = sorted(fetched.items, key=lambda c: c.id)
        with self._records_lock:
            for c in items:
                self._records[c.id] = c.record
                self._records.move_to_end(c.id)
            while len(self._records) > RECORD_CACHE:
                self._records.popitem(last=False)
        window = _Window(stats, [c.terms for c in items])
        self._local.ids = [c.id for c in items]
        self._local.terms = [set(c.terms) for c in items]
        ids = {stats.term_ids[t]: w for t, w in weights.items() if t in stats.term_ids}
        scores = np.array([self._bm25_score(stats, doc, ids) for doc in window.ids], dtype=np.float64)
        docs = np.arange(len(items), dtype=np.int64)
        order = np.lexsort((docs, -scores))[:max(depth, self.settings.rerank_depth)]

        def articles_of(window_docs: list[int]) -> np.ndarray:
            return np.array([self._article_number.get(items[d].record.places[0].article.source, -1)
                             for d in window_docs], dtype=np.int64)

        return self._reranked(ids, [(int(d), float(sc)) for d, sc in zip(docs[order], scores[order])], depth,
                              window, articles_of)  # type: ignore[arg-type]  # a window, not a BM25Index

    @staticmethod
    def _bm25_score(stats: _Stats, doc: list[int], weights: dict[int, float]) -> float:
        """BM25 as index/bm25.py computes it: the sparse impacts summed, then the per-term constants."""
        p = stats.params
        tf: dict[int, int] = {}
        for t in doc:
            if t in weights:
                tf[t] = tf.get(t, 0) + 1
        norm = p.k1 * (1 - p.b + p.b * (len(doc) / stats.avgdl if stats.avgdl else 1.0))
        score = 0.0
        for t, w in weights.items():
            n = tf.get(t)
            if n:
                if p.method == "l":
                    ctd = n * p.k1 / norm + p.delta
                    score += w * (n * (p.k1 + 1) * ctd / (p.k1 + ctd)) * float(stats.idf[t])
                else:
                    score += w * (n * (p.k1 + 1) / (n + norm)) * float(stats.idf[t])
        return score + sum(w * float(stats.constants[t]) for t, w in weights.items())

    def _matched_terms(self, docs: list[int], weights: dict[str, float]) -> list[frozenset[str]]:
        terms = self._local.terms
        return [frozenset(t for t in weights if t in terms[d]) for d in docs]


def searcher_from_meta(meta: dict[str, Any], fetch: Callable[[dict[str, float], int], Candidates],
                       depth: int | None = None) -> ClusterSearcher:
    stats = _Stats(meta["vocabulary"], meta["df"], meta["num_docs"], meta["avgdl"], BM25Params(**meta["params"]))
    return ClusterSearcher(stats, Analyzer(term_map=meta["term_map"]), SentenceSplitter.from_json(meta["sentences"]),
                           meta["expansions"], Vocabulary.load().places, meta["cooccurring"], fetch,
                           candidate_depth(meta["num_docs"]) if depth is None else depth,
                           articles=_articles_from(meta["articles"]) if meta.get("articles") else None)


# Article evidence travels in the cluster's metadata as its arrays (all but article_of: candidates name their
# article by source), each as differences from the value before it (small numbers: postings ascend within a
# term), zlib-compressed, base64: at 1M passages the raw arrays are some 100 MB, several times what the rest of
# the metadata takes.
_ARTICLE_ARRAYS = {name: dtype for name, dtype in ArticleEvidence.ARRAYS.items() if name != "article_of"}


def _articles_to(articles: ArticleEvidence) -> dict[str, Any]:
    def packed(values: np.ndarray) -> str:
        steps = np.diff(values.astype(np.int64), prepend=0)
        assert not len(steps) or int(np.abs(steps).max()) < 2**31, "article arrays past 2^31 entries"
        return base64.b64encode(zlib.compress(steps.astype("<i4").tobytes(), 6)).decode()

    return {"params": asdict(articles.params), "sources": list(articles.sources),
            **{name: packed(getattr(articles, name)) for name in _ARTICLE_ARRAYS}}


def _articles_from(stored: dict[str, Any]) -> ArticleEvidence:
    def unpacked(text: str, dtype: str) -> np.ndarray:
        return np.cumsum(np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i4"), dtype=np.int64).astype(dtype)

    arrays = {name: unpacked(stored[name], dtype) for name, dtype in _ARTICLE_ARRAYS.items()}
    return ArticleEvidence(np.zeros(0, dtype=np.int32), arrays["indptr"], arrays["articles"], arrays["tfs"],
                           arrays["lengths"], params=BM25Params(**stored["params"]), sources=stored["sources"])


def meta_of(searcher: Searcher, build: BuildRecord) -> dict[str, Any]:
    """What a reader needs besides the passages: the build record, global statistics, analysis tables."""
    index, articles = searcher.index, searcher.articles
    # A cluster is written from a whole compile (ClusterDesk.rebuild merges): one index's statistics.
    assert isinstance(index, BM25Index) and isinstance(articles, ArticleEvidence)
    cooccurring = sorted({terms for _kind, forms in searcher._groups for _form, terms in forms
                          if len(terms) > 1 and searcher._occurs(terms)})
    return {"build": asdict(build), "vocabulary": index.vocabulary, "df": np.diff(index.indptr).tolist(),
            "num_docs": index.num_docs, "avgdl": index.avgdl, "params": asdict(index.params),
            "term_map": searcher.analyzer.term_map, "sentences": searcher.splitter.to_json(),
            "expansions": searcher._groups, "cooccurring": [list(t) for t in cooccurring],
            "articles": _articles_to(articles)}


async def sync(local: Newsdesk, backend: SphinxBackend, io: "_IoLoop", progress: Any = None) -> dict[str, int]:
    """Write a fresh embedded build into the cluster: changed passages to every mirror, then the metadata.

    Streaming: records are read from the build's database and written a batch at a time; what is held for
    the whole corpus is one (ID, hash) pair per passage and the compiled index the build made anyway.
    """
    searcher, build = local._loaded()
    index = searcher.index
    assert isinstance(index, BM25Index), "a cluster is written from a whole compile"
    reader = await local._read()
    vocabulary, sequence, starts = index.vocabulary, index.sequence, index.doc_starts
    doc_of = searcher.doc_of

    def stored(record: PassageRecord) -> StoredPassage:
        d = doc_of[record.id]
        return StoredPassage(record, [vocabulary[t] for t in sequence[starts[d]:starts[d + 1]].tolist()])

    keep: list[tuple[str, int]] = []
    ids = searcher.passage_ids
    for start in range(0, len(ids), 1000):
        records = await reader.passages(ids[start:start + 1000])
        keep += [(pid, content_hash(stored(r))) for pid, r in records.items()]
        if progress is not None:
            progress("hashing", start, len(ids))

    loop = asyncio.get_running_loop()

    async def read(batch: list[str]) -> list[StoredPassage]:
        records = await reader.passages(batch)
        return [stored(records[p]) for p in batch if p in records]

    async def load(batch: list[str]) -> list[StoredPassage]:    # on the I/O loop; the database is ours
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(read(batch), loop))

    if progress is not None:
        progress("cluster", 0, 1)
    counts = await io.run(backend.write(keep, load))
    meta = await asyncio.to_thread(meta_of, searcher, build)
    await io.run(backend.write_meta(meta))
    return counts


class _IoLoop:
    """The cluster's connections live on their own event loop in a daemon thread: a search running in any
    thread (a worker, or the event loop itself, as `newsdesk eval` does) can wait for its query there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="search-cluster-io", daemon=True)
        self._thread.start()

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Any) -> Any:
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


class ClusterDesk(Newsdesk):
    """The Newsdesk engine reading from a search cluster; `rebuild` builds locally, then writes the cluster."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backend = SphinxBackend(settings.search)
        self._io = _IoLoop()
        self.last_sync: dict[str, int] = {}

    def _fetch(self, weights: dict[str, float], depth: int) -> Candidates:
        """From the search thread: run the backend's query on the event loop and wait for it."""
        return self._io.submit(self.backend.candidates(weights, depth)).result(FETCH_TIMEOUT_S)

    async def reload(self) -> None:
        meta = await self._io.run(self.backend.read_meta())
        if meta is None:
            raise IndexNotBuilt(f"The search cluster {self.backend.url} holds no index yet.",
                                f"Run: newsdesk index build --search {self.backend.url}")
        build = BuildRecord(**meta["build"])
        searcher = await asyncio.to_thread(searcher_from_meta, meta, self._fetch)
        del meta
        await self._swap(searcher, build)

    async def refresh(self) -> bool:
        if self._refreshing:
            return False
        self._refreshing = True
        try:
            current = await self._io.run(self.backend.current_build_id())
            if current is None or (self.build is not None and current == self.build.id):
                return False
            await self.reload()
            return True
        finally:
            self._refreshing = False

    async def rebuild(self, progress: Any = None, cancel: Any = None, on_wait: Any = None) -> Any:
        local = Newsdesk(replace(self.settings, search=EMBEDDED))
        try:
            # Compiled whole: the cluster's statistics are read from one index, not from segments.
            report = await local.merge(progress, cancel, on_wait=on_wait)
            if local.searcher is None:        # the build kept the stored index and loaded nothing
                await local.reload()
            self.last_sync = await sync(local, self.backend, self._io, progress)
            report.notes.append(f"Search cluster {self.backend.url}: {self.last_sync['written']} passages written, "
                                f"{self.last_sync['deleted']} deleted.")
        finally:
            await local.close()
        await self.reload()
        return report

    async def ask(self, question: str, k: int = 5, offset: int = 0, source: str | None = None,
                  context: str | None = None) -> Answer:
        if source:
            raise QueryError("Searching within one article is not available with a search cluster yet.",
                             "Ask without --source, or use the embedded index (--search embedded).")
        searcher, build = self._loaded()
        self._notice_other_builds()
        started = time.perf_counter()
        result = await asyncio.to_thread(searcher.search, question, k, offset, None, context)
        ids = [hit.passage_id for hit in result.hits]
        records = searcher.records(ids) if isinstance(searcher, ClusterSearcher) else {}
        if len(records) < len(ids):
            records.update(await self._io.run(self.backend.records([i for i in ids if i not in records])))
        return await asyncio.to_thread(self._answer, searcher, build, question, result, records, started)

    async def cite(self, passage_id: str) -> PassageRecord:
        wanted = passage_id.strip().strip("`").lower()
        records = await self._io.run(self.backend.records([wanted]))
        if wanted not in records:
            raise PassageNotFound(clean(passage_id.strip(), 40), [])
        return records[wanted]

    async def passages(self, ids: list[str]) -> dict[str, PassageRecord]:
        return await self._io.run(self.backend.records(ids))

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            try:
                await self._io.run(self.backend.close())
            finally:
                self._io.stop()
