"""The CLI and the bot resolve the corpus and its database the same way, from flags, the environment and .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config
from index.config import Settings

NAMES = ("NEWSDESK_DB", "NEWSDESK_CORPUS", "XDG_DATA_HOME", "DISCORD_TOKEN")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dotenv_settings_reach_the_cli_and_the_bot_alike(home: Path) -> None:
    (home / "articles").mkdir()
    (home / ".env").write_text(f"NEWSDESK_CORPUS={home / 'articles'}\nNEWSDESK_DB={home / 'desk.db'}\n"
                               "DISCORD_TOKEN=abc\n", encoding="utf-8")
    cli, bot = Settings.resolve(), Config.load()
    assert cli == Settings(home / "desk.db", home / "articles")
    assert (bot.db, bot.corpus) == (cli.db, cli.corpus)


def test_the_environment_wins_over_dotenv_for_both(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".env").write_text(f"NEWSDESK_DB={home / 'from-dotenv.db'}\n", encoding="utf-8")
    monkeypatch.setenv("NEWSDESK_DB", str(home / "from-env.db"))
    assert Settings.resolve().db == Config.load().db == home / "from-env.db"


def test_another_corpus_gets_its_own_database_in_the_cli_and_the_bot(home: Path) -> None:
    other = home / "other"
    other.mkdir()
    cli, bot = Settings.resolve(corpus=other), Config.load(corpus=other)
    default = Settings.resolve()
    assert cli.db != default.db and cli.db.parent == default.db.parent and cli.db.name.startswith("other-")
    assert (bot.db, bot.corpus) == (cli.db, cli.corpus) == (cli.db, other.resolve())


def test_the_configured_corpus_named_again_keeps_the_default_database(home: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    articles = home / "articles"
    articles.mkdir()
    monkeypatch.setenv("NEWSDESK_CORPUS", str(articles))
    assert Settings.resolve(corpus=articles).db == Settings.resolve().db == home / "data" / "newsdesk" / "newsdesk.db"
