"""Segments: the index a build compiled whole (the base) and one segment of what changed since (the delta).

Lucene's way, cut to two tiers. A build that changes a few articles does not recompile a million passages:
the passages it touched (and every article they belong to) are indexed again, alone, into the delta; their
old documents in the base are marked deleted. Each such build rebuilds the delta from everything changed
since the last whole compile, so its cost follows the changes, not the corpus. A merge is a whole compile
(index/build.py); it comes due when the delta grows past a share of the base, and runs in the background.

The statistics stay honest: document frequencies and the number of documents are the live ones across both
segments (the base's counts, less its deleted documents', plus the delta's), for passages and for articles
alike. Only the average length is the base's: both segments normalise lengths by the average at the last
merge. Each term's impact is tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), and changing avgdl by a factor r
scales that denominator's length part by 1/r, so an impact moves by a factor between 1/r and r. A build
merges instead when the live average differs from the frozen one by more than AVGDL_DRIFT: between merges
every score is within that share of what a merged index gives it (tests/test_segments.py measures it), and
after a merge it is the merged index's exactly. Alias pairs are kept with how many passages write them, so
one only a deleted passage wrote is dropped. What a delta does not reproduce: passages with equal scores may
come in another order than after a merge (ties are settled by document number, and the delta's come last).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np

from .bm25 import BM25Index, BM25Params, ScoredDoc, _idf
from .proximity import adjacency_bonus
from .search import ArticleEvidence

__all__ = ("Delta", "SegmentedIndex", "SegmentedArticles", "MERGE_SHARE", "MERGE_SOON_SHARE", "AVGDL_DRIFT",
           "drift")

# A delta holding more than this share of the base's passages is merged by the build that would grow it...
MERGE_SHARE = 0.10
# ...and one past this share is merged in the background after the build that grew it (index/desk.py).
MERGE_SOON_SHARE = 0.02
# The largest relative difference between the frozen and the live average length a delta may leave.
AVGDL_DRIFT = 0.01


def drift(frozen: float, live: float) -> float:
    """By how much, relatively, scores may differ from a merged index's when lengths are normalised by
    `frozen` instead of `live`: max(r, 1/r) - 1 for r = live / frozen."""
    if frozen <= 0 or live <= 0:
        return 0.0 if frozen == live else float("inf")
    r = live / frozen
    return max(r, 1 / r) - 1


@dataclass
class Delta:
    """What changed since the base was compiled: its own index and article evidence, numbered like the base's
    terms (new terms after them), and what it replaces in the base."""

    index: BM25Index                    # the delta's passages, each with its title and heading as context
    passage_ids: list[str]              # delta document -> passage ID, in ID order
    articles: ArticleEvidence           # whole articles of the delta's sources; article_of: delta doc -> article
    deleted: np.ndarray                 # base document numbers no longer current (sorted)
    superseded: list[str] = field(default_factory=list)   # sources whose base article document is replaced
    base_terms: int = 0                 # how many of index.vocabulary's terms are the base's
    aliases_removed: dict[tuple[str, str], int] = field(default_factory=dict)   # alias pairs the deleted wrote


def scaled_weights(weights: dict[int, float], live_idf: np.ndarray, own_idf: np.ndarray,
                   indptr: np.ndarray) -> dict[int, float]:
    """The query weights that turn a segment's stored impacts (own_idf x factor) into impacts under the live
    statistics (live_idf x factor), for the terms the segment holds (postings indptr[t]:indptr[t + 1])."""
    known = len(indptr) - 1
    return {t: w * float(live_idf[t] / own_idf[t]) for t, w in weights.items() if t < known and indptr[t + 1] > indptr[t]}


class _LiveTerms(Mapping[str, int]):
    """term -> number, for the terms some live document holds: a term whose every document was deleted is
    as unknown as one never seen."""

    def __init__(self, term_ids: dict[str, int], df: np.ndarray) -> None:
        self._ids, self._df = term_ids, df

    def __getitem__(self, term: str) -> int:
        t = self._ids[term]
        if not self._df[t]:
            raise KeyError(term)
        return t

    def __contains__(self, term: object) -> bool:
        t = self._ids.get(term)  # type: ignore[call-overload]
        return t is not None and bool(self._df[t])

    def __iter__(self) -> Iterator[str]:
        return (term for term, t in self._ids.items() if self._df[t])

    def __len__(self) -> int:
        return int(np.count_nonzero(self._df))

    def clear(self) -> None:          # Searcher.release empties it with the rest
        pass


class SegmentedIndex:
    """The base and the delta searched as one BM25 index.

    Documents are numbered base first, then the delta's after them (base.num_docs + i). Each segment is
    searched with every query weight scaled by live idf / the segment's own idf, which turns its stored impacts
    into impacts under the live statistics; the base is asked for as many more documents as it has deleted
    ones holding a query term, and those are dropped.
    """

    def __init__(self, base: BM25Index, delta: Delta) -> None:
        self.base, self.delta = base, delta.index
        self.params = base.params
        self.offset = base.num_docs
        self.deleted = np.asarray(delta.deleted, dtype=np.int64)
        self.vocabulary = self.delta.vocabulary              # the base's terms, then the delta's new ones
        size = len(self.vocabulary)
        df = np.zeros(size, dtype=np.int64)
        df[:len(base.vocabulary)] = np.diff(base.indptr)
        self.deleted_df = np.zeros(size, dtype=np.int64)
        if len(self.deleted):
            starts = base.doc_starts[self.deleted]
            lengths = base.doc_starts[self.deleted + 1] - starts
            terms = base.sequence.gather(starts, lengths)
            owner = np.repeat(np.arange(len(self.deleted), dtype=np.int64), lengths)
            distinct = np.unique(owner * size + terms) % size
            self.deleted_df += np.bincount(distinct, minlength=size)
        df -= self.deleted_df
        df += np.diff(self.delta.indptr)
        self.df = df
        self.num_docs = base.num_docs - len(self.deleted) + self.delta.num_docs   # live documents
        self.idf = _idf(self.params, df, self.num_docs)
        self.constants = self.idf * self.params.delta if self.params.method == "plus" else np.zeros(size)
        self.term_ids = _LiveTerms(self.delta.term_ids, df)
        self.avgdl = base.avgdl
        self._deleted_mask = np.zeros(base.num_docs, dtype=bool)
        self._deleted_mask[self.deleted] = True

    @property
    def size(self) -> int:
        """Document numbers in use, deleted ones included."""
        return self.offset + self.delta.num_docs

    def _scaled(self, segment: BM25Index, weights: dict[int, float]) -> dict[int, float]:
        return scaled_weights(weights, self.idf, segment.idf, segment.indptr)

    def top_k(self, weights: dict[int, float], k: int) -> list[ScoredDoc]:
        docs, scores = self.top_k_arrays(weights, k)
        return [ScoredDoc(d, s) for d, s in zip(docs.tolist(), scores.tolist())]

    def top_k_arrays(self, weights: dict[int, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        constant = sum(w * float(self.constants[t]) for t, w in weights.items())
        docs, scores = [np.zeros(0, dtype=np.intp)], [np.zeros(0)]
        for segment, offset in ((self.base, 0), (self.delta, self.offset)):
            scaled = self._scaled(segment, weights)
            if not scaled:
                continue
            own = sum(w * float(segment.constants[t]) for t, w in scaled.items())
            found, score = self._live_top_k(scaled, k) if segment is self.base else segment.top_k_arrays(scaled, k)
            docs.append(found + offset)
            scores.append(score - own + constant)
        found, score = np.concatenate(docs), np.concatenate(scores)
        ranked = np.lexsort((found, -score))[:k]
        return found[ranked], score[ranked]

    def _live_top_k(self, scaled: dict[int, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The base's k best live documents. It is asked for k more than k, then twice as many each round, up to
        k plus its deleted documents holding a query term: the best k live ones are among any list deep enough
        to hold k live ones, and asking for all the deleted at once threw MaxScore's pruning away."""
        most = k + int(sum(self.deleted_df[t] for t in scaled))
        want = min(2 * k, most)
        while True:
            found, score = self.base.top_k_arrays(scaled, want)
            live = ~self._deleted_mask[found]
            if want >= most or len(found) < want or np.count_nonzero(live) >= k:
                return found[live], score[live]
            want = min(2 * want, most)

    def scores(self, weights: dict[int, float]) -> np.ndarray:
        """Every document number's score (deleted ones too: callers ask only for live documents)."""
        out = np.zeros(self.size)
        for segment, lo, hi in ((self.base, 0, self.offset), (self.delta, self.offset, self.size)):
            scaled = self._scaled(segment, weights)
            out[lo:hi] = segment.scores(scaled) - sum(w * float(segment.constants[t]) for t, w in scaled.items())
        return out + sum(w * float(self.constants[t]) for t, w in weights.items())

    def postings(self, t: int) -> np.ndarray:
        """Term t's documents in both segments (deleted ones too), in order."""
        parts = [self.base.postings(t)] if t < len(self.base.indptr) - 1 else []
        parts.append(self.delta.postings(t).astype(np.int64) + self.offset)
        return np.concatenate(parts)

    def live_postings(self, t: int) -> np.ndarray:
        """postings(t) less the deleted documents (reads the whole list: for the rare check that needs it)."""
        docs = self.postings(t)
        return docs[~self._deleted_mask[np.minimum(docs, self.offset - 1)] | (docs >= self.offset)]

    def document_frequency(self, term: str) -> int:
        t = self.delta.term_ids.get(term)
        return 0 if t is None else int(self.df[t])

    def proximity(self, docs: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """index/proximity.py's bonus, each document read from its own segment, weighed by live idf."""
        out = np.zeros(len(docs))
        in_base = docs < self.offset
        base_terms = len(self.base.vocabulary)
        out[in_base] = adjacency_bonus(self.base, docs[in_base], {t: w for t, w in weights.items() if t < base_terms},
                                       self.idf)
        out[~in_base] = adjacency_bonus(self.delta, docs[~in_base] - self.offset, weights, self.idf)
        return out

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.delta.nbytes + self.df.nbytes + self.idf.nbytes + self._deleted_mask.nbytes


class SegmentedArticles:
    """The base's and the delta's article evidence scored as one, with live article statistics.

    Articles are numbered base first, then the delta's. A superseded base article is never named: its base
    passages are mapped to the delta's article of the same source, and its document leaves the statistics.
    """

    def __init__(self, base: ArticleEvidence, delta: Delta, base_docs: int) -> None:
        self.base, self.delta = base, delta.articles
        self.params = base.params
        self.offset = len(base.lengths)
        replaced = set(delta.superseded)
        superseded = np.array([a for a, source in enumerate(base.sources) if source in replaced], dtype=np.int64)
        size = len(self.delta.indptr) - 1
        df = np.zeros(size, dtype=np.int64)
        df[:len(base.indptr) - 1] = np.diff(base.indptr)
        if len(superseded):
            at = np.flatnonzero(np.isin(base.articles, superseded))
            df -= np.bincount(np.searchsorted(base.indptr, at, side="right") - 1, minlength=size)
        df += np.diff(self.delta.indptr)
        count = self.offset - len(superseded) + len(self.delta.lengths)
        self.idf = _idf(self.params, df, count)
        self.df = df
        self.avgdl = base.avgdl
        self.sources = list(base.sources) + list(self.delta.sources)
        in_delta = {source: self.offset + a for a, source in enumerate(self.delta.sources)}
        article_of = base.article_of[:base_docs].astype(np.int32)
        if len(superseded):
            # A base passage of a superseded article now belongs to the delta's article of that source.
            moved = np.flatnonzero(np.isin(article_of, superseded))
            replacement = np.array([in_delta.get(base.sources[a], -1) for a in superseded.tolist()], dtype=np.int32)
            article_of[moved] = replacement[np.searchsorted(superseded, article_of[moved])]
        self.article_of = np.concatenate([article_of, self.delta.article_of.astype(np.int32) + self.offset])

    def scores(self, named: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """ArticleEvidence.scores under the live statistics, for article numbers of either segment."""
        p = self.params
        live = {t: w for t, w in weights.items() if self.df[t] > 0}
        out = np.full(len(named), sum(w * float(self.idf[t]) * p.delta for t, w in live.items()))
        for segment, lo, hi in ((self.base, 0, self.offset), (self.delta, self.offset, self.offset + len(self.delta.lengths))):
            mine = (named >= lo) & (named < hi)
            if not mine.any():
                continue
            out[mine] += segment.impacts(named[mine] - lo, scaled_weights(live, self.idf, segment.idf, segment.indptr))
        return out

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.delta.nbytes + self.article_of.nbytes + self.idf.nbytes


def sorted_positions(ids: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Where each wanted ID stands in a sorted list of IDs (the base's document numbers); absent ones are left out."""
    out = []
    for pid in wanted:
        i = bisect.bisect_left(ids, pid)
        if i < len(ids) and ids[i] == pid:
            out.append(i)
    return sorted(out)
