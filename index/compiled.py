"""The compiled index's stored form: the one module that knows its blob names and format version.

A build turns its searcher into blobs with to_blobs; start-up turns them back with from_blobs. Nothing
else reads or writes the index_blobs table's names.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index, BM25Params, blob_lines as _lines, lines_blob
from .quotes import LAYOUT_FORMAT
from .search import ArticleEvidence, ExpansionGroup, Searcher
from .segments import Delta, SegmentedArticles, SegmentedIndex
from .vocabulary import Vocabulary

__all__ = ("INDEX_FORMAT", "index_format", "layout_format", "to_blobs", "from_blobs", "stored_splitter",
           "BUILD_STATE_BLOBS", "delta_blobs", "with_delta", "BaseFacts", "base_facts", "BASE_FACT_BLOBS",
           "DELTA_PREFIX", "base_token", "has_delta", "delta_size")

_log = logging.getLogger(__name__)

# Bump when the blobs change shape: an older index is then rebuilt, not misread.
# 4: article evidence (each passage's article, an article index on the passage index's term numbers).
# 5: segments (a delta beside the base compile, index/segments.py).
INDEX_FORMAT = 5

_FORMAT, _IDS, _SENTENCES, _TERM_MAP, _EXPANSIONS = "format", "passage_ids", "sentences", "term_map", "expansions"
# The format of the passages' stored layouts (passages.layout) when this index was compiled: every passage had one.
_LAYOUTS = "layouts"
# Article evidence (index/search.py ArticleEvidence): its parameters, sources and arrays.
_ARTICLES = "articles"
# The mined alias pairs with how many passages write each (in a delta: how many deleted base passages did).
_ALIASES = "aliases"
# Names the whole compile a delta extends: a delta whose base is not the stored one is never read.
_BASE = "base"
# The delta segment's blobs all start with this; a build that writes a delta replaces only them.
DELTA_PREFIX = "delta."


def index_format(blobs: dict[str, bytes]) -> int | None:
    """The format a stored index was written in (None for one from before formats were kept)."""
    try:
        return int(blobs[_FORMAT])
    except (KeyError, ValueError):
        return None


def layout_format(blobs: dict[str, bytes]) -> int | None:
    """The layout format every passage had when the stored index was compiled (None: from before layouts)."""
    try:
        return int(blobs[_LAYOUTS])
    except (KeyError, ValueError):
        return None


def to_blobs(searcher: Searcher, expansions: Sequence[ExpansionGroup],
             aliases: dict[tuple[str, str], int]) -> dict[str, bytes | memoryview]:
    """A freshly compiled searcher's blobs, with the whole expansion table it was given and the alias pairs
    mined for it, each with how many passages write it (a delta keeps a pair while some live passage does)."""
    assert isinstance(searcher.index, BM25Index), "a whole compile is one index"
    blobs = searcher.index.to_arrays()
    blobs[_FORMAT] = str(INDEX_FORMAT).encode()
    blobs[_LAYOUTS] = str(LAYOUT_FORMAT).encode()
    blobs[_IDS] = lines_blob(searcher.passage_ids)
    blobs[_SENTENCES] = searcher.splitter.to_json().encode()
    # The analysis tables, resolved at build time so that start-up does not stem them again.
    blobs[_TERM_MAP] = json.dumps(searcher.analyzer.term_map).encode()
    blobs[_EXPANSIONS] = json.dumps(expansions).encode()
    blobs[_ALIASES] = _aliases_blob(aliases)
    assert isinstance(searcher.articles, ArticleEvidence)
    blobs.update(_article_blobs(searcher.articles, _ARTICLES))
    blobs[_BASE] = uuid.uuid4().hex.encode()
    return blobs


def _article_blobs(articles: ArticleEvidence, name: str) -> dict[str, bytes | memoryview]:
    meta = {"params": articles.params.__dict__, **({} if articles.own_avgdl else {"avgdl": articles.avgdl})}
    blobs: dict[str, bytes | memoryview] = {name: json.dumps(meta).encode(),
                                            f"{name}.sources": lines_blob(articles.sources)}
    for array, dtype in ArticleEvidence.ARRAYS.items():
        blobs[f"{name}.{array}"] = np.ascontiguousarray(getattr(articles, array), dtype=dtype).data.cast("B")
    return blobs


def _articles_from(blobs: dict[str, bytes], name: str) -> ArticleEvidence:
    meta = json.loads(blobs[name])
    arrays = {array: np.frombuffer(blobs[f"{name}.{array}"], dtype=dtype) for array, dtype in ArticleEvidence.ARRAYS.items()}
    return ArticleEvidence(**arrays, params=BM25Params(**meta["params"]), sources=_lines(blobs[f"{name}.sources"]),
                           avgdl=meta.get("avgdl"))


def _aliases_blob(counts: dict[tuple[str, str], int]) -> bytes:
    return json.dumps(sorted([*pair, n] for pair, n in counts.items())).encode()


def _aliases_from(blob: bytes | None) -> dict[tuple[str, str], int]:
    return {(acronym, long_form): n for acronym, long_form, n in json.loads(blob)} if blob else {}


def base_token(blobs: dict[str, bytes]) -> str | None:
    """Which whole compile the stored blobs (or a delta's, under DELTA_PREFIX) belong to."""
    token = blobs.get(_BASE)
    return token.decode() if token is not None else None


def delta_blobs(delta: Delta, expansions: Sequence[ExpansionGroup], base: str) -> dict[str, bytes | memoryview]:
    """A delta segment's blobs, all named under DELTA_PREFIX; `base` is the token of the compile it extends."""
    index = delta.index.to_arrays()
    index["vocabulary"] = lines_blob(delta.index.vocabulary[len(delta.index.vocabulary) - _new_terms(delta):])
    blobs: dict[str, bytes | memoryview] = {f"index.{name}": data for name, data in index.items()}
    blobs["new_terms"] = str(_new_terms(delta)).encode()
    blobs["passage_ids"] = lines_blob(delta.passage_ids)
    blobs["deleted"] = np.ascontiguousarray(delta.deleted, dtype="<i4").data.cast("B")
    blobs["superseded"] = lines_blob(delta.superseded)
    blobs["expansions"] = json.dumps(expansions).encode()
    blobs[_ALIASES] = _aliases_blob(delta.aliases_removed)
    blobs.update(_article_blobs(delta.articles, _ARTICLES))
    blobs[_BASE] = base.encode()
    return {DELTA_PREFIX + name: data for name, data in blobs.items()}


def _new_terms(delta: Delta) -> int:
    return len(delta.index.vocabulary) - delta.base_terms


@dataclass
class _Whole:
    """A whole compile's parts as loaded: a delta is searched over them, and a later delta over the same ones."""

    index: BM25Index
    articles: ArticleEvidence
    passage_ids: list[str]
    analyzer: Analyzer
    splitter: SentenceSplitter
    places: list[list[str]]
    token: str | None

    @classmethod
    def of(cls, searcher: Searcher) -> "_Whole":
        index, articles = searcher.index, searcher.articles
        whole = index.base if isinstance(index, SegmentedIndex) else index
        evidence = articles.base if isinstance(articles, SegmentedArticles) else articles
        assert evidence is not None
        return cls(whole, evidence, searcher.passage_ids[:whole.num_docs], searcher.analyzer, searcher.splitter,
                   searcher.places, searcher.base_token)

    def searcher(self, expansions: Sequence[ExpansionGroup], delta: Delta | None = None) -> Searcher:
        if delta is None:
            searcher = Searcher(self.index, self.passage_ids, self.analyzer, self.splitter, expansions=expansions,
                                places=self.places, articles=self.articles)
        else:
            searcher = Searcher(SegmentedIndex(self.index, delta), self.passage_ids + delta.passage_ids, self.analyzer,
                                self.splitter, expansions=expansions, places=self.places,
                                articles=SegmentedArticles(self.articles, delta, self.index.num_docs))
        searcher.base_token = self.token
        return searcher


def with_delta(base: Searcher, delta: Delta, expansions: Sequence[ExpansionGroup]) -> Searcher:
    """The searcher of a base compile and a delta over it, reusing the base's arrays as they are loaded."""
    return _Whole.of(base).searcher(expansions, delta)


def from_blobs(blobs: dict[str, bytes], base: Searcher | None = None) -> Searcher:
    """The searcher a build stored; the caller checks index_format first.

    base: a searcher loaded from the same whole compile (base_token), whose arrays are reused; then only the
    delta's blobs are needed."""
    if base is not None:
        whole = _Whole.of(base)
    else:
        whole = _Whole(BM25Index.from_arrays(blobs), _articles_from(blobs, _ARTICLES), _lines(blobs[_IDS]),
                       Analyzer(term_map=json.loads(blobs[_TERM_MAP])), SentenceSplitter.from_json(blobs[_SENTENCES].decode()),
                       Vocabulary.load().places, base_token(blobs))
    delta = _delta_from(blobs, whole)
    if delta is not None:
        return whole.searcher(json.loads(blobs[DELTA_PREFIX + _EXPANSIONS]), delta)
    return whole.searcher(json.loads(blobs[_EXPANSIONS]))


def _delta_from(blobs: dict[str, bytes], whole: _Whole) -> Delta | None:
    """The stored delta over `whole`, or None when there is none (or it extends another compile)."""
    token = blobs.get(DELTA_PREFIX + _BASE)
    if token is None or whole.token is None or token.decode() != whole.token:
        return None
    named = {name[len(DELTA_PREFIX):]: data for name, data in blobs.items() if name.startswith(DELTA_PREFIX)}
    index_blobs = {name[len("index."):]: data for name, data in named.items() if name.startswith("index.")}
    index = BM25Index.from_arrays(index_blobs, whole.index.vocabulary + _lines(named["index.vocabulary"]))
    return Delta(index, _lines(named[_IDS]), _articles_from(named, _ARTICLES),
                 np.frombuffer(named["deleted"], dtype="<i4").astype(np.int64), _lines(named["superseded"]),
                 base_terms=len(whole.index.vocabulary))


@dataclass
class BaseFacts:
    """What a build that writes a delta needs to know of the stored index, without loading its arrays."""

    token: str
    passage_ids: list[str]          # base document -> passage ID (sorted)
    vocabulary: list[str]           # the base's terms in number order
    lengths: np.ndarray             # base document lengths
    params: BM25Params
    article_params: BM25Params
    article_sources: list[str]      # base article number -> source
    article_lengths: np.ndarray
    delta_ids: list[str]            # the stored delta's (empty when there is none)
    deleted: np.ndarray
    superseded: list[str]
    expansions: list                # the base's expansion table
    aliases: dict[tuple[str, str], int]          # the base's alias pairs, with how many passages write each
    aliases_removed: dict[tuple[str, str], int]  # ...and how many of those passages the stored delta deleted


BASE_FACT_BLOBS = (_FORMAT, _BASE, "meta", "vocabulary", "doc_offsets", _IDS, _EXPANSIONS, _ALIASES, _ARTICLES,
                   f"{_ARTICLES}.sources", f"{_ARTICLES}.lengths", DELTA_PREFIX + _BASE, DELTA_PREFIX + _IDS,
                   DELTA_PREFIX + "deleted", DELTA_PREFIX + "superseded", DELTA_PREFIX + _ALIASES)
"""The blobs base_facts reads: a few MB at a million passages, not the hundreds of the arrays."""


def base_facts(blobs: dict[str, bytes]) -> BaseFacts | None:
    """The facts of the stored index (blobs holding BASE_FACT_BLOBS), or None if it cannot take a delta."""
    token = base_token(blobs)
    if token is None or index_format(blobs) != INDEX_FORMAT:
        return None
    meta = json.loads(blobs["meta"])
    offsets = np.frombuffer(blobs["doc_offsets"], dtype=np.dtype(meta["dtypes"]["doc_offsets"]))
    current = blobs.get(DELTA_PREFIX + _BASE, b"").decode() == token
    return BaseFacts(
        token, _lines(blobs[_IDS]), _lines(blobs["vocabulary"]), np.diff(offsets), BM25Params(**meta["params"]),
        BM25Params(**json.loads(blobs[_ARTICLES])["params"]), _lines(blobs[f"{_ARTICLES}.sources"]),
        np.frombuffer(blobs[f"{_ARTICLES}.lengths"], dtype="<i4"),
        _lines(blobs[DELTA_PREFIX + _IDS]) if current else [],
        np.frombuffer(blobs[DELTA_PREFIX + "deleted"], dtype="<i4").astype(np.int64) if current else np.zeros(0, np.int64),
        _lines(blobs[DELTA_PREFIX + "superseded"]) if current else [], json.loads(blobs[_EXPANSIONS]),
        _aliases_from(blobs.get(_ALIASES)), _aliases_from(blobs.get(DELTA_PREFIX + _ALIASES)) if current else {})


def stored_splitter(blobs: dict[str, bytes]) -> SentenceSplitter | None:
    """The sentence model of a stored index, which later builds keep (re-learning it would move cuts)."""
    return SentenceSplitter.from_json(blobs[_SENTENCES].decode()) if _SENTENCES in blobs else None


BUILD_STATE_BLOBS = (_FORMAT, _SENTENCES, _LAYOUTS, _BASE, DELTA_PREFIX + _BASE, DELTA_PREFIX + _IDS)
"""The blobs a later build reads back: the format, the sentence model it keeps, whether layouts are current,
and whether a delta extends the whole compile."""


def has_delta(blobs: dict[str, bytes]) -> bool:
    """Whether the stored index (blobs holding BUILD_STATE_BLOBS) has a delta over its whole compile."""
    return _BASE in blobs and blobs.get(DELTA_PREFIX + _BASE) == blobs[_BASE]


def delta_size(blobs: dict[str, bytes]) -> int:
    """How many passages the stored delta holds (blobs holding BUILD_STATE_BLOBS); 0 without one."""
    return len(_lines(blobs[DELTA_PREFIX + _IDS])) if has_delta(blobs) else 0
