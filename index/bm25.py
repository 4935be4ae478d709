"""BM25 scoring over an inverted index: rank-bm25's semantics, a query costs only its terms' postings.

Tokens in, scores out: nothing here knows about text analysis, files or SQLite.

rank-bm25 scores every document for every query term. BM25+ gives even a document *without* the term a
constant (idf * delta), so each term's score splits into that constant, the same for every document,
plus a sparse "impact" on the documents that contain it. Precomputing the impacts once turns a
query into a few array additions over postings lists; adding the constants back gives rank-bm25's exact
scores. Top-k selection is MaxScore: once the k-th best candidate beats everything the remaining
(common, low-idf) terms could add, those terms only update candidates already found.
"""

from __future__ import annotations

import json
import logging
from array import array
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import numpy as np

__all__ = ("BM25Index", "BM25Params", "ScoredDoc", "METHODS", "lines_blob")

_log = logging.getLogger(__name__)

METHODS = ("okapi", "l", "plus")


@dataclass(frozen=True)
class BM25Params:
    """The variant and its parameters, named as in rank-bm25 (BM25Okapi, BM25L, BM25Plus)."""

    method: str = "plus"
    k1: float = 1.2
    b: float = 0.75
    delta: float = 1.0       # BM25L / BM25+ lower bound on a matching term's weight
    epsilon: float = 0.25    # BM25Okapi: negative idf becomes epsilon * mean idf

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown BM25 method {self.method!r}; choose from {', '.join(METHODS)}.")


class ScoredDoc(NamedTuple):
    doc: int
    score: float


