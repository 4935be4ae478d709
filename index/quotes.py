"""Which words of a passage to quote and which to highlight: spans into the verbatim text, never rewritten words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .analysis import Analyzer, SentenceSplitter

__all__ = ("Quote", "select_quote", "QUOTE_CHARS")

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


def select_quote(text: str, terms: Iterable[str], analyzer: Analyzer, splitter: SentenceSplitter,
                 max_chars: int = QUOTE_CHARS) -> Quote:
    """The whole passage when short; otherwise the best sentences within max_chars, kept in reading order."""
    terms = frozenset(terms)
    highlights = _merge_runs(text, [(s, e) for s, e, word_terms in analyzer.word_spans(text) if terms.intersection(word_terms)])
    if len(text) <= max_chars:
        return Quote(text, ((0, len(text)),), highlights)
    sentences = splitter.spans(text) or [(0, len(text))]

    def matched_in(span: tuple[int, int]) -> set[str]:
        s, e = span
        return {text[hs:he].lower() for hs, he in highlights if s <= hs and he <= e}

    # Greedy: each step takes the sentence adding the most new matched words (ties: earlier first).
    chosen: list[tuple[int, int]] = []
    covered: set[str] = set()
    used = 0
    remaining = list(sentences)
    while remaining:
        best = max(remaining, key=lambda sp: (len(matched_in(sp) - covered), len(matched_in(sp)), -sp[0]))
        if not matched_in(best) and chosen:
            break
        length = best[1] - best[0]
        if chosen and used + length > max_chars:
            remaining.remove(best)
            continue
        chosen.append(best)
        covered |= matched_in(best)
        used += length
        remaining.remove(best)
        if used >= max_chars:
            break
    chosen.sort()
    if len(chosen) == 1 and chosen[0][1] - chosen[0][0] > max_chars:
        chosen = [_clip_sentence(text, chosen[0], highlights, max_chars)]
    shown = tuple(chosen)
    kept = tuple(h for h in highlights if any(s <= h[0] and h[1] <= e for s, e in shown))
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
