"""The bot's settings: environment variables first, then a `.env` file, then defaults."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from index.config import Settings, default_corpus, environment, read_dotenv

__all__ = ("Config", "ConfigError", "read_dotenv")

_log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line fit to print."""


@dataclass(frozen=True)
class Config:
    """Everything the bot needs to start; the token is kept out of repr() so it never reaches a log."""

    token: str | None = field(default=None, repr=False)
    db: Path = field(default_factory=lambda: Settings.resolve().db)
    corpus: Path = field(default_factory=default_corpus)
    guild_id: int | None = None
    admin_guilds: frozenset[int] = frozenset()   # servers whose managers may change the shared index
    api_base: str | None = None         # e.g. http://127.0.0.1:8080/api/v10 for a local test double
    gateway_url: str | None = None      # e.g. ws://127.0.0.1:8080/
    ask_cooldown: tuple[int, float] = (4, 30.0)   # /ask uses per person: rate per seconds
    post_limit: tuple[int, float] = (3, 30.0)      # public cards (/cite, Post, Cite) per person
    channel_post_limit: tuple[int, float] = (10, 60.0)   # public cards per channel
    progress_interval: float = 3.0      # seconds between /reindex progress edits
    view_timeout: float = 600.0         # buttons stay live this long (interaction tokens last 15 min)
    sources_per_page: int = 10
    drain_timeout: float = 8.0          # on shutdown, how long in-flight commands may take to finish
    guild_ready_timeout: float = 2.0
    shards: int | Literal["auto"] | None = None   # None: one gateway connection (commands.Bot)
    shard_ids: tuple[int, ...] | None = None       # the shards this process runs; None: all of them
    search: str = "embedded"            # NEWSDESK_SEARCH: or a search cluster's aggregator, sphinx://HOST:PORT

    @property
    def sharded(self) -> bool:
        return self.shards is not None

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"), **overrides) -> "Config":
        """Read DISCORD_TOKEN, NEWSDESK_DB, NEWSDESK_CORPUS, NEWSDESK_GUILD_ID, NEWSDESK_ADMIN_GUILDS,
        DISCORD_API_BASE, DISCORD_GATEWAY_URL, NEWSDESK_SHARDS, NEWSDESK_SHARD_IDS, NEWSDESK_SEARCH.

        The environment wins over the .env file; keyword overrides (None is ignored) win over both.
        """
        values = environment(env, dotenv)

        def get(name: str) -> str | None:
            value = values.get(name, "").strip()
            return value or None

        guild = get("NEWSDESK_GUILD_ID")
        if guild is not None and not guild.isdigit():
            raise ConfigError(f"NEWSDESK_GUILD_ID must be a server ID (digits), not {guild!r}.")
        admins = [part.strip() for part in (get("NEWSDESK_ADMIN_GUILDS") or "").split(",") if part.strip()]
        if not all(part.isdigit() for part in admins):
            raise ConfigError("NEWSDESK_ADMIN_GUILDS must be server IDs (digits) separated by commas, "
                              f"not {get('NEWSDESK_ADMIN_GUILDS')!r}.")
        shards, shard_ids = _shards(get("NEWSDESK_SHARDS"), get("NEWSDESK_SHARD_IDS"))
        # The engine's own resolution, so the bot and the CLI always agree on the database of a corpus.
        where = Settings.resolve(corpus=overrides.pop("corpus", None), db=overrides.pop("db", None),
                                 env=values, dotenv=None)
        settings: dict[str, Any] = {
            "token": get("DISCORD_TOKEN"),
            "db": where.db,
            "corpus": where.corpus,
            "guild_id": int(guild) if guild else None,
            "admin_guilds": frozenset(int(part) for part in admins),
            "api_base": (get("DISCORD_API_BASE") or "").rstrip("/") or None,
            "gateway_url": get("DISCORD_GATEWAY_URL"),
            "shards": shards,
            "shard_ids": shard_ids,
            "search": where.search,
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


def _shards(count: str | None, ids: str | None) -> tuple[int | Literal["auto"] | None, tuple[int, ...] | None]:
    """NEWSDESK_SHARDS (a count, or `auto`: Discord's recommendation) and NEWSDESK_SHARD_IDS (this process's slice)."""
    shards: int | Literal["auto"] | None
    if count is None:
        shards = None
    elif count.lower() == "auto":
        shards = "auto"
    elif count.isdigit() and int(count) > 0:
        shards = int(count)
    else:
        raise ConfigError(f"NEWSDESK_SHARDS must be a number of shards (1 or more) or auto, not {count!r}.")
    if ids is None:
        return shards, None
    if not isinstance(shards, int):
        # Every process must agree on the count, or guilds would be split two ways.
        raise ConfigError("NEWSDESK_SHARD_IDS needs NEWSDESK_SHARDS set to the total number of shards "
                          "(the same in every process); it is " + (repr(count) if count else "not set") + ".")
    parts = [part.strip() for part in ids.split(",")]
    numbers = [int(part) for part in parts if part.isdigit()]
    if len(numbers) < len(parts) or len(set(numbers)) < len(numbers) or max(numbers) >= shards:
        raise ConfigError(f"NEWSDESK_SHARD_IDS must be distinct shard numbers from 0 to {shards - 1} separated "
                          f"by commas, not {ids!r}.")
    return shards, tuple(sorted(numbers))
