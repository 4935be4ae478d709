"""A web page's article: its paragraphs and metadata, without menus, cookie banners, share bars or comments.

trafilatura finds the main text and reads the metadata (og:, JSON-LD, <meta>, canonical link); this
module turns its XML into paragraph blocks and section headings, and drops the boilerplate it lets
through (a paywall teaser inside the article, a "Subscribe" heading). Used for fetched pages and for
.html files in the corpus alike.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

__all__ = ("Page", "extract_html")

_log = logging.getLogger(__name__)

# Containers that are never the story, whatever the extractor thinks: trafilatura keeps a paywall
# teaser that sits inside <article>, and cookie and newsletter boxes whose class names say what they are.
_PRUNE = [
    "//*[contains(@class, 'paywall') or contains(@id, 'paywall')]",
    "//*[contains(@class, 'cookie') or contains(@id, 'cookie') or contains(@class, 'consent')]",
    "//*[contains(@class, 'newsletter') or contains(@class, 'subscribe') or contains(@class, 'promo')]",
    "//*[contains(@class, 'share') or contains(@class, 'social') or contains(@class, 'related')]",
    "//*[contains(@class, 'comments') or @id='comments']",
    "//nav | //footer | //aside",
]

# A paragraph or heading that is site furniture, not reporting: matched whole (short lines) ...
_FURNITURE = re.compile(
    r"(subscribe( now| today)?|sign (up|in)|log ?in|register|advertisement|advert|sponsored( content)?|"
    r"share( this( article| story)?)?( on \w+)?|read more|related( stories| articles| content)?|"
    r"comments?|most (read|popular)|accept( all)?( cookies)?|cookie (settings|policy)|skip to (main )?content|"
    r"menu|home|search|follow us( on \w+)?|newsletter)[.!:]?",
    re.IGNORECASE)
# ... or by the sentences a banner or a paywall always has.
_BANNER = re.compile(
    r"\bwe use cookies\b|\bour cookie policy\b|\bsubscribe to (read|continue|unlock)\b|\balready a subscriber\b|"
    r"\bsign up (for|to) our newsletter\b|\ball rights reserved\b|\bthis article is for subscribers\b",
    re.IGNORECASE)


# trafilatura keeps a canonical URL only when its host looks like a public domain; a page's own
# statement of its address is worth keeping either way (links.safe_url validates it later).
_CANONICAL = re.compile(r"<link\b[^>]*\brel=[\"']?canonical\b[^>]*>|<meta\b[^>]*\bproperty=[\"']?og:url\b[^>]*>",
                        re.IGNORECASE)
_HREF = re.compile(r"\b(?:href|content)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


@dataclass
class Page:
    title: str | None = None
    url: str | None = None               # canonical, as the page states it (not yet validated)
    outlet: str | None = None
    author: str | None = None
    published: str | None = None
    blocks: list[str] = field(default_factory=list)
    headings: set[int] = field(default_factory=set)    # indexes of blocks that are section headings


def _config():
    from trafilatura.settings import use_config

    config = use_config()
    # Below MIN_EXTRACTED_SIZE (250 characters by default) trafilatura falls back to a baseline that
    # glues a short article's paragraphs (and its byline) into one: a brief keeps its paragraphs instead.
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
    config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
    return config


_CONFIG = None


def extract_html(html: str, url: str | None = None) -> Page:
    """The article in a page; a page with no article text gives a Page with no blocks."""
    global _CONFIG
    import trafilatura          # imported here: it costs a quarter of a second, and only pages need it
    from lxml import etree

    if _CONFIG is None:
        _CONFIG = _config()

    xml = trafilatura.extract(html, url=url, output_format="xml", with_metadata=True, include_comments=False,
                              include_tables=False, include_images=False, include_links=False,
                              # favor_recall keeps section headings the default mode drops on small pages
                              favor_recall=True, deduplicate=False, prune_xpath=_PRUNE, config=_CONFIG)
    if not xml:
        return Page()
    doc = etree.fromstring(xml.encode("utf-8"))
    page = Page(title=_attr(doc, "title"), url=_attr(doc, "url"), outlet=_attr(doc, "sitename"),
                author=_attr(doc, "author"), published=_attr(doc, "date"))
    if page.url is None:
        page.url = next((m.group(1) for tag in _CANONICAL.findall(html[:100_000]) if (m := _HREF.search(tag))), None)
    main = doc.find("main")
    for element in (main if main is not None else []):
        if element.tag == "head":
            text = _text(element)
            if text and text != page.title and not _is_furniture(text):
                if page.blocks and len(page.blocks) - 1 in page.headings:
                    page.blocks.pop()            # a heading with nothing under it before the next one
                    page.headings.discard(len(page.blocks))
                page.headings.add(len(page.blocks))
                page.blocks.append(text)
        elif element.tag == "list":
            page.blocks += [t for item in element.iter("item") if (t := _text(item)) and not _is_furniture(t)]
        elif element.tag in ("p", "quote"):
            text = _text(element)
            if page.title and text.startswith(page.title + " ") and not page.blocks:
                # On a page too small for the main algorithm, the fallback glues the headline to ¶1.
                text = text[len(page.title) + 1:]
            if text and not _is_furniture(text):
                page.blocks.append(text)
    if page.blocks and len(page.blocks) - 1 in page.headings:   # a trailing heading introduces nothing
        page.headings.discard(len(page.blocks) - 1)
        page.blocks.pop()
    return page


def _attr(doc, name: str) -> str | None:
    value = " ".join((doc.get(name) or "").split())
    return value or None


def _text(element) -> str:
    return " ".join("".join(element.itertext()).split())


def _is_furniture(text: str) -> bool:
    return bool(_FURNITURE.fullmatch(text) or (len(text) < 300 and _BANNER.search(text)))
