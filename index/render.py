"""Answers to text: Discord-flavoured markdown (shared by the terminal and the bot) and plain JSON data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterable, Sequence

from .inert import clean
from .links import safe_url
from .quotes import Quote
from .store import BuildRecord, Located, PassageRecord

if TYPE_CHECKING:
    from .desk import Answer, Result

__all__ = (
    "escape_markdown",
    "escape_field",
    "link_markdown",
    "quote_markdown",
    "citation_line",
    "source_line",
    "also_in_line",
    "result_markdown",
    "same_statement",
    "Block",
    "answer_blocks",
    "answer_head",
    "footer_line",
    "answer_markdown",
    "answer_to_dict",
    "abstention_markdown",
    "expansion_line",
    "named_line",
    "to_terminal",
    "place_label",
)

# Each markdown character behind a backslash: a table, one C pass (a regex substitution per piece of every
# quote was the renderer's largest cost).
_MARKDOWN_CHARS = str.maketrans({c: "\\" + c for c in "\\*_~`|[]()<>"})
_LINE_START = re.compile(r"^(\s*)([#>\-+]|\d+\.)", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """Corpus text shown literally: Discord renders each escaped character as itself, so words stay verbatim."""
    text = text.translate(_MARKDOWN_CHARS)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


# A bare URL in a quote: shown as <url> so Discord neither unfurls it nor bolds inside it.
_BARE_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]}'’”]")


def escape_field(text: str) -> str:
    """An article's title, outlet or author for Discord: escaped, and a URL in it left unclickable (the
    only link a citation holds is the article's own, validated one)."""
    return escape_markdown(text).replace("://", r"\://")


def link_markdown(label: str, url: str | None, escape: bool = True) -> str:
    """The escaped label linked to the URL when it is safe (no unfurl: <url>); otherwise the label in italics
    and the URL beside it as plain text, never a link. The terminal gets "label <url>"."""
    link = safe_url(url)
    if not escape:
        return f"{label} <{link or url}>" if url else label
    text = escape_field(label)
    if link:
        return f"[{text}](<{link}>)"
    shown = f"*{text}*"
    if url and url.strip():
        plain = url.strip()
        plain = plain if len(plain) <= 80 else plain[:79] + "…"
        shown += f" ({escape_field(plain)})"
    return shown


def _escaper(escape: bool):
    """escape_markdown for Discord, the text as it is for a terminal."""
    return escape_markdown if escape else str


def _with_urls(piece: str, escape: bool) -> str:
    """Escaped text, except that a bare URL is shown as <url>: linked as written, never unfurled."""
    if not escape:
        return piece
    if "://" not in piece:           # no URL: the usual case, spared the search
        return escape_markdown(piece)
    out, pos = [], 0
    for m in _BARE_URL.finditer(piece):
        out += [escape_markdown(piece[pos:m.start()]), f"<{m.group()}>"]
        pos = m.end()
    out.append(escape_markdown(piece[pos:]))
    return "".join(out)


def _highlighted(text: str, start: int, end: int, highlights: Iterable[tuple[int, int]], escape: bool) -> str:
    urls = [(m.start(), m.end()) for m in _BARE_URL.finditer(text)] if "://" in text else []
    out, pos = [], start
    for hs, he in highlights:
        if hs < start or he > end or any(us < he and hs < ue for us, ue in urls):
            continue       # a bold run inside a URL would break it
        out.append(_with_urls(text[pos:hs], escape))
        out.append("**" + _with_urls(text[hs:he], escape) + "**")
        pos = he
    out.append(_with_urls(text[pos:end], escape))
    return "".join(out)


def quote_markdown(quote: Quote, escape: bool = True) -> str:
    """The quote as a blockquote: verbatim pieces, matched words bold, "…" where sentences were left out."""
    body = ""
    for i, (s, e) in enumerate(quote.spans):
        if i:
            gap = quote.text[quote.spans[i - 1][1]:s]
            body += gap if not gap.strip() else " … "   # only a real cut is marked
        body += _highlighted(quote.text, s, e, quote.highlights, escape)
    if quote.cut_before:
        body = "… " + body
    if quote.cut_after:
        body = body + " …"
    return "\n".join("> " + line for line in body.splitlines() or [""])


