"""BM25 scoring over an inverted index: rank-bm25's semantics, a query costs only its terms' postings.

Tokens in, scores out: nothing here knows about text analysis, files or SQLite.

rank-bm25 scores every document for every query term. BM25+ gives even a document *without* the term a
constant (idf * delta), so each term's score splits into that constant, the same for every document,
plus a sparse "impact" on the documents that contain it. Adding the constants back to the impacts gives
rank-bm25's exact scores. An impact is idf times a factor of only the term frequency and the document's
length, and a corpus holds a few thousand distinct (tf, length) pairs: each posting names its pair, and the
factor is looked up in a small float64 table, so scores stay exact. Most terms use a few hundred pairs at
most, and their postings name them in one byte (Impacts): an eighth of the memory of float64 impacts.

Top-k selection is MaxScore: terms in order of the most they can add; once the k-th best candidate beats
everything the remaining terms could add, those terms only refine candidates already found, and a
candidate that cannot reach the k-th best even with all of them is dropped.

Tighter bounds were measured at 1M (SQuAD questions, the slowest 100) and left out. Block-max: the median
block of 128 postings still reaches 0.86-1.0 of its term's largest impact. Maxima over 1,024-document ranges
admit 25% fewer candidates and read 8% fewer postings before refining, for their own bookkeeping per range.
Splitting each list into high and low impacts admits more, not fewer. A candidate's bound is loose because
of the terms it lacks, which only reading their lists tells; the cost left is that reading.
"""

from __future__ import annotations

import json
import logging
import threading
from array import array
from itertools import accumulate
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

__all__ = ("BM25Index", "BM25Params", "ScoredDoc", "METHODS", "lines_blob", "Impacts", "TermSequence")

_log = logging.getLogger(__name__)

METHODS = ("okapi", "l", "plus")

# Pruning compares sums of the same float64 terms added in different orders: a relative margin far
# above their rounding error keeps it from dropping a document that ties the k-th best.
_MARGIN = 1.0 - 1e-9
# Below this many postings left to read, reading them costs less than working out what could be skipped.
_WORTH_PRUNING = 8192
# A refine step reads a whole postings list against acc while the candidates are more than this fraction of
# it (one gather per posting), else looks each candidate up in it (a binary search each): measured at 1M.
_LOOKUP_BELOW = 1 / 6


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


