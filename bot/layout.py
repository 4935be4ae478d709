"""Message layout: the engine's markdown (index.render) fitted into Discord's limits. Layout only, no search."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from index.inert import clean
from index.quotes import Quote
from index.render import (abstention_markdown, answer_blocks, answer_head, escape_field, escape_markdown,
                          footer_line, link_markdown, quote_markdown, source_line)

from .checks import redact_paths

if TYPE_CHECKING:
    from index.build import BuildReport
    from index.desk import Answer, Result
    from index.store import ArticleInfo, BuildRecord, PassageRecord  # types only: data, not access

__all__ = (
    "MESSAGE_LIMIT",
    "Page",
    "discord_length",
    "clip",
    "answer_page",
    "abstention_text",
    "question_line",
    "question_of",
    "header_of",
    "context_line",
    "context_of",
    "not_found_text",
    "quote_card",
    "attribution_line",
    "sources_page",
    "about_text",
    "progress_text",
    "report_text",
    "failure_text",
    "option_label",
    "as_question",
)

_log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000   # characters of content in one bot message
LABEL_LIMIT = 80       # button label


def discord_length(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units), so an emoji in a title cannot push us over."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Plain or escaped text cut at a word boundary with "…"; never leaves a dangling escape backslash."""
    if discord_length(text) <= limit:
        return text
    cut = text[: max(limit - 2, 0)]
    while discord_length(cut) > limit - 2:
        cut = cut[:-1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    cut = re.sub(r"(?<!\\)(\\\\)*\\$", lambda m: m.group(0)[:-1], cut)   # an odd trailing "\" would eat "…"
    return cut.rstrip() + " …"


def as_question(text: str, limit: int) -> str:
    """A message's text cut (at a space) to what the engine accepts as a question."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def option_label(text: str, limit: int = LABEL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _fits(parts: Sequence[str], limit: int) -> bool:
    return discord_length("\n\n".join(parts)) <= limit


def _shrunk_quote(quote: Quote, render, budget: int) -> str:
    """Render fewer of the quote's sentences, then a shorter first sentence (cut at a space, marked "…").

    Every cut is a span of the verbatim text, so `quote.is_verbatim` still holds; words are never altered.
    """
    for n in range(len(quote.spans), 0, -1):
        text = render(dataclasses.replace(quote, spans=quote.spans[:n]))
        if discord_length(text) <= budget:
            return text
    start, end = quote.spans[0]
    cuts = [m.start() for m in re.finditer(r"\s", quote.text[start:end])]
    lo, hi, best = 0, len(cuts) - 1, None
    while lo <= hi:                      # the longest prefix, ending at a space, that fits
        mid = (lo + hi) // 2
        text = render(dataclasses.replace(quote, spans=((start, start + cuts[mid]),)))
        if discord_length(text) <= budget:
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else clip(render(quote), budget)


# ----------------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Page:
    """One message's worth of an answer: the content, and the results it holds (a quote folded into another
    as "also reported by" counts too: the next page starts after it)."""

    content: str
    results: list["Result"]
    quoted: tuple["Result", ...] = ()     # those whose words it quotes: not the ones folded in


def answer_page(answer: "Answer", offset: int, k: int, header: str | None = None,
                limit: int = MESSAGE_LIMIT) -> Page:
    """The rendered answer (index.render's blocks for the first k results) cut to what fits in one message.

    A block that does not fit starts the next page (More), unless it is the first: then its quote is shortened.
    """
    def head(shown: list["Result"]) -> list[str]:
        return ([header] if header else []) + answer_head(answer, {r.record.id for r in shown})

    def footer(count: int) -> str:
        return footer_line(answer.build, offset + 1, offset + max(count, 1))

    blocks = answer_blocks(answer.results[:k])
    every = [r for b in blocks for r in b.results]
    texts: list[str] = []
    shown: list["Result"] = []
    quoted: list["Result"] = []
    for block in blocks:
        if _fits([*head(every), *texts, block.text, footer(len(shown) + len(block.results))], limit):
            texts.append(block.text)
            shown += block.results
            quoted.append(block.results[0])
            continue
        if not shown:
            budget = limit - discord_length("\n\n".join([*head(every), footer(len(block.results))])) \
                - discord_length(block.citation) - 3
            texts.append(_shrunk_quote(block.quote, quote_markdown, budget) + "\n" + block.citation)
            shown += block.results
            quoted.append(block.results[0])
        break
    # Only the names of the passages this page shows.
    return Page(clip("\n\n".join([*head(shown), *texts, footer(len(shown))]), limit), shown, tuple(quoted))


QUESTION_PREFIX = "**Q:** "
SOURCE_PREFIX = "*Only in "
CONTEXT_PREFIX = "*Following up on: "


def question_line(question: str) -> str:
    """The question at the top of a public answer: readers see what was asked, and buttons read it back."""
    return QUESTION_PREFIX + escape_markdown(clean(question, 1000))


def question_of(content: str) -> str | None:
    """The question an answer message was made for (its first line), or None for a message without one."""
    first = content.split("\n", 1)[0]
    if not first.startswith(QUESTION_PREFIX):
        return None
    return re.sub(r"\\(.)", r"\1", first[len(QUESTION_PREFIX):]).replace("\\n", " ") or None


def context_line(context: str) -> str:
    """Under a follow-up's question in a thread: the earlier question it was searched with."""
    return CONTEXT_PREFIX + escape_markdown(clean(context, 300)) + "*"


def context_of(content: str) -> str | None:
    """The earlier question a follow-up answer was searched with (its context line), if any."""
    for line in content.split("\n")[1:3]:
        if line.startswith(CONTEXT_PREFIX) and line.endswith("*"):
            return re.sub(r"\\(.)", r"\1", line[len(CONTEXT_PREFIX):-1]) or None
    return None


def header_of(content: str) -> str | None:
    """The answer's header lines (question, "Only in …", "Following up on …"), kept when More pages."""
    lines = []
    for line in content.split("\n"):
        if not line.startswith((QUESTION_PREFIX, SOURCE_PREFIX, CONTEXT_PREFIX)):
            break
        lines.append(line)
    return "\n".join(lines) or None


def abstention_text(answer: "Answer", header: str | None = None) -> str:
    """No answer, and why; the footer still names the build that was searched."""
    text = abstention_markdown(answer.search.question, answer.abstained or "")
    text = f"{header}\n{text}" if header else text
    return clip(text, MESSAGE_LIMIT - 200) + "\n" + footer_line(answer.build)


# ----------------------------------------------------------------------------------- quote cards


def attribution_line(record: "PassageRecord") -> str:
    """The citation's first line, with "also in N other articles" folded into it: one line under a card."""
    line = source_line(record)
    others = len(record.places) - 1
    if others:
        line += f" · also in {others} other article" + ("s" if others > 1 else "")
    return line


def quote_card(record: "PassageRecord", quote: Quote | None = None, limit: int = MESSAGE_LIMIT) -> str:
    """The passage's own words as a blockquote plus one attribution line, with nothing highlighted.

    The whole passage when it fits; else the sentences the answer quoted; else a shorter cut, marked "…".
    """
    attribution = attribution_line(record)
    budget = limit - discord_length(attribution) - 1
    whole = Quote.whole(record.text)
    body = quote_markdown(whole)
    if discord_length(body) > budget:
        base = dataclasses.replace(quote, highlights=()) if quote is not None and quote.text == record.text else whole
        body = _shrunk_quote(base, quote_markdown, budget)
    return clip(body + "\n" + attribution, limit)


def not_found_text(passage_id: str, closest: Sequence[str]) -> str:
    wanted = option_label(passage_id.replace("`", ""), 40) or "?"
    text = f"No such passage: `{wanted}`."
    if closest:
        return text + " Closest IDs: " + ", ".join(f"`{c}`" for c in closest) + "."
    return text + " Passage IDs are the `code` at the end of each citation."


# ----------------------------------------------------------------------------------- info


def _article_line(number: int, article: "ArticleInfo", paragraphs: int) -> str:
    title = option_label(article.title, 150)
    label = link_markdown(title, article.url) if article.url else f"*{escape_field(title)}*"
    parts = [label] + [escape_field(x) for x in (article.outlet, article.author, article.published) if x]
    parts.append(f"{paragraphs} paragraph" + ("" if paragraphs == 1 else "s"))
    return f"{number}. " + " · ".join(parts)


def sources_page(rows: Sequence[tuple["ArticleInfo", int]], offset: int, total: int,
                 limit: int = MESSAGE_LIMIT) -> tuple[str, int]:
    """The indexed articles from offset, as many as fit; returns the content and how many it lists."""
    lines: list[str] = []
    for i, (article, paragraphs) in enumerate(rows):
        line = _article_line(offset + i + 1, article, paragraphs)
        head = f"**Indexed articles** ({offset + 1}–{offset + len(lines) + 1} of {total})"
        if lines and discord_length("\n".join([head, *lines, line])) > limit:
            break
        lines.append(line)
    if not lines:
        return "No articles are indexed yet.", 0
    head = f"**Indexed articles** ({offset + 1}–{offset + len(lines)} of {total})"
    return clip("\n".join([head, *lines]), limit), len(lines)


def about_text(build: "BuildRecord", articles: int) -> str:
    return (
        f"**Newsdesk** answers questions from {articles} indexed articles ({build.passages} passages) "
        "with verbatim quotes and their sources.\n"
        f"Index: {build.label}, built in {build.seconds:.1f} s.\n"
        "**How to cite:** every quote ends with its source and a passage ID in `code`. "
        "Post a passage with `/cite id` or the **Cite** button under an answer. "
        "To check a claim, right-click its message → Apps → **Find sources**."
    )


# ----------------------------------------------------------------------------------- /reindex


def progress_text(stage: str, done: int, total: int, elapsed: float) -> str:
    count = f" {done}/{total}" if total > 1 else ""
    return f"⏳ Rebuilding the index… {escape_markdown(stage)}{count} · {elapsed:.0f} s"


def report_text(report: "BuildReport") -> str:
    return clip(f"✅ **Rebuild finished** in {report.seconds:.1f} s.\n" + escape_markdown(report.summary()))


def failure_text(error: Exception, build: "BuildRecord | None", show_paths: bool = False) -> str:
    """The rebuild's failure; its file paths only for the owner (a server manager is not the operator)."""
    still = f"The previous index ({build.label}) keeps answering." if build else "No index is loaded yet."
    reason = str(error) if show_paths else redact_paths(str(error))
    return clip(f"❌ **Rebuild failed:** {escape_markdown(reason)}\n{still}")
