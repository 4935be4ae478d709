"""Fixtures and helpers for the bot tests: a corpus copy, a real SQLite index, the fake Discord, the real bot."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from bot.app import NewsdeskBot
from bot.config import Config
from index.desk import Newsdesk

from tests.fakediscord import EPHEMERAL, GUILD_ID, MEMBER, FakeDiscord, FakeUser, RecordedRequest, run_bot

__all__ = (
    "SHIPPED_CORPUS", "HAZARD_ARTICLE", "LINKED_ARTICLE", "make_corpus",
    "index_template", "corpus_dir", "db_path", "fake", "config", "bot", "running",
    "slash", "callback_of", "button", "content_of", "is_ephemeral", "quoted_pieces", "passage_ids", "assert_within_limits",
    "Gate",
)

SHIPPED_CORPUS = Path(__file__).resolve().parent.parent / "corpus"

# Markdown and mention syntax inside corpus text: quoted, it must neither ping anyone nor break the layout.
HAZARD_ARTICLE = """Zyxwv council notice

The zyxwv council told @everyone and <@&123> that **bold** and `code` and _under_ stay literal ~~here~~ || > not a quote [link](http://example.com) # no heading.

A second paragraph about the weather, unrelated to anything else.
"""

LINKED_ARTICLE = """---
title: Qwerty harbour reopens
url: https://example.com/news/qwerty-harbour
outlet: Example Gazette
published: 2024-03-05
---

The qwerty harbour reopened on Tuesday after a week of repairs, officials said.
"""


def make_corpus(dest: Path) -> Path:
    """A copy of the shipped corpus plus two small articles: mention/markdown hazards, and full metadata."""
    shutil.copytree(SHIPPED_CORPUS, dest)
    (dest / "900_hazard.txt").write_text(HAZARD_ARTICLE, encoding="utf-8")
    (dest / "901_linked.md").write_text(LINKED_ARTICLE, encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def index_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Built once per session; each test copies it (a rebuild would then find nothing to re-read)."""
    root = tmp_path_factory.mktemp("template")
    corpus, db = make_corpus(root / "corpus"), root / "newsdesk.db"

    async def build() -> None:
        desk = await Newsdesk.open(db, corpus)
        await desk.close()

    asyncio.run(build())
    return corpus, db


@pytest.fixture
def corpus_dir(tmp_path: Path, index_template: tuple[Path, Path]) -> Path:
    return Path(shutil.copytree(index_template[0], tmp_path / "corpus"))


@pytest.fixture
def db_path(tmp_path: Path, index_template: tuple[Path, Path], corpus_dir: Path) -> Path:
    db = tmp_path / "newsdesk.db"
    shutil.copyfile(index_template[1], db)
    return db


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def config(fake: FakeDiscord, corpus_dir: Path, db_path: Path) -> Config:
    """Fast settings: short progress interval and ready timeout, a cooldown nobody hits by accident; the fake's
    server is an admin server (NEWSDESK_ADMIN_GUILDS)."""
    return Config(token=fake.token, db=db_path, corpus=corpus_dir, progress_interval=0.02, guild_ready_timeout=0.05,
                  ask_cooldown=(100, 1.0), drain_timeout=2.0, view_timeout=60.0, admin_guilds=frozenset({GUILD_ID}))


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, config: Config, **changes: Any) -> AsyncIterator[NewsdeskBot]:
    """The real bot, logged in to the fake and ready; closed (after draining) on exit."""
    settings = dataclasses.replace(config, **changes)
    async with run_bot(lambda: NewsdeskBot(settings), fake) as bot:
        yield bot
    fake.assert_no_unexpected()


@pytest_asyncio.fixture
async def bot(fake: FakeDiscord, config: Config) -> AsyncIterator[NewsdeskBot]:
    async with running(fake, config) as bot:
        yield bot


# ------------------------------------------------------------------------------------------ helpers


async def slash(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, *,
                user: FakeUser = MEMBER, **kwargs: Any) -> tuple[dict[str, Any], RecordedRequest]:
    """Dispatch a slash command and wait for its interaction callback."""
    payload = await fake.interact(fake.chat_input(name, options, user=user, **kwargs))
    return payload, await fake.wait_for_callback(payload)


async def callback_of(fake: FakeDiscord, payload: dict[str, Any]) -> RecordedRequest:
    await fake.interact(payload)
    return await fake.wait_for_callback(payload)


def button(message: dict[str, Any], name: str) -> str:
    """The custom_id of the message's button labelled name (or with that emoji): IDs carry state now."""
    for row in message.get("components") or []:
        for item in row["components"]:
            if name in (item.get("label"), (item.get("emoji") or {}).get("name")):
                return item["custom_id"]
    raise KeyError(f"no button {name!r} in {message.get('components')}")


def content_of(request: RecordedRequest) -> str:
    """The content a callback (type 4/7) or a webhook call carried."""
    body = request.json or {}
    return (body.get("data") or body).get("content") or ""


def is_ephemeral(request: RecordedRequest) -> bool:
    body = request.json or {}
    return bool(((body.get("data") or body).get("flags") or 0) & EPHEMERAL)


_BLOCKQUOTE = re.compile(r"^> ?(.*)$", re.MULTILINE)


def quoted_pieces(content: str) -> list[str]:
    """The verbatim pieces of every blockquote: bold markers dropped, escapes undone, split at "…" cuts."""
    pieces = []
    for line in _BLOCKQUOTE.findall(content):
        line = re.sub(r"(?<!\\)<(https?://[^>\s]+)>", r"\1", line)     # a bare URL shown as <url> (no unfurl)
        text = re.sub(r"\\(.)", r"\1", line.replace("**", ""))
        pieces += [p.strip() for p in text.split("…") if p.strip()]
    return pieces


def passage_ids(content: str) -> list[str]:
    """Passage IDs in citation lines (inline code after "¶N · ")."""
    return re.findall(r"¶\d+(?: \(part \d+\))? · `([a-z0-9]+)`", content)


def assert_within_limits(body: dict[str, Any]) -> None:
    """Discord's message limits, for a callback's data or a webhook body."""
    data = body.get("data") or body
    content = data.get("content") or ""
    assert len(content.encode("utf-16-le")) // 2 <= 2000, len(content)
    rows = data.get("components") or []
    assert len(rows) <= 5
    for row in rows:
        assert row["type"] == 1 and 1 <= len(row["components"]) <= 5
        for item in row["components"]:
            assert len(item.get("label") or "") <= 80
            assert len(item.get("custom_id") or "") <= 100
    assert data.get("allowed_mentions") == {"parse": []}


class Gate:
    """Wraps an async callable so each call waits until the test opens the gate (started/opened events)."""

    def __init__(self, func) -> None:
        self.func = func
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.finished = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        await self.opened.wait()
        try:
            return await self.func(*args, **kwargs)
        finally:
            self.finished.set()
