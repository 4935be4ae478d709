"""Re-ranking by proximity: query terms that stand side by side in a passage count extra.

BM25 treats a passage as a bag of words, so "oil prices" and a passage mentioning oil in one sentence
and prices in another score alike. Following BM25TP (Rasolofo & Savoy, 2003) with a window of one word,
each pair of distinct query terms found adjacent adds min(idf) * tp (k1 + 1) / (K + tp), where tp counts
the adjacencies and K is BM25's length normalisation. It reads the forward index of the few candidates
BM25 already ranked, so its cost does not grow with the corpus.
"""

from __future__ import annotations

import numpy as np

from .bm25 import BM25Index

__all__ = ("adjacency_bonus", "bonus_of_terms")


def adjacency_bonus(index: BM25Index, docs: np.ndarray, weights: dict[int, float],
                    idf: np.ndarray | None = None) -> np.ndarray:
    """The proximity score of each document in docs for a query given as {term id: weight}; idf, when given,
    replaces the index's own (a segment's terms are weighed by the whole index's, index/segments.py)."""
    if len(weights) < 2 or not len(docs):
        return np.zeros(len(docs), dtype=np.float64)
    starts = index.doc_starts[docs]
    return bonus_of_terms(index, docs, weights, index.sequence.gather(starts, index.doc_starts[docs + 1] - starts), idf)


def bonus_of_terms(index: BM25Index, docs: np.ndarray, weights: dict[int, float], tokens: np.ndarray,
                   idf: np.ndarray | None = None) -> np.ndarray:
    """adjacency_bonus, given the documents' term ids one document after the other."""
    bonus = np.zeros(len(docs), dtype=np.float64)
    if len(weights) < 2 or not len(docs):
        return bonus
    starts = index.doc_starts[docs]
    ends = index.doc_starts[docs + 1]
    owner = np.repeat(np.arange(len(docs)), ends - starts)
    asked = np.zeros(len(tokens), dtype=bool)
    for t in weights:            # a handful of terms: one pass each beats a general set lookup
        asked |= tokens == t
    side_by_side = np.flatnonzero(asked[:-1] & asked[1:] & (owner[:-1] == owner[1:]) & (tokens[:-1] != tokens[1:]))
    if not len(side_by_side):
        return bonus
    a, b = tokens[side_by_side], tokens[side_by_side + 1]
    lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
    vocabulary_size = len(index.vocabulary)
    keys, tp = np.unique((owner[side_by_side] * vocabulary_size + lo) * vocabulary_size + hi, return_counts=True)
    doc, lo, hi = keys // (vocabulary_size * vocabulary_size), (keys // vocabulary_size) % vocabulary_size, keys % vocabulary_size
    weight = np.array([min(weights[x], weights[y]) for x, y in zip(lo.tolist(), hi.tolist())])
    p = index.params
    k = p.k1 * (1 - p.b + p.b * (ends - starts)[doc] / index.avgdl)
    idf = index.idf if idf is None else idf
    np.add.at(bonus, doc, weight * np.minimum(idf[lo], idf[hi]) * tp * (p.k1 + 1) / (k + tp))
    return bonus