class BM25Index:
    """Postings of precomputed impacts in CSC layout: term t's documents are doc_ids[indptr[t]:indptr[t+1]].

    Beside the postings it keeps the forward index, every document's term ids in reading order
    (doc i is sequence[doc_starts[i]:doc_starts[i+1]]): it is what proximity re-ranking reads, and
    a document's length is the length of its slice.
    """

    def __init__(self, params: BM25Params, vocabulary: list[str], indptr: np.ndarray, doc_ids: np.ndarray,
                 impacts: np.ndarray, constants: np.ndarray, sequence: np.ndarray, doc_starts: np.ndarray) -> None:
        self.params = params
        self.vocabulary = vocabulary
        self.term_ids = {term: i for i, term in enumerate(vocabulary)}
        self.indptr = indptr
        self.doc_ids = doc_ids
        self.impacts = impacts
        self.constants = constants
        self.sequence = sequence
        self.doc_starts = doc_starts
        self.num_docs = len(doc_starts) - 1
        self.max_impacts = _segment_max(impacts, indptr)
        # MaxScore's "a new candidate has acc == 0" needs every impact positive (BM25+ and BM25L always
        # are; Okapi's floored idf may not be): known once here, not rescanned per query.
        self.all_positive = bool(len(impacts) == 0 or impacts.min() > 0.0)
        self.idf = _idf(params, np.diff(indptr), self.num_docs)
        self.avgdl = float(doc_starts[-1]) / self.num_docs if self.num_docs else 0.0

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], params: BM25Params | None = None, **kwargs: float | str) -> "BM25Index":
        """Index documents given as lists of analysed tokens; document i is the i-th list."""
        params = params or BM25Params(**kwargs)  # type: ignore[arg-type]
        vocab: dict[str, int] = {}
        known = vocab.get
        sequence = array("i")
        lengths = array("i")
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        block_start = block_docs = 0
        for tokens in token_lists:
            ids: list[int | None] = list(map(known, tokens))   # a C loop; new terms are the rare case
            if None in ids:
                ids = [vocab.setdefault(t, len(vocab)) for t in tokens]
            sequence.extend(ids)  # type: ignore[arg-type]  # no None is left
            lengths.append(len(tokens))
            if len(sequence) - block_start >= _BLOCK_TOKENS:
                blocks.append(_count_block(sequence, lengths, block_start, block_docs))
                block_start, block_docs = len(sequence), len(lengths)
        blocks.append(_count_block(sequence, lengths, block_start, block_docs))
        postings = [np.concatenate(parts) for parts in zip(*blocks)]
        blocks.clear()          # the blocks and the whole must not coexist longer than needed: 1M documents
        return cls._from_postings(params, list(vocab), postings, _ints(sequence), _ints(lengths))

    @classmethod
    def _from_postings(cls, params: BM25Params, vocabulary: list[str], postings: list[np.ndarray],
                       sequence: np.ndarray, lengths: np.ndarray) -> "BM25Index":
        """postings = [terms, docs, tfs] in document order; consumed (emptied) to keep the peak low."""
        terms, docs, tfs = postings
        postings.clear()
        num_docs = len(lengths)
        # A stable sort by term keeps each postings list in document order.
        order = np.argsort(terms, kind="stable")
        df = np.bincount(terms, minlength=len(vocabulary)).astype(np.int64)
        del terms
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        doc_ids = docs[order]
        del docs
        tf = tfs[order].astype(np.float64)
        del tfs, order
        doc_starts = np.zeros(num_docs + 1, dtype=np.int64)
        np.cumsum(lengths, out=doc_starts[1:])
        avgdl = float(doc_starts[-1]) / num_docs if num_docs else 0.0
        idf = _idf(params, df, num_docs)
        relative_length = lengths / avgdl if avgdl else np.ones(num_docs)
        norm = params.k1 * (1 - params.b + params.b * relative_length)
        impacts, constants = _impacts(params, tf, norm, doc_ids, idf, df)
        return cls(params, vocabulary, indptr, doc_ids, impacts, constants, sequence, doc_starts)

    # -- scoring --------------------------------------------------------------------------------

    def query_weights(self, tokens: Sequence[str]) -> dict[int, float]:
        """Known query terms and how often each was asked: rank-bm25 counts a repeated token again."""
        weights: dict[int, float] = {}
        for token in tokens:
            t = self.term_ids.get(token)
            if t is not None:
                weights[t] = weights.get(t, 0.0) + 1.0
        return weights

    def scores(self, tokens: Sequence[str] | dict[int, float]) -> np.ndarray:
        """Every document's score, as rank-bm25's get_scores gives it (for tests and small corpora)."""
        weights = tokens if isinstance(tokens, dict) else self.query_weights(tokens)
        acc = np.zeros(self.num_docs, dtype=np.float64)
        for t, w in weights.items():
            lo, hi = self.indptr[t], self.indptr[t + 1]
            acc[self.doc_ids[lo:hi]] += w * self.impacts[lo:hi]
            acc += w * self.constants[t]
        return acc

    def top_k(self, tokens: Sequence[str] | dict[int, float], k: int) -> list[ScoredDoc]:
        """The k best documents that match at least one term: score desc, then document number."""
        weights = tokens if isinstance(tokens, dict) else self.query_weights(tokens)
        if not weights or k <= 0:
            return []
        if not self.all_positive:
            return self._top_k_exhaustive(weights, k)
        # Highest possible contribution first: rare terms find the candidates, common terms refine them.
        order = sorted(weights, key=lambda t: -weights[t] * self.max_impacts[t])
        bounds = [weights[t] * float(self.max_impacts[t]) for t in order]
        acc = np.zeros(self.num_docs, dtype=np.float64)
        found: list[np.ndarray] = []
        count = 0
        remaining = sum(bounds)
        reached = 0.0          # no candidate can score above the bounds of the terms processed so far
        i = 0
        while i < len(order):
            if count >= k and remaining < reached and remaining < _kth_largest(acc[np.concatenate(found)], k):
                break
            t = order[i]
            lo, hi = self.indptr[t], self.indptr[t + 1]
            docs = self.doc_ids[lo:hi]
            new = docs[acc[docs] == 0.0]
            acc[docs] += weights[t] * self.impacts[lo:hi]
            if len(new):
                found.append(new)
                count += len(new)
            remaining -= bounds[i]
            reached += bounds[i]
            i += 1
        candidates = np.concatenate(found)
        for t in order[i:]:
            self._add_to_candidates(acc, candidates, t, weights[t])
        scores = acc[candidates]
        if len(candidates) > k:
            keep = scores >= _kth_largest(scores, k)
            candidates, scores = candidates[keep], scores[keep]
        ranked = np.lexsort((candidates, -scores))[:k]
        constant = sum(w * float(self.constants[t]) for t, w in weights.items())
        return [ScoredDoc(int(candidates[j]), float(scores[j]) + constant) for j in ranked]

    def _add_to_candidates(self, acc: np.ndarray, candidates: np.ndarray, t: int, weight: float) -> None:
        """A non-essential term only refines documents already found; it cannot bring in a new one."""
        lo, hi = self.indptr[t], self.indptr[t + 1]
        docs = self.doc_ids[lo:hi]
        if len(docs) <= 4 * len(candidates):
            acc[docs] += weight * self.impacts[lo:hi]
            return
        sorted_candidates = np.sort(candidates)
        pos = np.searchsorted(docs, sorted_candidates)
        pos[pos == len(docs)] = 0
        hit = docs[pos] == sorted_candidates
        acc[sorted_candidates[hit]] += weight * self.impacts[lo:hi][pos[hit]]

    def _top_k_exhaustive(self, weights: dict[int, float], k: int) -> list[ScoredDoc]:
        sparse = self.scores(weights) - sum(w * float(self.constants[t]) for t, w in weights.items())
        matched = np.unique(np.concatenate([self.doc_ids[self.indptr[t]:self.indptr[t + 1]] for t in weights]))
        scores = sparse[matched]
        ranked = np.lexsort((matched, -scores))[:k]
        constant = sum(w * float(self.constants[t]) for t, w in weights.items())
        return [ScoredDoc(int(matched[j]), float(scores[j]) + constant) for j in ranked]

    def term_weight(self, term: str) -> float:
        """The largest score one occurrence of a term can add: 0 for an unknown term."""
        t = self.term_ids.get(term)
        return 0.0 if t is None else float(self.max_impacts[t]) + float(self.constants[t])

    def document_frequency(self, term: str) -> int:
        t = self.term_ids.get(term)
        return 0 if t is None else int(self.indptr[t + 1] - self.indptr[t])

    # -- persistence ----------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, bytes | memoryview]:
        """The bytes to store, the big arrays as views of their own memory: a copy of 100+ MB would hold the
        GIL (and stall the bot's event loop) for as long. from_arrays reads them back without copying."""
        return {
            "meta": json.dumps({"params": self.params.__dict__}).encode(),
            "vocabulary": lines_blob(self.vocabulary),
            "indptr": _raw(self.indptr, np.int64),
            "doc_ids": _raw(self.doc_ids, np.int32),
            "impacts": _raw(self.impacts, np.float64),
            "constants": _raw(self.constants, np.float64),
            "sequence": _raw(self.sequence, np.int32),
            "doc_starts": _raw(self.doc_starts, np.int64),
        }

    @classmethod
    def from_arrays(cls, blobs: dict[str, bytes]) -> "BM25Index":
        meta = json.loads(blobs["meta"])
        vocabulary = blobs["vocabulary"].decode().split("\n") if blobs["vocabulary"] else []
        return cls(
            BM25Params(**meta["params"]),
            vocabulary,
            np.frombuffer(blobs["indptr"], dtype=np.int64),
            np.frombuffer(blobs["doc_ids"], dtype=np.int32),
            np.frombuffer(blobs["impacts"], dtype=np.float64),
            np.frombuffer(blobs["constants"], dtype=np.float64),
            np.frombuffer(blobs["sequence"], dtype=np.int32),
            np.frombuffer(blobs["doc_starts"], dtype=np.int64),
        )

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.indptr, self.doc_ids, self.impacts, self.constants, self.sequence,
                                       self.doc_starts, self.max_impacts, self.idf))


