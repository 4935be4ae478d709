"""Proximity re-ranking as it read its candidates before `TermSequence.gather` (index/proximity.py at
f49edcb), kept as the baseline `python -m bench.ablation --latency` times the product against: each
candidate's term ids were sliced from the forward index one document at a time. The bonus is the same.
"""

from __future__ import annotations

import numpy as np

from index.bm25 import BM25Index
from index.proximity import bonus_of_terms


def adjacency_bonus(index: BM25Index, docs: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    if len(weights) < 2 or not len(docs):
        return np.zeros(len(docs), dtype=np.float64)
    starts, ends = index.doc_starts[docs].tolist(), index.doc_starts[docs + 1].tolist()
    tokens = np.concatenate([index.sequence[s:e] for s, e in zip(starts, ends)])
    return bonus_of_terms(index, docs, weights, tokens)
