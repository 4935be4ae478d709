"""The compiled index's stored form: the one module that knows its blob names and format version.

A build turns its searcher into blobs with to_blobs; start-up turns them back with from_blobs. Nothing
else reads or writes the index_blobs table's names.
"""

from __future__ import annotations

import json
import logging
from typing import Sequence

import numpy as np

from .analysis import Analyzer, SentenceSplitter
from .bm25 import BM25Index, BM25Params, lines_blob
from .quotes import LAYOUT_FORMAT
from .search import ArticleEvidence, ExpansionGroup, Searcher
from .vocabulary import Vocabulary

__all__ = ("INDEX_FORMAT", "index_format", "layout_format", "to_blobs", "from_blobs", "stored_splitter",
           "BUILD_STATE_BLOBS")

_log = logging.getLogger(__name__)

# Bump when the blobs change shape: an older index is then rebuilt, not misread.
# 4: article evidence (each passage's article, an article index on the passage index's term numbers).
INDEX_FORMAT = 4

_FORMAT, _IDS, _SENTENCES, _TERM_MAP, _EXPANSIONS = "format", "passage_ids", "sentences", "term_map", "expansions"
# The format of the passages' stored layouts (passages.layout) when this index was compiled: every passage had one.
_LAYOUTS = "layouts"
# Article evidence (index/search.py ArticleEvidence): its parameters, sources and arrays.
_ARTICLES = "articles"


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


def to_blobs(searcher: Searcher, expansions: Sequence[ExpansionGroup]) -> dict[str, bytes | memoryview]:
    """A freshly compiled searcher's blobs, with the whole expansion table it was given."""
    assert searcher.articles is not None, "a build always makes article evidence"
    blobs = searcher.index.to_arrays()
    blobs[_FORMAT] = str(INDEX_FORMAT).encode()
    blobs[_LAYOUTS] = str(LAYOUT_FORMAT).encode()
    blobs[_IDS] = lines_blob(searcher.passage_ids)
    blobs[_SENTENCES] = searcher.splitter.to_json().encode()
    # The analysis tables, resolved at build time so that start-up does not stem them again.
    blobs[_TERM_MAP] = json.dumps(searcher.analyzer.term_map).encode()
    blobs[_EXPANSIONS] = json.dumps(expansions).encode()
    articles = searcher.articles
    blobs[_ARTICLES] = json.dumps({"params": articles.params.__dict__}).encode()
    blobs[f"{_ARTICLES}.sources"] = lines_blob(articles.sources)
    for name, dtype in ArticleEvidence.ARRAYS.items():
        blobs[f"{_ARTICLES}.{name}"] = np.ascontiguousarray(getattr(articles, name), dtype=dtype).data.cast("B")
    return blobs


def from_blobs(blobs: dict[str, bytes]) -> Searcher:
    """The searcher a build stored; the caller checks index_format first."""
    index = BM25Index.from_arrays(blobs)
    passage_ids = blobs[_IDS].decode().split("\n") if blobs[_IDS] else []
    meta = json.loads(blobs[_ARTICLES])
    arrays = {name: np.frombuffer(blobs[f"{_ARTICLES}.{name}"], dtype=dtype) for name, dtype in ArticleEvidence.ARRAYS.items()}
    sources = blobs[f"{_ARTICLES}.sources"].decode().split("\n") if blobs[f"{_ARTICLES}.sources"] else []
    articles = ArticleEvidence(**arrays, params=BM25Params(**meta["params"]), sources=sources)
    return Searcher(index, passage_ids, Analyzer(term_map=json.loads(blobs[_TERM_MAP])),
                    SentenceSplitter.from_json(blobs[_SENTENCES].decode()),
                    expansions=json.loads(blobs[_EXPANSIONS]), places=Vocabulary.load().places, articles=articles)


def stored_splitter(blobs: dict[str, bytes]) -> SentenceSplitter | None:
    """The sentence model of a stored index, which later builds keep (re-learning it would move cuts)."""
    return SentenceSplitter.from_json(blobs[_SENTENCES].decode()) if _SENTENCES in blobs else None


BUILD_STATE_BLOBS = (_FORMAT, _SENTENCES, _LAYOUTS)
"""The blobs a later build reads back: the format, the sentence model it keeps, and whether layouts are current."""
