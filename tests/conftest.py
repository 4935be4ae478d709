"""Shared fixtures for the engine tests: real SQLite files in tmp_path, copies of the shipped corpus.

The bot tests' fixtures live in tests/bot_harness.py (index_template, corpus_dir, db_path, fake, bot, ...),
registered below as a plugin; the names here are chosen not to collide with those.
"""

from __future__ import annotations

pytest_plugins = ("tests.bot_harness",)

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from index.desk import Newsdesk

SHIPPED_CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@dataclass(frozen=True)
class SeedIndex:
    """The shipped corpus built once per session. Never write to either path: copy them (seed_db does)."""

    corpus: Path
    db: Path


def copy_db(source: Path, dest: Path) -> Path:
    """A database file and its WAL companions, if any, copied as one."""
    for suffix in ("", "-wal", "-shm"):
        if Path(str(source) + suffix).exists():
            shutil.copyfile(str(source) + suffix, str(dest) + suffix)
    return dest


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> SeedIndex:
    root = tmp_path_factory.mktemp("seed")
    corpus = Path(shutil.copytree(SHIPPED_CORPUS, root / "corpus"))
    db = root / "seed.db"

    async def build() -> None:
        desk = await Newsdesk.open(db, corpus)
        await desk.close()

    asyncio.run(build())
    return SeedIndex(corpus, db)


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    """A path for a real SQLite database file in this test's own folder (not created yet)."""
    return tmp_path / "newsdesk.db"


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped corpus, free to edit."""
    return Path(shutil.copytree(SHIPPED_CORPUS, tmp_path / "corpus"))


@pytest.fixture
def seed_db(tmp_path: Path, seed_index: SeedIndex) -> Path:
    """A private copy of the built seed database (its stored corpus is seed_index.corpus)."""
    return copy_db(seed_index.db, tmp_path / "seed.db")
