"""Which words of a passage to quote and which to highlight: spans into the verbatim text, never rewritten words."""

from __future__ import annotations

import re
import struct
import sys
from array import array
from dataclasses import dataclass, replace
from bisect import bisect_right
from functools import cached_property
from itertools import accumulate
from operator import add
from typing import Iterable, Sequence, cast

from .analysis import Analyzer, SentenceSplitter, fold_text

__all__ = ("Quote", "select_quote", "quote_of", "TextLayout", "LayoutMaker", "QUOTE_CHARS", "LAYOUT_FORMAT")

# Past this length a quote keeps only the sentences that carry the matched words.
QUOTE_CHARS = 700


@dataclass(frozen=True)
class Quote:
    """Sentence spans of one passage to show, in order, and the matched words' spans inside them."""

    text: str                              # the passage's verbatim text
    spans: tuple[tuple[int, int], ...]     # shown pieces; a gap between two means "…"
    highlights: tuple[tuple[int, int], ...]

    @classmethod
    def whole(cls, text: str) -> "Quote":
        """The entire passage, nothing highlighted: a quote card."""
        return cls(text, ((0, len(text)),), ())

    @property
    def pieces(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]

    @property
    def cut_before(self) -> bool:
        return bool(self.spans) and self.text[: self.spans[0][0]].strip() != ""

    @property
    def cut_after(self) -> bool:
        return bool(self.spans) and self.text[self.spans[-1][1]:].strip() != ""

    def is_verbatim(self, stored: str) -> bool:
        """Every piece shown is a substring of the stored paragraph: the guarantee quotes are made on."""
        return all(piece and piece in stored for piece in self.pieces)


# Bump when the stored layout's bytes change shape: a build then lays out every passage again.
# 2: words placed inside their whitespace chunk (the chunks' own places are found in the text when read).
LAYOUT_FORMAT = 2

Word = tuple[int, int, tuple[str, ...]]
"""(start, end, analysed terms) of one word of a passage: Analyzer.word_spans's shape."""

_NOT_LAID_OUT, _NARROW, _WIDE = 0, 1, 2       # the second byte: no layout, fields in 1 byte, fields in 2 bytes
_NO_SENTENCES = 0xFFFF
_SPACES = re.compile(r"\s+")                   # what str.split() splits at (both use str.isspace)


