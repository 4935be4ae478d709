"""A question to ranked passages: analysis, expansion with aliases and place names, BM25, abstention.

Pure CPU over an in-memory index; no I/O, so it runs in a worker thread and in tests alike.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index, BM25Params, _idf
from .errors import QueryError
from .memory import release_gradually
from .proximity import adjacency_bonus

if TYPE_CHECKING:
    from .segments import SegmentedArticles, SegmentedIndex

__all__ = ("Searcher", "SearchResult", "Hit", "Expansion", "SearchSettings", "ExpansionGroup", "expansion_table",
           "ArticleEvidence", "ARTICLE_PARAMS")

_log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
ARTICLE_PARAMS = BM25Params(method="plus", k1=1.2, b=0.75)     # whole articles: rank-bm25's defaults, as the
                                                                # whole-article reference on RealTime QA used


@dataclass(frozen=True)
class SearchSettings:
    """Weights and thresholds, set by measurement with `newsdesk eval` (README, "Answer quality")."""

    alias_weight: float = 0.6      # an acronym's long form (or the reverse), shared by its words
    place_weight: float = 0.4      # Egypt <-> Egyptian <-> Egyptians, shared by its words
    min_coverage: float = 0.4      # share of the question's idf mass a one-word match must carry
    proximity_weight: float = 0.3  # adjacent query terms (index/proximity.py)
    rerank_depth: int = 60         # how many BM25 candidates article evidence and proximity re-order
    context_weight: float = 0.3    # a follow-up's earlier question; 0.5 gave back the first answer unchanged
    article_weight: float = 1.0    # the article's BM25 score, added to each candidate passage's (ArticleEvidence)
    article_decay: float = 0.5     # an article's n-th candidate passage takes decay**(n-1) of its article's score...
    article_tie: float = 0.95      # ...only when the second-best article scores at least this share of the best:
                                   # SQuAD's questions name one article clearly, and its neighbouring passages stay
                                   # (0.9: RealTime QA hit@10 +1.4 points, SQuAD hit@5 -0.3)


class ArticleEvidence:
    """Each passage's article, and a BM25 index over whole articles on the passage index's term numbers.

    News readers expect "the article about this" to win: a paragraph that answers a question often repeats
    only part of it, while its article as a whole names the rest. An article's document is its passages'
    own words and its title once (not the title and heading each passage is indexed with). Its postings
    are numbered like the passage index's terms, so a question is looked up once, and only the candidates'
    articles are scored (a binary search per question term).
    """

    # The arrays as stored (index/compiled.py) and sent to a search cluster (index/remote.py), with their dtypes.
    ARRAYS = {"article_of": "<i4", "indptr": "<i8", "articles": "<i4", "tfs": "<u2", "lengths": "<i4"}

    def __init__(self, article_of: np.ndarray, indptr: np.ndarray, articles: np.ndarray, tfs: np.ndarray,
                 lengths: np.ndarray, params: BM25Params = ARTICLE_PARAMS, sources: Sequence[str] = (),
                 avgdl: float | None = None) -> None:
        if params.method != "plus":
            raise ValueError("Article evidence scores with BM25+ only.")
        self.article_of = article_of        # passage number -> article number
        self.sources = sources              # article number -> its source (a search cluster numbers by these)
        self.indptr = indptr                # term t's articles are articles[indptr[t]:indptr[t+1]], in order
        self.articles = articles
        self.tfs = tfs                      # ...and how often t occurs in each
        self.lengths = lengths              # words per article
        self.params = params
        self.idf = _idf(params, np.diff(indptr), len(lengths))
        # A segment's articles are normalised by the average length of the index it extends (index/segments.py).
        self.own_avgdl = avgdl is None
        self.avgdl = avgdl if avgdl is not None else (float(lengths.mean()) if len(lengths) else 0.0)

    @classmethod
    def build(cls, index: BM25Index, article_of: np.ndarray, own_lengths: np.ndarray,
              titles: Sequence[np.ndarray], params: BM25Params = ARTICLE_PARAMS,
              sources: Sequence[str] = ()) -> "ArticleEvidence":
        """From the passage index: passage i's first own_lengths[i] words are its own (the rest is the context it
        is indexed with); titles[a] is article a's title as term numbers."""
        own = index.sequence.gather(index.doc_starts[:-1], own_lengths)
        title_lengths = np.array([len(t) for t in titles], dtype=np.int64)
        words = np.concatenate([own] + [np.asarray(t, dtype=np.int64) for t in titles])
        del own
        owners = np.concatenate([np.repeat(article_of, own_lengths), np.repeat(np.arange(len(titles), dtype=np.int32), title_lengths)])
        evidence = cls.of_words(words, owners, len(titles), len(index.vocabulary), params, sources)
        evidence.article_of = article_of
        return evidence

    @classmethod
    def of_words(cls, words: np.ndarray, owners: np.ndarray, count: int, vocabulary_size: int,
                 params: BM25Params = ARTICLE_PARAMS, sources: Sequence[str] = (),
                 avgdl: float | None = None) -> "ArticleEvidence":
        """From every word of every article: words[i] (a term number, int64; consumed) belongs to article owners[i]."""
        per = max(count, 1)
        # One int64 key per word, term * articles + article, sorted in place: every other array is freed or
        # narrower, which keeps the peak near 16 bytes a word (at 930k passages, 26M words).
        lengths = np.bincount(owners, minlength=count).astype(np.int32)
        keys = words
        keys *= per
        keys += owners
        del owners
        keys.sort()
        firsts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if keys.size else np.zeros(0, np.int64)
        tfs = np.diff(np.append(firsts, keys.size))
        keys = keys[firsts]
        term_of = keys // per
        indptr = np.zeros(vocabulary_size + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=vocabulary_size), out=indptr[1:])
        return cls(np.zeros(0, dtype=np.int32), indptr, (keys % per).astype(np.int32),
                   np.minimum(tfs, np.iinfo(np.uint16).max).astype(np.uint16), lengths, params, sources, avgdl)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.article_of, self.indptr, self.articles, self.tfs, self.lengths, self.idf))

    def scores(self, named: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """BM25+ scores of these distinct article numbers, ascending, for a query of passage-index term numbers
        (rank-bm25's BM25Plus over the articles, counting only terms some article contains)."""
        constant = sum(w * float(self.idf[t]) * self.params.delta for t, w in weights.items() if self._holds(t))
        return self.impacts(named, weights) + constant

    def impacts(self, named: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """The scores less BM25+'s constant part: what each named article's own words add."""
        p = self.params
        out = np.zeros(len(named))
        norm = p.k1 * (1 - p.b + p.b * self.lengths[named] / (self.avgdl or 1.0))
        for t, w in weights.items():
            if not self._holds(t):
                continue
            lo, hi = self.indptr[t], self.indptr[t + 1]
            postings = self.articles[lo:hi]
            pos = np.minimum(np.searchsorted(postings, named), len(postings) - 1)
            hit = np.flatnonzero(postings[pos] == named)
            tf = self.tfs[lo + pos[hit]].astype(np.float64)
            out[hit] += w * self.idf[t] * (tf * (p.k1 + 1) / (tf + norm[hit]))
        return out

    def _holds(self, t: int) -> bool:
        """Whether some article holds term t (a later segment's new terms are past this index's numbers)."""
        return t + 1 < len(self.indptr) and self.indptr[t] != self.indptr[t + 1]


@dataclass(frozen=True)
class Expansion:
    """Terms searched besides the question's own, and why: shown to the user as "also searched"."""

    label: str                     # the surface form, e.g. "Petroleum Facilities Guards"
    terms: tuple[str, ...]
    because_of: tuple[str, ...]    # the question's terms that triggered it


@dataclass(frozen=True)
class Hit:
    doc: int
    passage_id: str
    score: float
    matched: frozenset[str]        # analysed terms (question or expansion) the passage contains


@dataclass
class SearchResult:
    question: str
    terms: tuple[str, ...]                     # the question's analysed terms
    expansions: list[Expansion]
    hits: list[Hit]
    total_matches: int = 0                     # how many passages matched at all (capped at the depth searched)
    abstained: str | None = None               # why no answer is given, when none is
    highlight_terms: frozenset[str] = field(default_factory=frozenset)
    partial_shards: tuple[int, ...] = ()       # search cluster shards that did not answer (index/remote.py)

    @property
    def expanded_terms(self) -> list[str]:
        return [e.label for e in self.expansions]


ExpansionGroup = tuple[str, list[tuple[str, tuple[str, ...]]]]
"""("alias" or "place", [(surface form, its analysed terms), ...]): forms that name the same thing."""


def expansion_table(analyzer: Analyzer, aliases: Sequence[Sequence[str]],
                    places: Sequence[Sequence[str]]) -> list[ExpansionGroup]:
    """Every alias pair and place row, analysed, keeping rows with two or more distinct forms.

    It is made when the index is compiled and stored with it: analysing some 800 forms (Snowball on each)
    would otherwise be paid at every start-up.
    """
    groups = []
    for kind, rows in (("alias", aliases), ("place", places)):
        for row in rows:
            forms = [(form, tuple(analyzer.tokenize(form))) for form in row]
            forms = [(form, terms) for form, terms in forms if terms]
            if len({terms for _, terms in forms}) > 1:
                groups.append((kind, forms))
    return groups


class Searcher:
    """Holds one compiled index and answers questions against it."""

    def __init__(self, index: "BM25Index | SegmentedIndex", passage_ids: Sequence[str], analyzer: Analyzer,
                 splitter: SentenceSplitter, expansions: Sequence[ExpansionGroup] = (),
                 places: Sequence[Sequence[str]] = (), settings: SearchSettings | None = None,
                 articles: "ArticleEvidence | SegmentedArticles | None" = None) -> None:
        self.index = index
        self.articles = articles
        self.base_token: str | None = None      # the whole compile this searcher's arrays come from (compiled.py)
        self.passage_ids = list(passage_ids)
        self.analyzer = analyzer
        self.splitter = splitter
        self.settings = settings or SearchSettings()
        self.places = [list(row) for row in places]
        # Only groups with a form this index can match: the rest could never add a term.
        self._groups = [(kind, [(form, tuple(terms)) for form, terms in forms]) for kind, forms in expansions
                        if any(self._known(terms) for _, terms in forms)]
        self._groups_of_term: dict[str, list[int]] = {}
        for g, (_kind, forms) in enumerate(self._groups):
            for _form, terms in forms:
                for t in terms:
                    self._groups_of_term.setdefault(t, []).append(g)
        self._co_occurs: dict[tuple[str, ...], bool] = {}

    def release(self, keep: "Searcher | None" = None) -> None:
        """Empty the big Python structures a slice at a time (in a worker thread), once no search uses this
        searcher any more: freed whole they would hold the GIL for as long as they take to free.

        keep: the searcher that replaced this one; what they share (a whole compile under a delta) stays."""
        shared = {id(part) for part in keep._big_parts()} if keep is not None else set()
        release_gradually(self.passage_ids, self.__dict__.pop("doc_of", {}), self._groups_of_term,
                          *(part for part in self._big_parts() if id(part) not in shared))

    def _big_parts(self) -> list:
        """The large lists and dicts of this searcher's index and article evidence, per segment."""
        from .segments import SegmentedArticles, SegmentedIndex      # it imports this module

        indexes = [self.index.base, self.index.delta] if isinstance(self.index, SegmentedIndex) else [self.index]
        parts: list = [part for index in indexes for part in (index.vocabulary, index.term_ids)]
        if self.articles is not None:
            parts.append(self.articles.sources)
            if isinstance(self.articles, SegmentedArticles):
                parts += [self.articles.base.sources, self.articles.delta.sources]
        return parts

    @cached_property
    def doc_of(self) -> dict[str, int]:
        """Passage ID -> document number; only a search within one article needs it, so it is built late."""
        return {pid: i for i, pid in enumerate(self.passage_ids)}

    def _known(self, terms: Sequence[str]) -> bool:
        return all(t in self.index.term_ids for t in terms)

    def search(self, question: str, k: int = 5, offset: int = 0, within: set[str] | None = None,
               context: str | None = None) -> SearchResult:
        """The best k passages after skipping offset, or an abstention with its reason.

        within restricts the search to a set of passage IDs (one article's, say). context is an earlier
        question a follow-up leans on ("and Russia?" after "which countries bombed the PFG?"): its words
        count at `context_weight`, so the follow-up's own words lead; coverage is judged on the follow-up.
        """
        question = question.strip()
        if not question:
            raise QueryError("The question is empty.", 'Ask something, for example: newsdesk ask "who leads the LNA?"')
        if len(question) > MAX_QUESTION_CHARS:
            raise QueryError(f"The question is too long ({len(question)} characters; the limit is {MAX_QUESTION_CHARS}).")
        terms = tuple(self.analyzer.tokenize(question))
        result = SearchResult(question, terms, [], [])
        if not terms:
            result.abstained = "The question has no searchable words (only very common ones)."
            return result
        weights, expansions = self._weights(terms)
        if context:
            for t, w in self._weights(tuple(self.analyzer.tokenize(context)))[0].items():
                weights[t] = max(weights.get(t, 0.0), w * self.settings.context_weight)
        result.expansions = expansions
        result.highlight_terms = frozenset(t for t in weights)
        if not any(t in self.index.term_ids for t in weights):
            result.abstained = "No passage contains any of the question's words."
            return result
        ranked = self._rank(weights, k + offset, within)
        result.total_matches = len(ranked)
        if not ranked:
            result.abstained = "No passage in that article contains the question's words."
            return result
        matched = self._matched_terms([doc for doc, _ in ranked], weights)
        coverage, satisfied = self._coverage(terms, expansions, matched[0])
        # One matched word carrying little of the question ("capital" in "the capital of Peru") is not an
        # answer; two or more matched words are, whatever the share (long questions match partly).
        if satisfied < 2 and coverage < self.settings.min_coverage:
            result.abstained = (f"The best passage matches only “{self._matched_words(question, matched[0])}”, "
                                f"{coverage:.0%} of what the question asks, so no quote is given rather than an unrelated one.")
            return result
        result.hits = [Hit(doc, self.passage_ids[doc], score, m)
                       for (doc, score), m in zip(ranked[offset:], matched[offset:])]
        return result

    def _weights(self, terms: tuple[str, ...]) -> tuple[dict[str, float], list[Expansion]]:
        weights: dict[str, float] = {}
        for t in terms:
            weights[t] = weights.get(t, 0.0) + 1.0
        present = set(terms)
        expansions = []
        candidates = sorted({g for t in present for g in self._groups_of_term.get(t, ())})
        for kind, forms in (self._groups[g] for g in candidates):
            trigger = next((f for f in forms if set(f[1]) <= present), None)
            if trigger is None:
                continue
            weight = self.settings.alias_weight if kind == "alias" else self.settings.place_weight
            for form, form_terms in forms:
                new = tuple(t for t in form_terms if t not in present and t in self.index.term_ids)
                if not new or set(form_terms) <= present or not self._occurs(form_terms):
                    continue
                # A form's weight is shared among its words, so a three-word long form does not
                # outweigh the one acronym the person typed.
                for t in new:
                    weights[t] = max(weights.get(t, 0.0), weight / len(form_terms))
                expansions.append(Expansion(form, new, trigger[1]))
        return weights, _dedupe(expansions)

    def _occurs(self, terms: tuple[str, ...]) -> bool:
        """Whether some passage holds all of a form's words: "Arab Republic of Egypt" would only add noise
        to a corpus that never writes it."""
        if len(terms) == 1:
            return terms[0] in self.index.term_ids
        if terms not in self._co_occurs:
            docs: np.ndarray | None = None
            for term in terms:
                t = self.index.term_ids.get(term)
                postings = self.index.live_postings(t) if t is not None else np.zeros(0, np.int32)
                docs = postings if docs is None else np.intersect1d(docs, postings, assume_unique=True)
            self._co_occurs[terms] = docs is not None and bool(len(docs))
        return self._co_occurs[terms]

    def _rank(self, weights: dict[str, float], depth: int, within: set[str] | None) -> list[tuple[int, float]]:
        ids = {self.index.term_ids[t]: w for t, w in weights.items() if t in self.index.term_ids}
        candidates = self._bm25(ids, max(depth, self.settings.rerank_depth), within)
        return self._reranked(ids, candidates, depth, self.index,
                              lambda docs: self.articles.article_of[docs].astype(np.int64))  # type: ignore[union-attr]

    def _reranked(self, ids: dict[int, float], candidates: list[tuple[int, float]], depth: int,
                  forward: "BM25Index | SegmentedIndex",
                  articles_of: Callable[[list[int]], np.ndarray]) -> list[tuple[int, float]]:
        """The first `depth` of the BM25 candidates, the first `rerank_depth` of them with their articles' evidence
        (articles_of(docs): each one's article number) and the proximity bonus read from `forward`.

        The rest follow in BM25 order. Both bonuses are never negative, so the list stays in score order, and
        a page past the re-ordered ones neither repeats nor skips a passage: re-ordering every candidate asked
        for made the order depend on how deep a page asked.
        """
        head, tail = candidates[:self.settings.rerank_depth], candidates[self.settings.rerank_depth:]
        if head and self.articles is not None and self.settings.article_weight:
            head = self._with_articles(ids, head, articles_of([doc for doc, _ in head]))
        if head and self.settings.proximity_weight:
            docs = np.array([doc for doc, _ in head], dtype=np.int64)
            scores = np.array([score for _, score in head]) + _proximity(forward, docs, ids) * self.settings.proximity_weight
            head = [(int(docs[i]), float(scores[i])) for i in np.lexsort((docs, -scores))]
        return (head + tail)[:depth]

    def _bm25(self, ids: dict[int, float], depth: int, within: set[str] | None) -> list[tuple[int, float]]:
        if within is None:
            docs, scores = self.index.top_k_arrays(ids, depth)
            return list(zip(docs.tolist(), scores.tolist()))
        docs = np.array(sorted(self.doc_of[p] for p in within if p in self.doc_of), dtype=np.int64)
        if not len(docs):
            return []
        scores = self.index.scores(ids)[docs]
        baseline = sum(w * float(self.index.constants[t]) for t, w in ids.items())
        keep = scores > baseline + 1e-12
        docs, scores = docs[keep], scores[keep]
        order = np.lexsort((docs, -scores))[:depth]
        return [(int(docs[i]), float(scores[i])) for i in order]

    def _with_articles(self, ids: dict[int, float], candidates: list[tuple[int, float]],
                       of: np.ndarray) -> list[tuple[int, float]]:
        """Each candidate's score plus article_weight times its article's BM25 score (of[i]: candidate i's
        article), re-ordered.

        When several articles match about as well (news: many stories on one topic), an article's n-th
        passage takes only decay**(n-1) of it, so the top of the list holds passages from more articles.
        """
        assert self.articles is not None
        docs = np.array([doc for doc, _ in candidates], dtype=np.int64)
        scores = np.array([score for _, score in candidates])
        named, where = np.unique(of, return_inverse=True)
        # -1: an article the evidence does not know (a search cluster's passage newer than its metadata)
        known = named >= 0
        named_scores = np.zeros(len(named))
        named_scores[known] = self.articles.scores(named[known], ids)
        article_scores = named_scores[where]
        best = np.sort(named_scores[known])[-2:]
        if self.settings.article_decay != 1.0 and len(best) > 1 and best[0] >= self.settings.article_tie * best[1]:
            by_article = np.lexsort((-scores, of))          # candidates grouped by article, best first
            grouped = of[by_article]
            starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
            place = np.arange(len(docs)) - np.repeat(starts, np.diff(np.append(starts, len(docs))))
            decay = np.empty(len(docs))
            decay[by_article] = self.settings.article_decay ** place
            article_scores = article_scores * decay
        scores = scores + self.settings.article_weight * article_scores
        order = np.lexsort((docs, -scores))
        return [(int(docs[i]), float(scores[i])) for i in order]

    def _matched_terms(self, docs: list[int], weights: dict[str, float]) -> list[frozenset[str]]:
        """For each document, the searched terms it contains (a binary search in each term's postings)."""
        wanted = np.asarray(docs, dtype=np.int32)
        found: list[set[str]] = [set() for _ in docs]
        for term in weights:
            t = self.index.term_ids.get(term)
            if t is None:
                continue
            postings = self.index.postings(t)
            pos = np.minimum(np.searchsorted(postings, wanted), len(postings) - 1)
            for i in np.flatnonzero(postings[pos] == wanted):
                found[i].add(term)
        return [frozenset(f) for f in found]

    def _coverage(self, terms: tuple[str, ...], expansions: list[Expansion],
                  matched: frozenset[str]) -> tuple[float, int]:
        """Share of the question's idf mass the passage covers, and how many question terms it satisfies;
        an expansion stands in for its trigger terms.

        A word the corpus never uses weighs as much as the rarest term: "the capital of Peru" or "the
        boiling point of water" ask about something these articles do not cover.
        """
        n = self.index.num_docs
        satisfied = set(matched)
        for e in expansions:
            if set(e.terms) & matched:
                satisfied |= set(e.because_of)
        total = got = 0.0
        count = 0
        for term in set(terms):
            idf = math.log((n + 1) / max(self.index.document_frequency(term), 1))
            total += idf
            if term in satisfied:
                got += idf
                count += 1
        return (got / total if total else 0.0), count

    def _matched_words(self, question: str, matched: frozenset[str]) -> str:
        words = [question[s:e] for s, e, word_terms in self.analyzer.word_spans(question) if matched & set(word_terms)]
        return ", ".join(dict.fromkeys(words)) or "nothing"


def _proximity(forward: "BM25Index | SegmentedIndex", docs: np.ndarray, ids: dict[int, float]) -> np.ndarray:
    segmented = getattr(forward, "proximity", None)      # a SegmentedIndex reads each document from its own segment
    return segmented(docs, ids) if segmented is not None else adjacency_bonus(forward, docs, ids)  # type: ignore[arg-type]


def _dedupe(expansions: list[Expansion]) -> list[Expansion]:
    seen, out = set(), []
    for e in expansions:
        if e.terms not in seen:
            seen.add(e.terms)
            out.append(e)
    return out
