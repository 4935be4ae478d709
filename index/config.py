"""Where the engine's files are: the corpus and its database, from flags, the environment and `.env` alike.

The CLI and the bot both resolve their settings here, so they can never disagree about which database
holds which corpus.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ("Settings", "read_dotenv", "environment", "default_corpus", "default_db")

_log = logging.getLogger(__name__)


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (optionally `export KEY=...`, quoted values, # comments); a missing file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
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


def environment(env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> dict[str, str]:
    """The `.env` file's values overlaid by the process environment (the environment wins)."""
    return {**(read_dotenv(dotenv) if dotenv else {}), **(os.environ if env is None else env)}


def default_corpus() -> Path:
    """The articles shipped with the package (wherever it is installed)."""
    from .shipped import shipped_corpus

    return shipped_corpus()


def default_db(env: Mapping[str, str] | None = None) -> Path:
    """newsdesk.db in the user's data folder ($XDG_DATA_HOME, else ~/.local/share)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "newsdesk" / "newsdesk.db"


@dataclass(frozen=True)
class Settings:
    """The corpus folder (or file) and the database that indexes it."""

    db: Path
    corpus: Path
    search: str = "embedded"     # or a search cluster's aggregator, sphinx://HOST:PORT (index/sphinx.py)

    @classmethod
    def resolve(cls, corpus: Path | str | None = None, db: Path | str | None = None,
                env: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"),
                search: str | None = None) -> "Settings":
        """Flags first, then $NEWSDESK_CORPUS / $NEWSDESK_DB (environment or .env), then the defaults.

        One database per corpus: the default database holds the configured corpus ($NEWSDESK_CORPUS, else
        the shipped one); another corpus given by flag, without a database, gets its own file beside it,
        so trying another corpus never overwrites the index the bot serves.
        """
        values = environment(env, dotenv)

        def get(name: str) -> str | None:
            value = values.get(name, "").strip()
            return value or None

        search = (search or "").strip() or get("NEWSDESK_SEARCH") or "embedded"
        configured = _folder(get("NEWSDESK_CORPUS")) or default_corpus()
        corpus_path = _folder(corpus) or configured
        db_given = db if db is not None else get("NEWSDESK_DB")
        if db_given:
            return cls(Path(db_given).expanduser(), corpus_path, search)
        home_db = default_db(values)
        if corpus_path == configured:
            return cls(home_db, corpus_path, search)
        digest = hashlib.sha256(str(corpus_path).encode()).hexdigest()[:8]
        return cls(home_db.with_name(f"{corpus_path.stem}-{digest}.db"), corpus_path, search)


def _folder(value: Path | str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None