def _raw(values: np.ndarray, dtype: type) -> memoryview:
    return np.ascontiguousarray(values, dtype=dtype).data.cast("B")


def lines_blob(items: Sequence[str]) -> bytes:
    """Strings as newline-separated UTF-8, joined a slice at a time: one join of a million strings holds
    the GIL for ~100 ms."""
    step = 50_000
    return b"\n".join("\n".join(items[i:i + step]).encode() for i in range(0, len(items), step))


# Term frequencies are counted a block of documents at a time, which bounds the temporary arrays.
_BLOCK_TOKENS = 4_000_000


def _count_block(sequence: array, lengths: array, token_start: int, doc_start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(term, doc, tf) of every distinct term in each document of one block, in document order."""
    terms = _ints(sequence)[token_start:].astype(np.int64)
    block_lengths = _ints(lengths)[doc_start:]
    docs = np.repeat(np.arange(doc_start, doc_start + len(block_lengths), dtype=np.int64), block_lengths)
    keys, tf = np.unique((docs << 32) | terms, return_counts=True)
    return (keys & 0xFFFFFFFF).astype(np.int32), (keys >> 32).astype(np.int32), tf.astype(np.int32)


def _ints(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int32) if len(values) else np.zeros(0, dtype=np.int32)


def _idf(params: BM25Params, df: np.ndarray, n: int) -> np.ndarray:
    df = df.astype(np.float64)
    if params.method == "okapi":
        idf = np.log(n - df + 0.5) - np.log(df + 0.5)
        # rank-bm25 floors only strictly negative idf, to epsilon times the mean over all terms.
        mean = float(idf.mean()) if len(idf) else 0.0
        return np.where(idf < 0, params.epsilon * mean, idf)
    if params.method == "l":
        return np.log((n + 1) / (df + 0.5))
    return np.log((n + 1) / np.maximum(df, 1.0))


def _impacts(params: BM25Params, tf: np.ndarray, norm: np.ndarray, doc_ids: np.ndarray, idf: np.ndarray,
             df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-posting impact and per-term constant such that score = constant + impact (0 when absent).

    tf (float64, one per posting) is turned into the impacts in place: at a million documents each
    temporary of posting length costs over 100 MB.
    """
    k1 = params.k1
    norm = norm[doc_ids]                       # k1 * (1 - b + b * dl / avgdl), per posting
    if params.method == "l":
        # As rank-bm25 writes BM25L: ctd = tf / (1 - b + b * dl / avgdl), and the whole term is
        # multiplied by tf once more, so a document without the term gets nothing.
        ctd = tf * k1
        ctd /= norm
        del norm
        ctd += params.delta                    # ctd + delta
        tf *= k1 + 1
        tf *= ctd
        ctd += k1                              # k1 + ctd + delta
        tf /= ctd
        del ctd
        constants = np.zeros(len(idf))
    else:
        # Okapi and BM25+ share tf (k1 + 1) / (tf + norm); BM25+ adds idf * delta to every document.
        norm += tf
        tf *= k1 + 1
        tf /= norm
        del norm
        constants = np.zeros(len(idf)) if params.method == "okapi" else idf * params.delta
    term_of_posting = np.repeat(np.arange(len(idf), dtype=np.int32), df)
    for start in range(0, len(tf), _BLOCK_TOKENS):
        block = slice(start, start + _BLOCK_TOKENS)
        tf[block] *= idf[term_of_posting[block]]
    return tf, constants


def _segment_max(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(max(len(indptr) - 1, 0), dtype=np.float64)
    starts = indptr[:-1]
    nonempty = starts < indptr[1:]
    out = np.zeros(len(starts), dtype=np.float64)
    out[nonempty] = np.maximum.reduceat(values, starts[nonempty])
    return out


def _kth_largest(values: np.ndarray, k: int) -> float:
    if len(values) <= k:
        return float(values.min())
    return float(np.partition(values, len(values) - k)[len(values) - k])
