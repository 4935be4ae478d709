"""Articles to passages: one per paragraph, long ones cut at sentences, shared ones merged, IDs from content."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .analysis import SentenceSplitter
from .corpus import Article

__all__ = ("Occurrence", "Passage", "make_passages", "passage_key", "short_id", "MAX_PASSAGE_CHARS", "ID_LENGTH")

_log = logging.getLogger(__name__)

# A passage quoted whole plus its citation line must fit one 2000-character Discord message.
MAX_PASSAGE_CHARS = 1700
ID_LENGTH = 7


@dataclass(frozen=True)
class Occurrence:
    """Where a passage stands: article, 1-based paragraph number, 1-based part of a split paragraph."""

    source: str
    paragraph: int
    part: int = 1
    section: str | None = None


@dataclass
class Passage:
    key: str                 # sha256 of the exact text: what identifies "the same paragraph"
    text: str
    occurrences: list[Occurrence] = field(default_factory=list)


def passage_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def short_id(key: str, length: int = ID_LENGTH) -> str:
    """A typeable ID (lower-case base32) derived from the passage key, so it survives rebuilds."""
    return base64.b32encode(bytes.fromhex(key)).decode("ascii").lower()[:length]


def make_passages(articles: Iterable[Article], splitter: SentenceSplitter) -> list[Passage]:
    """Passages in first-seen order; a paragraph repeated word for word in several articles is one passage."""
    by_key: dict[str, Passage] = {}
    for article in articles:
        for number, paragraph in enumerate(article.paragraphs, start=1):
            pieces = _pieces(paragraph.text, splitter)
            for part, text in enumerate(pieces, start=1):
                key = passage_key(text)
                passage = by_key.get(key)
                if passage is None:
                    passage = by_key[key] = Passage(key, text)
                passage.occurrences.append(Occurrence(article.source, number, part if len(pieces) > 1 else 1, paragraph.section))
    return list(by_key.values())


def _pieces(text: str, splitter: SentenceSplitter) -> list[str]:
    """Sentence-aligned pieces of at most MAX_PASSAGE_CHARS; a longer sentence is cut between words."""
    if len(text) <= MAX_PASSAGE_CHARS:
        return [text]
    spans: list[tuple[int, int]] = []
    for s, e in splitter.spans(text):
        spans += _word_cuts(text, s, e) if e - s > MAX_PASSAGE_CHARS else [(s, e)]
    pieces: list[str] = []
    start = end = None
    for s, e in spans:
        if start is None:
            start, end = s, e
        elif e - start <= MAX_PASSAGE_CHARS:
            end = e
        else:
            pieces.append(text[start:end])
            start, end = s, e
    if start is not None:
        pieces.append(text[start:end])
    return pieces


def _word_cuts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cuts = []
    while end - start > MAX_PASSAGE_CHARS:
        space = text.rfind(" ", start, start + MAX_PASSAGE_CHARS)
        stop = space if space > start else start + MAX_PASSAGE_CHARS
        cuts.append((start, stop))
        start = stop + 1 if space > start else stop
    return cuts + [(start, end)]


def assign_ids(keys: Iterable[str], known: dict[str, str], taken: set[str]) -> dict[str, str]:
    """IDs for new passage keys: the short prefix, lengthened only if another passage already holds it."""
    assigned: dict[str, str] = {}
    for key in keys:
        if key in known:
            continue
        length = ID_LENGTH
        while (candidate := short_id(key, length)) in taken:
            length += 1
        taken.add(candidate)
        assigned[key] = candidate
    return assigned


Progress = Callable[[str, int, int], None]
