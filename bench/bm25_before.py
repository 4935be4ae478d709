"""The BM25 top-k as it was before issue 10 (index/bm25.py at fb4ce36), kept as a baseline for bench/run.py.

That version held one float64 impact per posting, int32 term ids for the forward index and int64 document
offsets, and zeroed a fresh accumulator of one float64 per document for every query. Its impacts equal
today's bit for bit (same formula, same order of operations), so it is rebuilt from today's index rather
than from tokens: only its top_k and its memory are compared, not its build.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from index.bm25 import BM25Index, ScoredDoc


class BM25Before:
    """Today's postings with the old layout's float64 impacts and the old MaxScore top-k (copied unchanged)."""

    def __init__(self, index: BM25Index) -> None:
        self.query_weights = index.query_weights
        self.indptr, self.doc_ids, self.constants = index.indptr, index.doc_ids, index.constants
        self.num_docs = index.num_docs
        self.impacts = np.concatenate([index.impacts.term(t, 1.0) for t in range(len(index.vocabulary))] or [np.zeros(0)])
        self.max_impacts = index.max_impacts
        self.all_positive = index.all_positive
        # What the old layout held: impacts float64, constants, idf and max impacts float64 per term,
        # int64 indptr, int32 doc ids and forward index, int64 document offsets.
        self.nbytes = (self.impacts.nbytes + self.doc_ids.nbytes + self.indptr.nbytes + 3 * self.constants.nbytes
                       + 4 * len(index.sequence) + 8 * (self.num_docs + 1))

    def top_k(self, tokens: Sequence[str] | dict[int, float], k: int) -> list[ScoredDoc]:
        weights = tokens if isinstance(tokens, dict) else self.query_weights(tokens)
        if not weights or k <= 0:
            return []
        if not self.all_positive:
            raise NotImplementedError("the baseline is timed on BM25+ (every impact positive)")
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


def _kth_largest(values: np.ndarray, k: int) -> float:
    if len(values) <= k:
        return float(values.min())
    return float(np.partition(values, len(values) - k)[len(values) - k])