class Impacts:
    """Every posting's impact, idf[term] * table[code]: the table holds each distinct (tf, length) pair's factor,
    sorted, so a larger code names a larger factor.

    Most terms' postings take few of the table's factors: such a term keeps the sorted table codes it uses (its
    slice of `subtable`, from sub_ptr) and one byte per posting naming its place there (`narrow`). A term that
    uses more than 256 of them, or has too few postings to repay its list, keeps 2-byte table codes (`wide`);
    start[t] is where term t's codes begin in one array or the other. An index stored with 2-byte codes for
    every posting reads as all terms wide; one stored before codes existed has one float64 impact per posting:
    that is `table` itself, with `wide` None.
    """

    def __init__(self, indptr: np.ndarray, idf: np.ndarray, table: np.ndarray, wide: np.ndarray | None = None,
                 narrow: np.ndarray | None = None, start: np.ndarray | None = None, sub_ptr: np.ndarray | None = None,
                 subtable: np.ndarray | None = None) -> None:
        self.indptr = indptr
        self.idf = idf
        self.table = table
        self.wide = wide
        self.narrow = np.zeros(0, dtype=np.uint8) if narrow is None else narrow
        self.start = indptr[:-1] if start is None else start
        self.sub_ptr = np.zeros(len(indptr), dtype=np.int32) if sub_ptr is None else sub_ptr
        self.subtable = np.zeros(0, dtype=np.uint16) if subtable is None else subtable

    @classmethod
    def from_codes(cls, indptr: np.ndarray, idf: np.ndarray, codes: np.ndarray, table: np.ndarray) -> "Impacts":
        """From one table code per posting, narrowed where a term's postings use few codes."""
        return cls(indptr, idf, table, *_narrowed(codes, indptr, len(table)))

    def _codes(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Term t's codes, and the table codes they name if they are places in its own list (else None)."""
        start = self.start[t]
        end = start + (self.indptr[t + 1] - self.indptr[t])
        lo, hi = self.sub_ptr[t], self.sub_ptr[t + 1]
        if lo < hi:
            return self.narrow[start:end], self.subtable[lo:hi]
        assert self.wide is not None
        return self.wide[start:end], None

    def term(self, t: int, weight: float) -> np.ndarray:
        """weight x the impacts of term t's postings, as a new array."""
        if self.wide is None:
            return self.table[self.indptr[t]:self.indptr[t + 1]] * weight
        codes, own = self._codes(t)
        if own is not None:
            return self._weighted(self.table.take(own), t, weight).take(codes)
        if len(codes) > 2 * len(self.table):      # weigh each factor once, then look them up
            return self._weighted(self.table.copy(), t, weight).take(codes)
        return self._weighted(self.table.take(codes), t, weight)

    def of_term_at(self, t: int, positions: np.ndarray, weight: float) -> np.ndarray:
        """weight x the impacts of the postings at these positions, all of them term t's."""
        if self.wide is None:
            return self.table[positions] * weight
        codes, own = self._codes(t)
        here = codes.take(positions - self.indptr[t])
        if own is not None:
            return self._weighted(self.table.take(own), t, weight).take(here)
        return self._weighted(self.table.take(here), t, weight)

    def _weighted(self, factors: np.ndarray, t: int, weight: float) -> np.ndarray:
        # weight x (factor x idf), in the order a stored float64 impact was weighted: the same bits
        factors *= self.idf[t]
        if weight != 1.0:
            factors *= weight
        return factors

    def __getitem__(self, key: np.ndarray | slice) -> np.ndarray:
        """The impacts at some positions of the postings, of any terms."""
        positions = np.arange(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key)
        if self.wide is None:
            return self.table[positions]
        terms = np.searchsorted(self.indptr, positions, side="right") - 1
        at = positions - self.indptr[terms] + self.start[terms]
        own = self.sub_ptr[terms + 1] > self.sub_ptr[terms]
        codes = np.empty(len(positions), dtype=np.int64)
        codes[own] = self.subtable[self.sub_ptr[terms[own]] + self.narrow[at[own]]]
        codes[~own] = self.wide[at[~own]]
        return self.table[codes] * self.idf[terms]

    def __len__(self) -> int:
        return int(self.indptr[-1])

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each term's largest and smallest impact (0 for a term without postings), equal to the impacts themselves."""
        starts = self.indptr[:-1]
        nonempty = starts < self.indptr[1:]
        high, low = np.zeros(len(starts)), np.zeros(len(starts))
        if not nonempty.any():
            return high, low
        if self.wide is None:
            at = starts[nonempty]
            high[nonempty] = np.maximum.reduceat(self.table, at)
            low[nonempty] = np.minimum.reduceat(self.table, at)
            return high, low
        most, least = np.zeros(len(starts), dtype=np.int64), np.zeros(len(starts), dtype=np.int64)
        own = self.sub_ptr[1:] > self.sub_ptr[:-1]
        most[own] = self.subtable[self.sub_ptr[1:][own] - 1]     # a term's own list is sorted
        least[own] = self.subtable[self.sub_ptr[:-1][own]]
        wide = nonempty & ~own
        if wide.any():
            at = self.start[wide]       # wide terms' codes lie one after another, in term order
            most[wide] = np.maximum.reduceat(self.wide, at)
            least[wide] = np.minimum.reduceat(self.wide, at)
        idf = self.idf[nonempty]
        most_impact, least_impact = self.table[most[nonempty]] * idf, self.table[least[nonempty]] * idf
        negative = idf < 0          # Okapi's floored idf can be: the largest factor then gives the least
        high[nonempty] = np.where(negative, least_impact, most_impact)
        low[nonempty] = np.where(negative, most_impact, least_impact)
        return high, low

    @property
    def nbytes(self) -> int:
        if self.wide is None:
            return self.table.nbytes
        return sum(a.nbytes for a in (self.table, self.wide, self.narrow, self.start, self.sub_ptr, self.subtable))


class TermSequence:
    """The forward index, every document's term ids in reading order, 2 bytes a token.

    Term ids are numbered by frequency when the index is built, so only the rarest terms have an id of
    65,535 or more: such an occurrence stores 65,535 and its id aside (rare_at, rare_ids). It is read a
    document at a time, by slices; an index stored before this keeps its int32 ids as `codes`.
    """

    ESCAPE = 0xFFFF

    def __init__(self, codes: np.ndarray, rare_at: np.ndarray | None = None, rare_ids: np.ndarray | None = None) -> None:
        self.codes = codes
        self.rare_at = np.zeros(0, dtype=np.int64) if rare_at is None else rare_at
        self.rare_ids = np.zeros(0, dtype=np.int32) if rare_ids is None else rare_ids

    @classmethod
    def encode(cls, ids: np.ndarray) -> "TermSequence":
        rare_at = np.flatnonzero(ids >= cls.ESCAPE)
        codes = ids.astype(np.uint16)
        codes[rare_at] = cls.ESCAPE
        return cls(codes, rare_at, ids[rare_at].astype(np.int32))

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("TermSequence is read by slices, a document at a time")
        out = self.codes[key]
        if not len(self.rare_at):
            return out
        start, stop, _ = key.indices(len(self.codes))
        lo, hi = np.searchsorted(self.rare_at, (start, stop))
        if lo == hi:
            return out
        out = out.astype(np.int32)
        out[self.rare_at[lo:hi] - start] = self.rare_ids[lo:hi]
        return out

    def gather(self, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The ids of the slices [start, start + length), one after the other, read at once (int64): a few
        dozen documents sliced one by one cost more in Python calls than the reading itself."""
        positions = ranges(np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
        out = self.codes.take(positions).astype(np.int64)
        if len(self.rare_at):
            rare = np.flatnonzero(out == self.ESCAPE)
            if len(rare):
                out[rare] = self.rare_ids[np.searchsorted(self.rare_at, positions[rare])]
        return out

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.rare_at.nbytes + self.rare_ids.nbytes


class BM25Index:
    """Postings in CSC layout: term t's documents are doc_ids[indptr[t]:indptr[t+1]], their impacts impacts.term(t, w).

    Beside the postings it keeps the forward index, every document's term ids in reading order
    (doc i is sequence[doc_starts[i]:doc_starts[i+1]]): it is what proximity re-ranking reads, and
    a document's length is the length of its slice.
    """

    def __init__(self, params: BM25Params, vocabulary: list[str], indptr: np.ndarray, doc_ids: np.ndarray,
                 impacts: Impacts, sequence: TermSequence, doc_starts: np.ndarray, avgdl: float | None = None) -> None:
        self.params = params
        self.vocabulary = vocabulary
        self.term_ids = {term: i for i, term in enumerate(vocabulary)}
        self.indptr = indptr
        self.doc_ids = doc_ids
        self.impacts = impacts
        self.sequence = sequence
        self.doc_starts = doc_starts
        self.num_docs = len(doc_starts) - 1
        self.idf = impacts.idf
        self.constants = self.idf * params.delta if params.method == "plus" else np.zeros(len(self.idf))
        self.max_impacts, least = impacts.extremes()
        # MaxScore's "a new candidate has acc == 0" needs every impact positive (BM25+ and BM25L always
        # are; Okapi's floored idf may not be): known once here, not rescanned per query.
        self.all_positive = bool(len(least) == 0 or least[np.diff(indptr) > 0].min(initial=1.0) > 0.0)
        # A segment's lengths are normalised by the average of the index it extends (index/segments.py).
        self.own_avgdl = avgdl is None
        self.avgdl = avgdl if avgdl is not None else (float(doc_starts[-1]) / self.num_docs if self.num_docs else 0.0)
        # One zeroed score per document for each thread that searches: allocating (and faulting in) 8 MB
        # per query cost more at a million documents than the query itself. A query leaves it zeroed.
        self._scratch = threading.local()

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], params: BM25Params | None = None, *,
              vocabulary: Sequence[str] = (), avgdl: float | None = None, **kwargs: float | str) -> "BM25Index":
        """Index documents given as lists of analysed tokens; document i is the i-th list.

        For a segment of another index (index/segments.py), avgdl is that index's average length, which
        normalises these lengths, and vocabulary its terms, which keep their numbers (new terms follow).
        """
        params = params or BM25Params(**kwargs)  # type: ignore[arg-type]
        vocab: dict[str, int] = {term: i for i, term in enumerate(vocabulary)}
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
        return cls._from_postings(params, list(vocab), postings, _ints(sequence), _ints(lengths), avgdl)

    @classmethod
    def _from_postings(cls, params: BM25Params, vocabulary: list[str], postings: list[np.ndarray],
                       sequence: np.ndarray, lengths: np.ndarray, avgdl: float | None = None) -> "BM25Index":
        """postings = [terms, docs, tfs] in document order; consumed (emptied) to keep the peak low.

        With avgdl given, the index is a segment of another: its terms keep their numbers."""
        terms, docs, tfs = postings
        postings.clear()
        num_docs = len(lengths)
        if avgdl is None:
            # Renumbered by frequency, the forward index fits all but the rarest terms in 2 bytes.
            by_frequency = np.argsort(-np.bincount(sequence, minlength=len(vocabulary)), kind="stable")
            renumber = np.empty(len(vocabulary), dtype=np.int32)
            renumber[by_frequency] = np.arange(len(vocabulary), dtype=np.int32)
            vocabulary = [vocabulary[i] for i in by_frequency.tolist()]
            sequence, terms = renumber[sequence], renumber[terms]
        forward = TermSequence.encode(sequence)
        # A stable sort by term keeps each postings list in document order.
        order = np.argsort(terms, kind="stable")
        df = np.bincount(terms, minlength=len(vocabulary)).astype(np.int64)
        del terms
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        doc_ids = docs[order]
        del docs
        tf = tfs[order]
        del tfs, order
        total = int(lengths.sum(dtype=np.int64))
        doc_starts = np.zeros(num_docs + 1, dtype=np.int32 if total < 2**31 else np.int64)
        np.cumsum(lengths, out=doc_starts[1:])
        extended = avgdl
        avgdl = avgdl if avgdl is not None else (total / num_docs if num_docs else 0.0)
        codes, table = _impact_codes(params, tf, lengths, doc_ids, avgdl)
        del tf
        impacts = Impacts.from_codes(indptr, _idf(params, df, num_docs), codes, table)
        return cls(params, vocabulary, indptr, doc_ids, impacts, forward, doc_starts, avgdl=extended)

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
            acc[self.doc_ids[self.indptr[t]:self.indptr[t + 1]]] += self.impacts.term(t, w)
            acc += w * self.constants[t]
        return acc

    def top_k(self, tokens: Sequence[str] | dict[int, float], k: int) -> list[ScoredDoc]:
        """The k best documents that match at least one term: score desc, then document number."""
        docs, scores = self.top_k_arrays(tokens, k)
        return [ScoredDoc(d, s) for d, s in zip(docs.tolist(), scores.tolist())]

    def top_k_arrays(self, tokens: Sequence[str] | dict[int, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        """top_k as two arrays, documents and scores: the search path makes no object per document."""
        weights = tokens if isinstance(tokens, dict) else self.query_weights(tokens)
        if not weights or k <= 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        if not self.all_positive:
            return self._top_k_exhaustive(weights, k)
        # Highest possible contribution first: rare terms find the candidates, common terms refine them.
        order = sorted(weights, key=lambda t: -weights[t] * self.max_impacts[t])
        left = _from_each_on([weights[t] * float(self.max_impacts[t]) for t in order])   # what terms i.. can add
        # Keeping the k best current is worth it only while the postings still to read are many.
        unread = _from_each_on([int(self.indptr[t + 1] - self.indptr[t]) for t in order])
        acc = self._accumulator()
        found: list[np.ndarray] = []          # every candidate once: the slots of acc to zero again
        count = 0
        best: np.ndarray | None = None        # the k best candidates, kept once the rest could fall behind
        best_scores = np.zeros(0)
        kth = 0.0                             # the k-th best score so far: no final top-k score is lower
        i = 0
        while i < len(order) and not (best is not None and left[i] < kth * _MARGIN):
            t = order[i]
            docs = self._postings(t)
            after = self.impacts.term(t, weights[t])
            if i == 0:
                acc[docs] = after          # acc is all zero: every document is new
                new = docs
            else:
                before = acc.take(docs)
                after += before
                fresh = before == 0.0
                if best is not None and left[i + 1] < kth:
                    # A document first seen now scores at most this term's impact plus the terms after it: one
                    # that cannot reach the k-th best is not a candidate, and stays out for the later terms too.
                    keep = after >= kth * _MARGIN - left[i + 1]
                    keep |= ~fresh
                    where = keep.nonzero()[0]
                    docs, after, fresh = docs.take(where), after.take(where), fresh.take(where)
                acc[docs] = after
                new = docs.take(fresh.nonzero()[0])
            if len(new):
                found.append(new)
                count += len(new)
            i += 1
            # A score is at most the bounds of the terms seen so far: below left[i], nothing can stop yet.
            if count >= k and left[i] < left[0] - left[i] and unread[i] >= _WORTH_PRUNING:
                if best is None:
                    best = np.concatenate(found)
                    best_scores = acc.take(best)
                else:
                    best, best_scores = _raised(best, best_scores, docs, after, kth)
                top = _largest(best_scores, k)
                best, best_scores = best.take(top), best_scores.take(top)
                kth = float(best_scores.min())
        candidates = np.concatenate(found) if found else np.zeros(0, dtype=np.intp)
        if i < len(order):
            candidates = self._refine(acc, weights, order[i:], left[i:], candidates, kth, k)
        scores = acc.take(candidates)
        for docs in found:
            acc[docs] = 0.0
        self._scratch.acc = acc
        top = _largest(scores, k)
        candidates, scores = candidates.take(top), scores.take(top)
        # Ties at the k-th score are settled by document number, among every document that has it.
        ranked = np.lexsort((candidates, -scores))[:k]
        constant = sum(w * float(self.constants[t]) for t, w in weights.items())
        return candidates.take(ranked), scores.take(ranked) + constant

    def _postings(self, t: int) -> np.ndarray:
        """Term t's documents as native indices: numpy scatters through int32 indices at half the speed."""
        return self.doc_ids[self.indptr[t]:self.indptr[t + 1]].astype(np.intp)

    def _accumulator(self) -> np.ndarray:
        """This thread's zeroed scores; taken away while in use, so a query that fails leaves no dirty buffer."""
        acc = getattr(self._scratch, "acc", None)
        self._scratch.acc = None
        return np.zeros(self.num_docs, dtype=np.float64) if acc is None else acc

    def _refine(self, acc: np.ndarray, weights: dict[int, float], order: list[int], left: list[float],
                candidates: np.ndarray, kth: float, k: int) -> np.ndarray:
        """Terms that cannot bring in a new document: add them to the candidates that can still reach the top k.

        Every candidate has a positive acc and every other document 0: a long postings list is read against
        acc in one pass, a short list of survivors is looked up in the postings instead.
        """
        # Each step drops the candidates that the terms still to add (left[i + 1]) cannot lift to the k-th best.
        for i, t in enumerate(order):
            lo, hi = self.indptr[t], self.indptr[t + 1]
            if len(candidates) > _LOOKUP_BELOW * (hi - lo):
                docs = self._postings(t)
                before = acc.take(docs)
                hit = before.nonzero()[0]        # acc > 0; candidates dropped earlier too: harmless
                docs, before = docs.take(hit), before.take(hit)
            else:
                postings = self.doc_ids[lo:hi]
                wanted = candidates.astype(postings.dtype)     # else searchsorted widens the whole list
                pos = postings.searchsorted(wanted)
                pos[pos == len(postings)] = 0
                hit = pos.take((postings.take(pos) == wanted).nonzero()[0])
                docs = postings.take(hit).astype(np.intp)
                before = acc.take(docs)
            acc[docs] = before + self.impacts.of_term_at(t, lo + hit, weights[t])
            scores = acc.take(candidates)
            keep = (scores >= kth * _MARGIN - left[i + 1]).nonzero()[0]
            candidates = candidates.take(keep)
            if len(candidates) > k:     # the k best are among those kept
                kth = max(kth, _kth_at_least(scores.take(keep), k, kth))
        return candidates

    def _top_k_exhaustive(self, weights: dict[int, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        sparse = self.scores(weights) - sum(w * float(self.constants[t]) for t, w in weights.items())
        matched = np.unique(np.concatenate([self.doc_ids[self.indptr[t]:self.indptr[t + 1]] for t in weights]))
        scores = sparse[matched]
        ranked = np.lexsort((matched, -scores))[:k]
        constant = sum(w * float(self.constants[t]) for t, w in weights.items())
        return matched.take(ranked), scores.take(ranked) + constant

    def term_weight(self, term: str) -> float:
        """The largest score one occurrence of a term can add: 0 for an unknown term."""
        t = self.term_ids.get(term)
        return 0.0 if t is None else float(self.max_impacts[t]) + float(self.constants[t])

    def document_frequency(self, term: str) -> int:
        t = self.term_ids.get(term)
        return 0 if t is None else int(self.indptr[t + 1] - self.indptr[t])

    def postings(self, t: int) -> np.ndarray:
        """Term t's documents, in order."""
        return self.doc_ids[self.indptr[t]:self.indptr[t + 1]]

    live_postings = postings     # every document of a whole index is live (a segmented one has deleted ones)

    # -- persistence ----------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, bytes | memoryview]:
        """The bytes to store, the big arrays as views of their own memory: a copy of 100+ MB would hold the
        GIL (and stall the bot's event loop) for as long. from_arrays reads them back without copying.

        The narrow arrays get names of their own, their dtypes in meta: an older reader fails on a missing
        name instead of misreading bytes. An index read from a store of float64 impacts is written back as it
        was read; one read with 2-byte codes for every posting is written under today's names, every term wide.
        """
        impacts, sequence = self.impacts, self.sequence
        meta: dict[str, Any] = {"params": self.params.__dict__}
        if impacts.wide is None:
            return {"meta": json.dumps(meta).encode(), "vocabulary": lines_blob(self.vocabulary),
                    **{name: _raw(a) for name, a in (("indptr", self.indptr), ("doc_ids", self.doc_ids),
                                                      ("impacts", impacts.table), ("constants", self.constants),
                                                      ("sequence", sequence.codes), ("doc_starts", self.doc_starts))}}
        arrays = {"indptr": self.indptr, "doc_ids": self.doc_ids, "impact_table": impacts.table,
                  "impact_wide": impacts.wide, "impact_narrow": impacts.narrow, "impact_start": impacts.start,
                  "impact_sub_ptr": impacts.sub_ptr, "impact_subtable": impacts.subtable, "term_codes": sequence.codes,
                  "rare_term_at": sequence.rare_at, "rare_term_ids": sequence.rare_ids, "doc_offsets": self.doc_starts}
        meta["dtypes"] = {name: a.dtype.str for name, a in arrays.items()}
        if not self.own_avgdl:
            meta["avgdl"] = self.avgdl
        return {"meta": json.dumps(meta).encode(), "vocabulary": lines_blob(self.vocabulary),
                **{name: _raw(a) for name, a in arrays.items()}}

    @classmethod
    def from_arrays(cls, blobs: dict[str, bytes], vocabulary: list[str] | None = None) -> "BM25Index":
        """An index as to_arrays stores it, or as stored with 2-byte impact codes for every posting, or before
        impacts had codes (float64 per posting). vocabulary, when given, replaces the stored one (a segment's
        terms are numbered after its base's, index/segments.py)."""
        meta = json.loads(blobs["meta"])
        params = BM25Params(**meta["params"])
        if vocabulary is None:
            vocabulary = blob_lines(blobs["vocabulary"])
        if "dtypes" not in meta:
            indptr = np.frombuffer(blobs["indptr"], dtype=np.int64)
            doc_starts = np.frombuffer(blobs["doc_starts"], dtype=np.int64)
            idf = _idf(params, np.diff(indptr), len(doc_starts) - 1)
            return cls(params, vocabulary, indptr, np.frombuffer(blobs["doc_ids"], dtype=np.int32),
                       Impacts(indptr, idf, np.frombuffer(blobs["impacts"], dtype=np.float64)),
                       TermSequence(np.frombuffer(blobs["sequence"], dtype=np.int32)), doc_starts)
        a = {name: np.frombuffer(blobs[name], dtype=np.dtype(dtype)) for name, dtype in meta["dtypes"].items()}
        idf = _idf(params, np.diff(a["indptr"]), len(a["doc_offsets"]) - 1)
        if "impact_codes" in a:
            impacts = Impacts(a["indptr"], idf, a["impact_table"], a["impact_codes"])
        else:
            impacts = Impacts(a["indptr"], idf, a["impact_table"], a["impact_wide"], a["impact_narrow"],
                              a["impact_start"], a["impact_sub_ptr"], a["impact_subtable"])
        return cls(params, vocabulary, a["indptr"], a["doc_ids"], impacts,
                   TermSequence(a["term_codes"], a["rare_term_at"], a["rare_term_ids"]), a["doc_offsets"],
                   avgdl=meta.get("avgdl"))

    @property
    def nbytes(self) -> int:
        return (self.impacts.nbytes + self.sequence.nbytes
                + sum(a.nbytes for a in (self.indptr, self.doc_ids, self.doc_starts, self.max_impacts, self.idf,
                                         self.constants)))


def _raw(values: np.ndarray) -> memoryview:
    return np.ascontiguousarray(values).data.cast("B")


def blob_lines(blob: bytes) -> list[str]:
    """lines_blob read back."""
    return blob.decode().split("\n") if blob else []


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions start .. start + length - 1 of every (start, length), concatenated (int64)."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


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


def _impact_codes(params: BM25Params, tf: np.ndarray, lengths: np.ndarray, doc_ids: np.ndarray,
                  avgdl: float) -> tuple[np.ndarray, np.ndarray]:
    """Each posting's code into a sorted table of the factors its (tf, length) pairs take: idf x factor is
    the posting's impact, with score = constant + impact (0 when absent).

    The factors are computed with the same float64 operations, in the same order, as rank-bm25's formula
    was computed per posting before codes: the impacts, and so the scores, are the same to the last bit.
    """
    lengths_seen, length_code = np.unique(lengths, return_inverse=True)
    tf_seen = np.bincount(tf) > 0
    tf_code = np.cumsum(tf_seen) - 1
    keys = tf_code[tf].astype(np.int64)
    keys *= len(lengths_seen)
    keys += length_code[doc_ids]
    space = int(tf_seen.sum()) * len(lengths_seen)
    if space <= _DENSE_PAIRS:
        present = np.zeros(space, dtype=bool)
        present[keys] = True
        pairs = np.flatnonzero(present)
    else:
        pairs, keys = np.unique(keys, return_inverse=True)
    tf_values = np.flatnonzero(tf_seen)[pairs // len(lengths_seen)].astype(np.float64)
    factor = _factor(params, tf_values, lengths_seen[pairs % len(lengths_seen)], avgdl)
    by_value = np.argsort(factor, kind="stable")
    code_of_pair = np.empty(len(pairs), dtype=np.uint16 if len(pairs) <= 1 << 16 else np.uint32)
    code_of_pair[by_value] = np.arange(len(pairs))
    if space <= _DENSE_PAIRS:
        code_of_key = np.zeros(space, dtype=code_of_pair.dtype)
        code_of_key[pairs] = code_of_pair
        return code_of_key[keys], factor[by_value]
    return code_of_pair[keys], factor[by_value]


# (tf, length) pairs are found with a bitmap over all combinations when it is this small, else by sorting.
_DENSE_PAIRS = 1 << 25


def _narrowed(codes: np.ndarray, indptr: np.ndarray, table_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(wide, narrow, start, sub_ptr, subtable) of Impacts from one table code per posting.

    A term is narrowed when it uses at most 256 codes and its list of them (2 bytes each) costs less than the
    byte it saves per posting. The codes each term uses, and each posting's place among them, come from a
    bitmap over (term, code) pairs, a block of terms at a time: linear in the postings, no sort.
    """
    df = np.diff(indptr)
    if not len(codes):          # no postings at all (a segment holding only deletions)
        return (np.zeros(0, dtype=np.uint16), np.zeros(0, dtype=np.uint8), np.zeros(len(df), dtype=np.int32),
                np.zeros(len(indptr), dtype=np.int32), np.zeros(0, dtype=np.uint16))
    own, used = np.zeros(len(df), dtype=bool), np.zeros(len(df), dtype=np.int64)
    if codes.dtype != np.uint16:        # a table beyond 65,536 factors: every term keeps its table codes
        return codes, np.zeros(0, dtype=np.uint8), indptr[:-1], np.zeros(len(indptr), dtype=np.int64), np.zeros(0, dtype=codes.dtype)
    narrow, wide, subtable = [], [], []
    first = 0
    while first < len(df):
        last = int(np.searchsorted(indptr, indptr[first] + _NARROWING_POSTINGS, side="right")) - 1
        last = min(len(df), first + max(1, _NARROWING_PAIRS // table_size), max(first + 1, last))
        block = codes[indptr[first]:indptr[last]]
        term = np.repeat(np.arange(last - first, dtype=np.int32), df[first:last])   # keys fit: pairs are few
        key = term * table_size
        key += block
        present = np.zeros((last - first) * table_size, dtype=bool)
        present[key] = True
        pairs = np.flatnonzero(present)             # (term, code) pairs in order: each term's codes sorted
        del present
        pair_terms = pairs // table_size
        count = np.bincount(pair_terms, minlength=last - first)
        is_own = (count <= 256) & (2 * count < df[first:last])
        # Each pair's place among its term's codes; wrong past 255, but only narrowed terms' places are read.
        place = np.zeros((last - first) * table_size, dtype=np.uint8)
        place[pairs] = np.arange(len(pairs)) - (np.cumsum(count) - count)[pair_terms]
        in_own = is_own[term]
        narrow.append(place.take(key[in_own]))
        wide.append(block[~in_own])
        subtable.append((pairs[is_own[pair_terms]] % table_size).astype(np.uint16))
        own[first:last], used[first:last] = is_own, count
        first = last
    narrow_df = np.where(own, df, 0)
    wide_df = df - narrow_df
    offset = np.int32 if len(codes) < 2**31 else np.int64      # both offsets are at most the postings
    start = np.where(own, np.cumsum(narrow_df) - narrow_df, np.cumsum(wide_df) - wide_df).astype(offset)
    sub_ptr = np.zeros(len(indptr), dtype=offset)
    np.cumsum(np.where(own, used, 0), out=sub_ptr[1:])
    return (np.concatenate(wide) if wide else np.zeros(0, dtype=np.uint16),
            np.concatenate(narrow) if narrow else np.zeros(0, dtype=np.uint8), start, sub_ptr,
            np.concatenate(subtable) if subtable else np.zeros(0, dtype=np.uint16))


# Narrowing takes a block of terms at a time, which bounds its temporary arrays: at most this many postings
# (or one term's) and this many (term, code) pairs (or one term's) in its bitmap.
_NARROWING_POSTINGS = 1 << 22
_NARROWING_PAIRS = 1 << 23


def _factor(params: BM25Params, tf: np.ndarray, lengths: np.ndarray, avgdl: float) -> np.ndarray:
    """BM25's per-posting factor of the term frequency and the document length; idf x factor is the impact."""
    k1 = params.k1
    relative_length = lengths / avgdl if avgdl else np.ones(len(lengths))
    norm = k1 * (1 - params.b + params.b * relative_length)     # k1 * (1 - b + b * dl / avgdl)
    if params.method == "l":
        # As rank-bm25 writes BM25L: ctd = tf / (1 - b + b * dl / avgdl), and the whole term is
        # multiplied by tf once more, so a document without the term gets nothing.
        ctd = tf * k1
        ctd /= norm
        ctd += params.delta                    # ctd + delta
        tf = tf * (k1 + 1)
        tf *= ctd
        ctd += k1                              # k1 + ctd + delta
        tf /= ctd
        return tf
    # Okapi and BM25+ share tf (k1 + 1) / (tf + norm); BM25+ adds idf * delta to every document.
    norm += tf
    tf = tf * (k1 + 1)
    tf /= norm
    return tf


def _from_each_on(values: list) -> list:
    """values[i] + values[i + 1] + ... for every i, then 0: what the items from i on add up to."""
    return list(accumulate(reversed(values)))[::-1] + [0]


def _raised(best: np.ndarray, scores: np.ndarray, docs: np.ndarray, after: np.ndarray,
            kth: float) -> tuple[np.ndarray, np.ndarray]:
    """The k best documents before a term was added, and the ones it raised above the k-th score: the k best
    now are among them. A best document the term raised is in both; it is kept once, with its new score."""
    raised = (after > kth).nonzero()[0]
    if len(docs):
        pos = np.minimum(docs.searchsorted(best), len(docs) - 1)
        stay = (docs.take(pos) != best).nonzero()[0]
        best, scores = best.take(stay), scores.take(stay)
    return np.concatenate((best, docs.take(raised))), np.concatenate((scores, after.take(raised)))


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """Where the k largest values are, and every value equal to the k-th: ties are settled by the caller."""
    if len(values) <= k:
        return np.arange(len(values))
    kth = _kth_largest(values, k)
    return (values >= kth).nonzero()[0]


def _kth_largest(values: np.ndarray, k: int) -> float:
    if len(values) <= k:
        return float(values.min())
    if len(values) > 64 * k:
        # The k-th largest of a sample is no more than the k-th largest of all: partitioning only the values
        # above it is much cheaper than partitioning all of them.
        return _kth_at_least(values, k, _kth_largest(values[::32], k))
    return _kth_of(values, k)


def _kth_at_least(values: np.ndarray, k: int, floor: float) -> float:
    """The k-th largest value, given that at least k values are >= floor."""
    above = values.take((values >= floor).nonzero()[0])
    if len(above) <= k:
        return float(above.min()) if len(above) == k else floor
    return _kth_of(above, k)


def _kth_of(values: np.ndarray, k: int) -> float:
    part = values.copy()
    part.partition(len(part) - k)
    return float(part[len(part) - k])
