"""The fetch run and the add command: feeds polled, pages fetched safely, new articles written, all accounted for.

Network waits on the event loop (aiohttp); extraction, feed parsing and file writes run in worker
threads, so a bot polling feeds keeps answering. Every item of every feed ends in one of: added,
already in the corpus, skipped with a reason, or left for the next fetch (the per-feed cap).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import NewsdeskError, QueryError
from .feeds import MAX_ATTEMPTS, Feed, FeedItem, Ledger, locked, now, parse_feed
from .fetch import FEED_TYPES, PAGE_TYPES, Fetcher, FetchError, FetchSettings, Resolve, check_url
from .ingest import Added, ArticleSkipped, copy_in, file_article, page_to_markdown, text_key, url_keys, write_new
from .inert import clean

if TYPE_CHECKING:
    from .build import BuildReport

__all__ = ("FetchReport", "Skipped", "poll_feeds", "add_url", "add_file", "add_feed", "remove_feed", "list_feeds")

_log = logging.getLogger(__name__)


@dataclass
class Skipped:
    url: str
    reason: str

    def __str__(self) -> str:
        return f"{clean(self.url, 200)}: {self.reason}"


@dataclass
class FetchReport:
    feeds: int = 0
    polled: list[str] = field(default_factory=list)         # one line per feed: what it answered
    added: list[Added] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    already: int = 0                                       # items seen at an earlier fetch (added or given up)
    left: list[str] = field(default_factory=list)          # feeds with new items over the per-feed cap
    build: "BuildReport | None" = None

    def summary(self) -> str:
        lines = [f"Polled {self.feeds} feed{'s' * (self.feeds != 1)}:"] + [f"  {line}" for line in self.polled]
        lines.append(f"Added {len(self.added)} article{'s' * (len(self.added) != 1)}" + (":" if self.added else "."))
        lines += [f"  + {a.path}  {clean(a.article.title, 100)} ({len(a.article.paragraphs)} paragraphs)" for a in self.added]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)}:")
            lines += [f"  - {s}" for s in self.skipped]
        lines.append(f"Seen at earlier fetches (added or given up): {self.already}.")
        lines += [f"Left for the next fetch: {line}" for line in self.left]
        if self.build is not None:
            lines.append(self.build.summary())
        return "\n".join(lines)


async def _page(fetcher: Fetcher, ledger: Ledger, corpus: Path, link: str, outlet: str | None,
                report: FetchReport) -> Added | None:
    """Fetch one article page and add it unless it is a duplicate; failures go to the report."""
    keys = url_keys(link)
    try:
        fetched = await fetcher.get(link, PAGE_TYPES)
        keys = url_keys(link, fetched.url)
        if (where := ledger.known(keys[1:])) is not None:
            raise ArticleSkipped(f"same article as {where} (same URL after redirects)")
        markdown, folder, canonical = await asyncio.to_thread(page_to_markdown, fetched, now(), outlet)
        keys = url_keys(link, fetched.url, canonical)
        if (where := ledger.known(keys)) is not None:
            raise ArticleSkipped(f"same article as {where} (same canonical URL)")
        added = await asyncio.to_thread(_write_unless_known, corpus, folder, markdown, ledger)
    except FetchError as e:
        key = keys[0] if keys else link
        reason = e.message
        if e.transient:
            tries = ledger.attempts.get(key, 0) + 1
            if tries < MAX_ATTEMPTS:
                ledger.attempts[key] = tries
                reason += f" (will try again: attempt {tries} of {MAX_ATTEMPTS})"
            else:
                reason += f" (given up after {MAX_ATTEMPTS} attempts)"
                ledger.remember(keys, f"skipped: {e.message}")
        else:
            ledger.remember(keys, f"skipped: {e.message}")
        report.skipped.append(Skipped(link, reason))
        return None
    ledger.remember(keys + [text_key(added.article)], added.path)
    report.added.append(added)
    return added


def _write_unless_known(corpus: Path, folder: str, markdown: str, ledger: Ledger) -> Added:
    from .corpus import parse_bytes

    (article,), _ = parse_bytes(markdown.encode("utf-8"), f"{folder}/new.md")
    if (where := ledger.known([text_key(article)])) is not None:
        raise ArticleSkipped(f"same text as {where}")
    return write_new(corpus, folder, markdown)


async def poll_feeds(corpus: Path, settings: FetchSettings, resolve: Resolve | None = None) -> FetchReport:
    """Poll every feed once and add the new articles (at most settings.max_items a feed); no rebuild."""
    report = FetchReport()
    with locked(corpus) as ledger:
        report.feeds = len(ledger.feeds)
        async with Fetcher(settings, resolve) as fetcher:
            for feed in ledger.feeds:
                await _poll_one(fetcher, ledger, corpus, feed, settings, report)
    return report


async def _poll_one(fetcher: Fetcher, ledger: Ledger, corpus: Path, feed: Feed, settings: FetchSettings,
                    report: FetchReport) -> None:
    feed.last_polled = now()
    try:
        fetched = await fetcher.get(feed.url, FEED_TYPES, etag=feed.etag, last_modified=feed.last_modified)
        if fetched.not_modified:
            feed.last_result = "not modified"
            report.polled.append(f"{feed.url}: not modified (304)")
            return
        title, items = await asyncio.to_thread(parse_feed, fetched.body, fetched.url)
    except NewsdeskError as e:     # FetchError, UrlRefused, or a feed that cannot be read
        feed.last_result = f"failed: {e.message}"
        report.polled.append(f"{feed.url}: failed: {e.message}")
        report.skipped.append(Skipped(feed.url, f"feed {e.message}"))
        return
    feed.title = title or feed.title
    added_before, skipped_before = len(report.added), len(report.skipped)
    taken, left, done = 0, 0, True
    seen_now: dict[str, str] = {}
    known_before = set(ledger.seen)
    for item in items:
        keys = url_keys(item.link)
        if not keys:
            report.skipped.append(Skipped(item.link, "not an http(s) link"))
            continue
        if keys[0] in seen_now and keys[0] not in known_before:    # reported once, at the fetch that met it
            report.skipped.append(Skipped(item.link, f"repeats {seen_now[keys[0]]} (same canonical URL)"))
            continue
        seen_now.setdefault(keys[0], item.link)
        if ledger.known(keys) is not None:
            report.already += 1
            continue
        if taken >= settings.max_items:      # the rest waits: one feed never holds up the others for long
            left += 1
            continue
        taken += 1
        before = len(report.skipped)
        await _page(fetcher, ledger, corpus, item.link, title, report)
        if len(report.skipped) > before and keys[0] in ledger.attempts:
            done = False                      # a page to try again: the feed must be read in full next time
    if left:
        report.left.append(f"{feed.url}: {left} new items (at most {settings.max_items} per feed per fetch)")
    # The validators are kept only when every item was dealt with; otherwise the next fetch must read
    # the feed in full again, or the items left over would hide behind a 304 for ever.
    if done and not left:
        feed.etag, feed.last_modified = fetched.etag, fetched.last_modified
    else:
        feed.etag = feed.last_modified = None
    feed.last_result = f"{len(report.added) - added_before} added, {len(report.skipped) - skipped_before} skipped"
    report.polled.append(f"{feed.url}: {len(items)} items, {feed.last_result}")


async def add_url(corpus: Path, url: str, settings: FetchSettings, resolve: Resolve | None = None) -> Added:
    """Fetch one page and add its article; an error names why it was not added."""
    with locked(corpus) as ledger:
        report = FetchReport()
        if (where := ledger.known(url_keys(url))) is not None:
            raise QueryError(f"Not added: {clean(url, 200)}: already in the corpus as {where}.")
        async with Fetcher(settings, resolve) as fetcher:
            added = await _page(fetcher, ledger, corpus, url, None, report)
    if added is None:
        raise QueryError(f"Not added: {report.skipped[0]}")
    return added


async def add_file(corpus: Path, name: str, data: bytes) -> Added:
    """Copy a file into corpus/added/ if the corpus reader finds an article in it that the corpus lacks."""
    articles = await asyncio.to_thread(file_article, name, data)
    with locked(corpus) as ledger:
        keys = [text_key(a) for a in articles] + url_keys(*(a.url for a in articles))
        if len(articles) == 1 and (where := ledger.known(keys)) is not None:
            raise QueryError(f"Not added: {clean(name, 80)} is the same article as {where}.")
        relative = await asyncio.to_thread(copy_in, corpus, name, data)
        ledger.remember(keys, relative)
    first = articles[0]
    first.source = first.file = relative
    return Added(relative, first, first.url)


async def add_feed(corpus: Path, url: str, settings: FetchSettings, resolve: Resolve | None = None) -> tuple[Feed, int]:
    """Check that the URL serves a feed, then remember it; (the feed, its item count). Nothing is fetched
    from it yet, and its validators are not kept, so the next fetch reads it in full."""
    safe = check_url(url, settings)
    with locked(corpus) as ledger:
        if ledger.feed(safe) is not None:
            raise QueryError(f"The feed {safe} is already on the list.")
        async with Fetcher(settings, resolve) as fetcher:
            try:
                fetched = await fetcher.get(safe, FEED_TYPES)
                title, items = await asyncio.to_thread(parse_feed, fetched.body, fetched.url)
            except NewsdeskError as e:
                raise QueryError(f"Not added: {safe}: {e.message}") from None
        feed = Feed(safe, title, added_at=now())
        ledger.feeds.append(feed)
    return feed, len(items)


def remove_feed(corpus: Path, url: str) -> Feed:
    with locked(corpus) as ledger:
        feed = ledger.feed(url.strip())
        if feed is None:
            raise QueryError(f"No feed {clean(url, 200)} on the list.", "See them with: newsdesk feeds list")
        ledger.feeds.remove(feed)
    return feed


def list_feeds(corpus: Path) -> list[Feed]:
    return Ledger.load(corpus).feeds
