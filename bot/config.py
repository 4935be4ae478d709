"""The bot's settings: environment variables first, then a `.env` file, then defaults."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from index.desk import default_corpus, default_db

__all__ = ("Config", "ConfigError", "read_dotenv")

_log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line fit to print."""


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export KEY=...`, quoted values, # comments); a missing file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Config:
    """Everything the bot needs to start; the token is kept out of repr() so it never reaches a log."""

    token: str | None = field(default=None, repr=False)
    db: Path = field(default_factory=default_db)
    corpus: Path = field(default_factory=default_corpus)
    guild_id: int | None = None
    api_base: str | None = None         # e.g. http://127.0.0.1:8080/api/v10 for a local test double
    gateway_url: str | None = None      # e.g. ws://127.0.0.1:8080/
    ask_cooldown: tuple[int, float] = (4, 30.0)   # /ask uses per person: rate per seconds
    progress_interval: float = 3.0      # seconds between /reindex progress edits
    view_timeout: float = 600.0         # buttons stay live this long (interaction tokens last 15 min)
    sources_per_page: int = 10
    drain_timeout: float = 8.0          # on shutdown, how long in-flight commands may take to finish
    guild_ready_timeout: float = 2.0

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"), **overrides) -> "Config":
        """Read DISCORD_TOKEN, NEWSDESK_DB, NEWSDESK_CORPUS, NEWSDESK_GUILD_ID, DISCORD_API_BASE, DISCORD_GATEWAY_URL.

        The environment wins over the .env file; keyword overrides (None is ignored) win over both.
        """
        values = {**(read_dotenv(dotenv) if dotenv else {}), **(os.environ if env is None else env)}

        def get(name: str) -> str | None:
            value = values.get(name, "").strip()
            return value or None

        guild = get("NEWSDESK_GUILD_ID")
        if guild is not None and not guild.isdigit():
            raise ConfigError(f"NEWSDESK_GUILD_ID must be a server ID (digits), not {guild!r}.")
        settings = {
            "token": get("DISCORD_TOKEN"),
            "db": Path(get("NEWSDESK_DB")) if get("NEWSDESK_DB") else default_db(),
            "corpus": Path(get("NEWSDESK_CORPUS")) if get("NEWSDESK_CORPUS") else default_corpus(),
            "guild_id": int(guild) if guild else None,
            "api_base": (get("DISCORD_API_BASE") or "").rstrip("/") or None,
            "gateway_url": get("DISCORD_GATEWAY_URL"),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)