@dataclass(frozen=True)
class TextLayout:
    """Where a passage's words and sentences stand, and each word's terms: what quoting and highlighting read.

    A build lays out each new passage once (LayoutMaker) and stores the bytes beside its text; an answer
    reads them back (from_bytes) with the passage's stored tokens instead of running the analyzer over
    every word and Punkt over every long passage shown. A stored layout places each word inside its
    whitespace chunk (what text.split() gives), which is all the analysis decides: where the chunks stand
    is found again in the text by C-level splits, once per passage quoted.

    `fields` holds four numbers per word: 1 if it is the first of its chunk (else 0), its start in the chunk,
    its length and how many of `terms` it has. A chunk without words ("—") has one of length 0, so that the
    first-of-chunk flags count the chunks.
    """

    fields: Sequence[int]
    chunked: bool                # False: starts count from the text's start (laid out on the spot)
    terms: tuple[str, ...]       # every word's terms, in order: the passage's tokens
    sentences: tuple[tuple[int, int], ...] | None    # None: not laid out (a short passage is quoted whole)

    @classmethod
    def of(cls, text: str, analyzer: Analyzer, splitter: SentenceSplitter, sentences: bool) -> "TextLayout":
        """Laid out on the spot: the analyzer over every word, and Punkt if sentences are wanted."""
        words = analyzer.word_spans(text)
        return cls(array("I", (f for s, e, terms in words for f in (0, s, e - s, len(terms)))), False,
                   tuple(t for _, _, terms in words for t in terms),
                   tuple(splitter.spans(text)) if sentences else None)

    @cached_property
    def _term_ends(self) -> tuple[int, ...]:
        return tuple(accumulate(self.fields[3::4]))    # word w's terms are terms[_term_ends[w-1]:_term_ends[w]]

    @cached_property
    def _chunk_of(self) -> tuple[int, ...]:
        return tuple(accumulate(self.fields[0::4]))   # 1 + the chunk of each word (0 when laid out on the spot)

    def _places(self, text: str) -> list[int]:
        """Where each whitespace chunk of the text starts: worked out once (C-level splits), then kept, since a
        layout is read, and may be cached, only with its own text."""
        kept = self.__dict__.get("_placed")
        if kept is not None and kept[0] == text:
            return kept[1]
        lead = len(text) - len(text.lstrip())
        pieces = text.split()
        if self.chunked and self._chunk_of and self._chunk_of[-1] != len(pieces):
            raise ValueError("This layout is another text's.")
        places = [0] + list(accumulate(map(add, map(len, pieces), map(len, _SPACES.findall(text, lead))),
                                       initial=lead)) if self.chunked else [0]
        self.__dict__["_placed"] = (text, places)        # as cached_property stores its values
        return places

    def _span(self, w: int, places: list[int]) -> tuple[int, int]:
        start = places[self._chunk_of[w]] + self.fields[4 * w + 1]
        return start, start + self.fields[4 * w + 2]

    def words(self, text: str) -> list[Word]:
        """(start, end, terms) of every word of the text, as Analyzer.word_spans gives them."""
        starts, places = (0,) + self._term_ends, self._places(text)
        return [self._span(w, places) + (self.terms[starts[w]:starts[w + 1]],)
                for w in range(len(self.fields) // 4) if self.fields[4 * w + 2]]

    def matched(self, text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
        """The spans of the words with one of the terms, in order."""
        hits = [i for i, term in enumerate(self.terms) if term in terms]
        if not hits:
            return []
        places = self._places(text)
        return [self._span(w, places) for w in sorted({bisect_right(self._term_ends, i) for i in hits})]

    def with_sentences(self, text: str, splitter: SentenceSplitter) -> "TextLayout":
        return replace(self, sentences=tuple(splitter.spans(text)))

    @classmethod
    def from_bytes(cls, data: bytes | None, tokens: str) -> "TextLayout | None":
        """The stored layout, its words given their terms from the passage's stored tokens (the words' terms
        in order: LayoutMaker checked it). None when there is none to read, or one of another format."""
        if not data or len(data) < 4 or data[0] != LAYOUT_FORMAT or data[1] == _NOT_LAID_OUT:
            return None
        (count,) = struct.unpack_from("<H", data, 2)
        offset = 4
        sentences = None
        if count != _NO_SENTENCES:
            flat = struct.unpack_from(f"<{2 * count}H", data, offset)
            sentences = tuple(zip(flat[0::2], flat[1::2]))
            offset += 4 * count
        fields: bytes | array[int] = data[offset:]
        if data[1] == _WIDE:
            fields = array("H", fields)
            if sys.byteorder == "big":
                fields.byteswap()
        terms = tuple(tokens.split())
        if len(fields) % 4 or sum(fields[3::4]) != len(terms):
            return None          # tokens from another analysis than the layout's: not to be trusted
        return cls(fields, True, terms, sentences)


# No word character and no '-': no token starts at one of these or runs over one at a chunk's edges.
_EDGE_PUNCTUATION = "\"'()[]{},.;:!?"
_NO_WORDS = ((1, 0, 0, 0),)


class LayoutMaker:
    """Lays out passages at build time, as bytes to store (TextLayout.from_bytes reads them).

    A text is taken whitespace chunk by whitespace chunk, as Analyzer.tokenize takes it, and each distinct
    chunk's words are encoded once: news text repeats its chunks, so a passage's layout is a dict lookup
    per chunk and a byte join, C loops both. Words are placed inside their chunk, which is what lets a
    chunk's bytes be reused wherever it stands. The terms themselves are not stored (the passage's tokens
    are), only how many each word has; a chunk whose words' terms do not add up to its tokens (possible
    after Unicode normalisation) leaves the passage without a layout, and an answer lays it out on the spot.
    """

    def __init__(self, analyzer: Analyzer, splitter: SentenceSplitter, sentences_over: int = QUOTE_CHARS) -> None:
        self.analyzer = analyzer
        self.splitter = splitter
        self.sentences_over = sentences_over
        # A chunk's bytes; None when a number needs two bytes or its words' terms are not its tokens.
        self._chunks: dict[str, bytes | None] = {}

    def __call__(self, text: str) -> bytes:
        if len(text) > 0xFFFF:         # offsets are stored in two bytes; passages are far shorter
            return bytes((LAYOUT_FORMAT, _NOT_LAID_OUT))
        pieces = text.split()
        known = self._chunks
        if len(text) > self.sentences_over:
            spans = self.splitter.spans(text)
            head = struct.pack(f"<H{2 * len(spans)}H", len(spans), *(i for span in spans for i in span))
        else:
            head = struct.pack("<H", _NO_SENTENCES)
        # A chunk never seen raises KeyError, a None TypeError: a passage of known fit chunks checks nothing.
        narrow = bytes((LAYOUT_FORMAT, _NARROW)) + head
        try:
            return narrow + b"".join(map(known.__getitem__, pieces))  # type: ignore[arg-type]
        except (KeyError, TypeError):
            for piece in set(pieces).difference(known):      # a Python step only for a chunk never seen
                known[piece] = self._encode(piece)
        try:
            return narrow + b"".join(map(known.__getitem__, pieces))  # type: ignore[arg-type]
        except TypeError:
            pass
        words = [self._words_of(piece) for piece in pieces]
        if None in words:
            return bytes((LAYOUT_FORMAT, _NOT_LAID_OUT))
        fields = array("H", (f for chunk in cast(list[tuple[tuple[int, ...], ...]], words)
                             for word in chunk for f in word))
        if sys.byteorder == "big":
            fields.byteswap()
        return bytes((LAYOUT_FORMAT, _WIDE)) + head + fields.tobytes()

    def _encode(self, chunk: str) -> bytes | None:
        # Most chunks are one plain word between punctuation ("(Reuters)", "said,", "“Libya”"): that word
        # is the chunk's only token, its terms the chunk's, found without running the word regex again.
        folded = fold_text(chunk)
        if folded.isascii() and len(chunk) <= 0xFF:
            core = folded.strip(_EDGE_PUNCTUATION)
            if core.isalnum():
                count = len(self.analyzer.tokenize(chunk))
                if count <= 0xFF:
                    return bytes((1, len(folded) - len(folded.lstrip(_EDGE_PUNCTUATION)), len(core), count))
        words = self._words_of(chunk)
        if words is None:
            return None
        fields = [f for word in words for f in word]
        return bytes(fields) if max(fields) <= 0xFF else None

    def _words_of(self, chunk: str) -> tuple[tuple[int, ...], ...] | None:
        """(first of chunk, start, length, term count) of the chunk's words, or None if their terms are not
        its tokens."""
        spans = self.analyzer.word_spans(chunk)
        if [t for _, _, terms in spans for t in terms] != self.analyzer.tokenize(chunk):
            return None
        return tuple((int(i == 0), s, e - s, len(terms)) for i, (s, e, terms) in enumerate(spans)) or _NO_WORDS


def select_quote(text: str, terms: Iterable[str], analyzer: Analyzer, splitter: SentenceSplitter,
                 max_chars: int = QUOTE_CHARS) -> Quote:
    """The whole passage when short; otherwise the best sentences within max_chars, kept in reading order.

    Lays the text out on the spot (the analyzer over every word, Punkt when it is long): an answer reads the
    layout its build stored instead (quote_of).
    """
    return quote_of(text, TextLayout.of(text, analyzer, splitter, len(text) > max_chars), terms, max_chars)


def quote_of(text: str, layout: "TextLayout", terms: Iterable[str], max_chars: int = QUOTE_CHARS,
             splitter: SentenceSplitter | None = None) -> Quote:
    """select_quote over a layout already made; splitter is needed only if a long text's has no sentences."""
    terms = frozenset(terms)
    highlights = _merge_runs(text, layout.matched(text, terms))
    if len(text) <= max_chars:
        return Quote(text, ((0, len(text)),), highlights)
    if layout.sentences is None:
        if splitter is None:
            raise ValueError("A long passage's layout without sentences needs the splitter.")
        layout = layout.with_sentences(text, splitter)
    assert layout.sentences is not None
    sentences = list(layout.sentences) or [(0, len(text))]
    matched = {span: {text[hs:he].lower() for hs, he in highlights if span[0] <= hs and he <= span[1]}
               for span in sentences}

    # Greedy: each step takes the sentence adding the most new matched words (ties: earlier first).
    chosen: list[tuple[int, int]] = []
    covered: set[str] = set()
    used = 0
    remaining = list(sentences)
    while remaining:
        best = max(remaining, key=lambda sp: (len(matched[sp] - covered), len(matched[sp]), -sp[0]))
        if not matched[best] and chosen:
            break
        length = best[1] - best[0]
        if chosen and used + length > max_chars:
            remaining.remove(best)
            continue
        chosen.append(best)
        covered |= matched[best]
        used += length
        remaining.remove(best)
        if used >= max_chars:
            break
    chosen.sort()
    if len(chosen) == 1 and chosen[0][1] - chosen[0][0] > max_chars:
        chosen = [_clip_sentence(text, chosen[0], highlights, max_chars)]
    shown = tuple(chosen)
    # The highlights inside a shown sentence: the one that starts last at or before a highlight is the only
    # one that can hold it (the spans are sorted and apart).
    starts = [s for s, _ in shown]
    kept = tuple(h for h in highlights if (i := bisect_right(starts, h[0]) - 1) >= 0 and h[1] <= shown[i][1])
    return Quote(text, shown, kept)


def _merge_runs(text: str, spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Matched words separated only by spaces become one highlight: **Petroleum Facilities Guards**."""
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and not text[merged[-1][1]:s].strip():
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def _clip_sentence(text: str, span: tuple[int, int], highlights, max_chars: int) -> tuple[int, int]:
    """A single over-long sentence: a word-aligned window around its first highlighted word."""
    s, e = span
    first = next((h for h in highlights if s <= h[0] < e), (s, s))
    start = max(s, first[0] - max_chars // 3)
    if start > s:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first[0] else start
    end = min(e, start + max_chars)
    if end < e:
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return (start, end)
