"""Every field an article brings (title, outlet, URL, author) is shown inert, in answers, cards and /sources."""

from __future__ import annotations

import re

import pytest

from tests.bot_harness import content_of, quoted_pieces, running, slash
from tests.fakediscord import FakeDiscord

from bot.config import Config
from index.quotes import Quote
from index.links import safe_url
from index.render import link_markdown, quote_markdown, source_line
from index.store import ArticleInfo, Located, PassageRecord

INJECTED_URL = "https://x/a>) **INJECTED** [Verify](https://evil/login) <https://y/"

INJECTED = f"""---
title: Zork ferry **resumes** [Verify](https://evil/login)
url: {INJECTED_URL}
outlet: Evil <@&1> Times
author: _Mallory_ ~~Stone~~
published: 2024-04-01
---

The zork ferry resumed its crossings on Monday, the port authority said.
"""

SCRIPTED = """---
title: Plugh canal closes
url: javascript:alert(document.cookie)
outlet: Plugh Post
---

The plugh canal closed for dredging, see https://example.org/notice_(plugh)/**draft** for details.
"""


async def answered(fake: FakeDiscord, question: str) -> str:
    payload, _ = await slash(fake, "ask", {"question": question})
    return (await fake.wait_for_webhook(payload)).json["content"]


def links(content: str) -> list[str]:
    """The targets of every masked link [text](<target>) or [text](target) Discord would render."""
    return re.findall(r"(?<!\\)\]\((?!\\)<?([^)>\s]+)>?\)", content)


@pytest.mark.asyncio
async def test_injected_and_script_urls_render_inert(fake: FakeDiscord, config: Config) -> None:
    (config.corpus / "950_injected.md").write_text(INJECTED, encoding="utf-8")
    (config.corpus / "951_scripted.md").write_text(SCRIPTED, encoding="utf-8")
    async with running(fake, config) as bot:
        await bot.desk.rebuild()
        content = await answered(fake, "when did the zork ferry resume?")
        citation = next(line for line in content.splitlines() if line.startswith("— "))
        assert links(content) == [] and "https://evil" not in content       # no link, and none clickable
        assert "**INJECTED**" not in content and "**resumes**" not in content
        assert citation.startswith(r"— *Zork ferry \*\*resumes\*\* \[Verify\]\(https\://evil/login\)* · ")
        assert r"Evil \<@&1\> Times · by \_Mallory\_ \~\~Stone\~\~ · 2024-04-01" in citation

        content = await answered(fake, "why did the plugh canal close?")
        citation = next(line for line in content.splitlines() if line.startswith("— "))
        assert citation.startswith("— *Plugh canal closes* · Plugh Post")
        assert links(content) == []                                    # nothing linked, least of all the script
        quote = next(line for line in content.splitlines() if line.startswith("> "))
        assert "see <https://example.org/notice_(plugh)/draft> for" in quote   # bare URL: shown, not unfurled
        record = await bot.desk.cite(re.findall(r"`([a-z0-9]+)`$", citation)[0])
        assert all(piece in record.text for piece in quoted_pieces(content.split("\n\n")[0]))

        _, callback = await slash(fake, "sources")
        listing = content_of(callback)
        assert links(listing) == ["https://example.com/news/qwerty-harbour"]
        assert "javascript" not in listing and "**INJECTED**" not in listing


def test_a_stored_url_is_checked_again_when_rendered() -> None:
    """A database written before URLs were checked may still hold one: the renderer validates it again."""
    def cited(url: str) -> str:
        article = ArticleInfo("a.md", "A [title](https://evil/x)", url, "Outlet", "2024-01-01")
        return source_line(PassageRecord("abc1234", "text", (Located(article, 1, 1, None),)))

    assert cited(INJECTED_URL).startswith(r"— *A \[title\]\(https\://evil/x\)* (https\://x/a\>\) \*\*INJECTED\*\* "
                                          r"\[Verify\]\(https\://evil/login\) \<https\://y/) · Outlet")
    assert cited("javascript:alert(document.cookie)").startswith(
        r"— *A \[title\]\(https\://evil/x\)* (javascript:alert\(document.cookie\)) · Outlet")
    for url in (INJECTED_URL, "javascript:alert(document.cookie)"):
        assert links(cited(url)) == [] and "://" not in cited(url).replace(r"\://", "")
    assert links(cited("https://x/a>)[b]")) == ["https://x/a%3E%29%5Bb%5D"]


def test_safe_url_allows_only_http_and_encodes_what_could_escape() -> None:
    assert safe_url("https://x/a>)[b]") == "https://x/a%3E%29%5Bb%5D"
    for bad in ("javascript:alert(1)", "data:text/html,x", "ftp://x/y", "https:///nohost", "//evil/x", "", None,
                INJECTED_URL):
        assert safe_url(bad) is None, bad
    assert link_markdown("A [b]", "javascript:x") == r"*A \[b\]* (javascript:x)"
    assert link_markdown("A", "http://e.com/x", escape=False) == "A <http://e.com/x>"


def test_a_bare_url_in_a_quote_is_neither_bolded_nor_unfurled() -> None:
    text = "Read https://example.com/report_2024 now."
    start = text.index("report")
    quote = Quote(text, ((0, len(text)),), ((start, start + 6), (text.index("now"), text.index("now") + 3)))
    assert quote_markdown(quote) == "> Read <https://example.com/report_2024> **now**."
    assert quote_markdown(quote, escape=False) == "> Read https://example.com/report_2024 **now**."