def place_label(place: Located, link: bool = True, escape: bool = True) -> str:
    article = place.article
    if link and article.url:
        return link_markdown(article.title, article.url, escape)
    return f"*{escape_field(article.title)}*" if escape else f"*{article.title}*"


def _place_text(record: PassageRecord, escape: bool) -> str:
    """Title (linked) · outlet · by author · date · ¶N · `id`: where the passage's primary copy stands."""
    primary = record.places[0]
    esc = escape_field if escape else str
    parts = [place_label(primary, escape=escape)]
    if primary.article.outlet:
        parts.append(esc(primary.article.outlet))
    if primary.article.author:
        parts.append("by " + esc(primary.article.author))
    if primary.article.published:
        parts.append(esc(primary.article.published))
    paragraph = f"¶{primary.paragraph}" + (f" (part {primary.part})" if primary.part > 1 else "")
    parts += [paragraph, f"`{record.id}`"]
    return " · ".join(parts)


def source_line(record: PassageRecord, escape: bool = True) -> str:
    """— Title (linked) · outlet · date · ¶N · `id`: where the passage's primary copy stands."""
    return "— " + _place_text(record, escape)


def also_in_line(record: PassageRecord, escape: bool = True, limit: int = 3) -> str | None:
    """The other articles that print the same paragraph word for word, or None."""
    others = record.places[1:]
    if not others:
        return None
    shown = [f"{place_label(p, link=False, escape=escape)} ¶{p.paragraph}" for p in others[:limit]]
    more = len(others) - len(shown)
    return "  also in: " + "; ".join(shown) + (f" and {more} more" if more > 0 else "")


def citation_line(record: PassageRecord, escape: bool = True, also_in_limit: int = 3) -> str:
    """The source line, then "also in" for a paragraph several articles share."""
    also = also_in_line(record, escape, also_in_limit)
    return source_line(record, escape) + (f"\n{also}" if also else "")


def also_reported_line(records: Sequence[PassageRecord], escape: bool = True) -> str | None:
    """The other articles that carry the same statement in other words, or None."""
    if not records:
        return None
    return "  also reported by: " + "; ".join(_place_text(r, escape) for r in records)


def result_markdown(record: PassageRecord, quote: Quote, escape: bool = True,
                    also_reported: Sequence[PassageRecord] = ()) -> str:
    return quote_markdown(quote, escape) + "\n" + block_citation(record, escape, also_reported)


def block_citation(record: PassageRecord, escape: bool = True, also_reported: Sequence[PassageRecord] = ()) -> str:
    also = also_reported_line(also_reported, escape)
    return citation_line(record, escape) + (f"\n{also}" if also else "")


# ----------------------------------------------------------------------------------- near-duplicates

_WORD = re.compile(r"\w+")


def _words(quote: Quote) -> set[str]:
    # The pieces joined by a space hold the same words as each on its own; one C pass for all of them.
    return set(map(str.lower, _WORD.findall(" ".join(quote.pieces))))


def same_statement(a: Quote, b: Quote) -> bool:
    """Two shown quotes carry one statement: nearly all the shorter one's words are in the longer one,
    and they share most of their words overall ("X also said that, “…”" and "X told Ajwa Net that “…”")."""
    return _same_words(_words(a), _words(b))


def _same_words(wa: set[str], wb: set[str]) -> bool:
    if min(len(wa), len(wb)) < 8:
        return False
    common = len(wa & wb)
    return common >= 0.85 * min(len(wa), len(wb)) and common >= 0.6 * len(wa | wb)


@dataclass(frozen=True)
class Block:
    """One quote of an answer and its citation; results[0] is quoted, the rest say the same elsewhere."""

    quote: Quote
    citation: str
    results: tuple["Result", ...]
    escape: bool = True

    @cached_property
    def text(self) -> str:
        return quote_markdown(self.quote, self.escape) + "\n" + self.citation


