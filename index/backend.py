"""The search backend seam: what a place that holds the passages must do for the engine.

The embedded index (SQLite + the compiled arrays in memory) is the default; a search cluster
(index/sphinx.py) is the other. The engine asks a backend for *candidates* for weighted terms and scores
them itself (index/remote.py), with the global statistics the build stored in the backend's metadata:
the cluster's own ranking only chooses which passages are worth scoring, so its per-shard IDF cannot
change an answer (docs: search-cluster.md, "Ranking through the aggregator").
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
import hashlib
from typing import Any, Awaitable, Callable, Protocol, Sequence

from .errors import NewsdeskError
from .store import ArticleInfo, Located, PassageRecord

__all__ = ("SearchBackend", "Candidate", "Candidates", "StoredPassage", "SearchUnavailable", "record_to_json",
           "record_from_json", "content_hash", "EMBEDDED")

_log = logging.getLogger(__name__)

EMBEDDED = "embedded"


class SearchUnavailable(NewsdeskError):
    """The search cluster cannot be reached or answered with an error."""


@dataclass(frozen=True)
class StoredPassage:
    """One passage as a backend stores it: the terms it is indexed under (its own, then its article's
    title and section heading, exactly as the embedded index counts them) and its record."""

    record: PassageRecord
    terms: Sequence[str]


@dataclass(frozen=True)
class Candidate:
    id: str
    terms: list[str]
    record: PassageRecord


@dataclass(frozen=True)
class Candidates:
    items: list[Candidate]
    missing_shards: tuple[int, ...] = ()     # shards that did not answer: the candidates are partial


class SearchBackend(Protocol):
    """What the engine needs from where the passages live."""

    async def candidates(self, weights: dict[str, float], depth: int) -> Candidates:
        """Up to `depth` passages containing any of the terms, best first by the backend's own ranking."""
        ...

    async def records(self, ids: Sequence[str]) -> dict[str, PassageRecord]:
        """Stored records by passage ID; unknown IDs are absent."""
        ...

    async def write(self, keep: Sequence[tuple[str, int]],
                    load: Callable[[list[str]], Awaitable[list[StoredPassage]]]) -> dict[str, int]:
        """Bring the stored passages to exactly `keep`, (passage ID, content_hash) for every passage of the
        build: only passages missing or different are loaded (a batch at a time) and written, the others
        deleted; returns counts ("written", "deleted")."""
        ...

    async def read_meta(self) -> dict[str, Any] | None:
        """The current build's metadata (build record, statistics, analysis tables), None before a build."""
        ...

    async def write_meta(self, meta: dict[str, Any]) -> None:
        """Store a build's metadata; readers switch to it when this returns."""
        ...

    async def close(self) -> None:
        ...


def record_to_json(record: PassageRecord) -> str:
    return json.dumps({"text": record.text, "places": [
        [p.article.source, p.article.title, p.article.url, p.article.outlet, p.article.published, p.article.author,
         p.paragraph, p.part, p.section] for p in record.places]}, ensure_ascii=False, separators=(",", ":"))


def record_from_json(passage_id: str, raw: str) -> PassageRecord:
    data = json.loads(raw)
    places = tuple(Located(ArticleInfo(*p[:6]), p[6], p[7], p[8]) for p in data["places"])
    return PassageRecord(passage_id, data["text"], places)


def content_hash(passage: StoredPassage) -> int:
    """63 bits of what is stored for a passage: an unchanged passage is not written again."""
    h = hashlib.sha256(" ".join(passage.terms).encode() + b"\x00" + record_to_json(passage.record).encode())
    return int.from_bytes(h.digest()[:8], "big") >> 1
