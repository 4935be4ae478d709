"""Feeds and the ledger: which feeds to poll, what they answered last, and every article already taken.

Kept in `<corpus>/.newsdesk/feeds.json` beside the articles it put there, not in the database: the
database is a cache of the corpus that `index repair` may rebuild from the files, while ETags, the
feed list and the record of what was fetched or given up on cannot be derived from the files. It is
one small JSON file a person can read and fix, written atomically, hidden from the corpus scanner by
its dot folder, and it travels with the corpus (another corpus has its own feeds, as it has its own
database). A lock file beside it keeps two fetches (the bot's and a terminal's) from interleaving.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import NewsdeskError
from .inert import clean

__all__ = ("Feed", "Ledger", "FeedBusy", "parse_feed", "FeedItem", "MAX_ATTEMPTS")

_log = logging.getLogger(__name__)

STATE_DIR = ".newsdesk"
STATE_FILE = "feeds.json"
# A page that fails for a passing reason (timeout, 5xx) is tried at this many fetches, then given up.
MAX_ATTEMPTS = 3


class FeedBusy(NewsdeskError):
    """Another fetch or add holds the corpus's feed ledger."""

    exit_code = 7


@dataclass
class Feed:
    url: str
    title: str | None = None
    added_at: str = ""
    etag: str | None = None
    last_modified: str | None = None
    last_polled: str | None = None
    last_result: str | None = None


@dataclass
class FeedItem:
    link: str
    title: str | None
    published: str | None


@dataclass
class Ledger:
    """The state file's contents. `seen` maps a key ("url:…" canonical URL, "text:…" text hash) to the
    corpus file that holds it, or to "skipped: reason" for a page given up on."""

    feeds: list[Feed] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)     # url key -> failed attempts so far
    path: Path | None = None

    @classmethod
    def load(cls, corpus: Path) -> "Ledger":
        path = corpus / STATE_DIR / STATE_FILE
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, ValueError) as e:
            raise NewsdeskError(f"The feed list {path} cannot be read ({e}).",
                                "Fix or remove the file (removing it forgets the feeds and what was fetched).") from None
        return cls([Feed(**f) for f in data.get("feeds", [])], dict(data.get("seen", {})),
                   dict(data.get("attempts", {})), path)

    def save(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"feeds": [asdict(f) for f in self.feeds], "seen": self.seen, "attempts": self.attempts}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)      # a crash leaves the old file or the new one, never half of one

    def feed(self, url: str) -> Feed | None:
        return next((f for f in self.feeds if f.url == url), None)

    def known(self, keys: list[str]) -> str | None:
        """Where the first of these keys was met before, if anywhere."""
        return next((self.seen[k] for k in keys if k in self.seen), None)

    def remember(self, keys: list[str], where: str) -> None:
        for key in keys:
            self.seen.setdefault(key, where)
            self.attempts.pop(key, None)


@contextmanager
def locked(corpus: Path) -> Iterator[Ledger]:
    """The ledger, held for one fetch, add or feed edit; saved on leaving normally."""
    folder = corpus / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeedBusy("A fetch or an add is already running for this corpus.",
                           "Try again when it has finished.") from None
        try:
            ledger = Ledger.load(corpus)
            yield ledger
            ledger.save()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_feed(body: bytes, url: str) -> tuple[str | None, list[FeedItem]]:
    """The feed's title and items, newest as the feed orders them. Raises NewsdeskError for no feed.

    feedparser is given bytes, never a URL: it would fetch a URL itself, past every check in fetch.py.
    """
    import feedparser

    parsed = feedparser.parse(body, response_headers={"content-location": url})
    items = []
    for entry in parsed.entries:
        link = entry.get("link") or (entry.get("id") if str(entry.get("id", "")).startswith("http") else None)
        if not link:
            continue
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        items.append(FeedItem(link, entry.get("title"), time.strftime("%Y-%m-%d", when) if when else None))
    # feedparser reads what it can of a broken feed ("bozo"); with items that is a feed, without none.
    if not items and (parsed.bozo or not parsed.feed.get("title")):
        reason = parsed.get("bozo_exception")
        raise NewsdeskError(f"not a readable feed ({clean(str(reason), 100) if reason else 'no items'})")
    return parsed.feed.get("title"), items


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