def answer_blocks(results: Sequence["Result"], escape: bool = True) -> list[Block]:
    """The results as quote blocks, in rank order; a quote repeating an earlier one's statement from another
    article is folded into it as "also reported by"."""
    groups: list[list["Result"]] = []
    words = [_words(result.quote) for result in results]     # each quote's once, not once per comparison
    first_words: list[set[str]] = []
    for result, these in zip(results, words):
        for group, theirs in zip(groups, first_words):
            if group[0].record.places[0].article.source != result.record.places[0].article.source \
                    and _same_words(theirs, these):
                group.append(result)
                break
        else:
            groups.append([result])
            first_words.append(these)
    blocks = []
    for first, *others in groups:
        citation = block_citation(first.record, escape, [r.record for r in others])
        blocks.append(Block(first.quote, citation, (first, *others), escape))
    return blocks


def expansion_line(expanded: list[str], escape: bool = True) -> str | None:
    if not expanded:
        return None
    esc = _escaper(escape)
    return "*also searched: " + ", ".join(esc(e) for e in expanded) + "*"


def abstention_markdown(question: str, reason: str, escape: bool = True) -> str:
    esc = _escaper(escape)
    return f"No answer in the indexed articles for “{esc(clean(question))}”.\n{esc(reason)}"


def named_line(answer, escape: bool = True, shown: set[str] | None = None) -> str | None:
    """For a list question: "Countries named in these quotes: **Egypt** (`id`) · **UAE** (`id`)", each name
    once, with the first passage that names it.

    shown limits it to the passages actually displayed (a page of a longer answer).
    """
    esc = _escaper(escape)
    named = [(n.name, [pid for pid in n.passage_ids if shown is None or pid in shown]) for n in answer.named]
    named = [(name, ids[0]) for name, ids in named if ids]
    if not named:
        return None
    names = " · ".join(f"**{esc(name)}** (`{pid}`)" for name, pid in named)
    return f"{answer.focus.capitalize()} named in these quotes: {names}"


def answer_head(answer: "Answer", shown: set[str] | None = None, escape: bool = True) -> list[str]:
    """The lines above the quotes: the names a list question asks for, and the terms also searched."""
    return [line for line in (named_line(answer, escape, shown), expansion_line(answer.search.expanded_terms, escape))
            if line]


def footer_line(build: BuildRecord, first: int | None = None, last: int | None = None) -> str:
    """-# build … · results 1–5 · N passages indexed (small print on Discord)."""
    shown = ""
    if first is not None and last is not None:
        shown = f" · result {first}" if first == last else f" · results {first}–{last}"
    return f"-# {build.label}{shown} · {build.passages} passages indexed"


def answer_markdown(answer: "Answer", escape: bool = True) -> str:
    """The whole answer as one text: what `newsdesk ask` prints, and what the bot's layout fits into messages."""
    if answer.abstained:
        return abstention_markdown(answer.search.question, answer.abstained, escape)
    blocks = [b.text for b in answer_blocks(answer.results, escape)]
    footer = footer_line(answer.build, 1, len(answer.results))
    return "\n\n".join(answer_head(answer, escape=escape) + blocks + [footer])


def answer_to_dict(answer) -> dict:
    """The `ask --json` shape: text is the verbatim paragraph (or part), never the shortened quote."""
    def document(place: Located) -> dict:
        a = place.article
        return {"title": a.title, "path": a.source, "url": a.url, "outlet": a.outlet, "published": a.published}

    return {
        "query": answer.search.question,
        "expanded_terms": answer.search.expanded_terms,
        "abstained": answer.abstained,
        "named": [{"name": n.name, "ids": list(n.passage_ids)} for n in answer.named],
        "build": answer.build.id,
        "results": [
            {
                "id": r.record.id,
                "text": r.record.text,
                "quote": [r.quote.text[s:e] for s, e in r.quote.spans],
                "score": round(r.hit.score, 6),
                "paragraph": r.record.places[0].paragraph,
                "part": r.record.places[0].part,
                "section": r.record.places[0].section,
                "document": document(r.record.places[0]),
                "also_in": [dict(document(p), paragraph=p.paragraph) for p in r.record.places[1:]],
            }
            for r in answer.results
        ],
    }


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def to_terminal(markdown: str, color: bool) -> str:
    """Markdown for a terminal: bold becomes ANSI bold-yellow on a TTY and stays ** elsewhere."""
    if not color:
        return markdown
    text = _BOLD.sub(lambda m: f"\x1b[1;33m{m.group(1)}\x1b[0m", markdown)
    return re.sub(r"^-# ", "", text, flags=re.MULTILINE)
