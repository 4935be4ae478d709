"""Starting the bot: configuration, clear one-line failures, and `newsdesk run` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.bot_harness import passage_ids
from tests.fakediscord import FakeDiscord

import bot.__main__ as entry
from bot.config import Config, ConfigError

PFG_QUESTION = "which countries bombed the PFG?"


def test_config_reads_the_environment_over_a_dotenv_file(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# local settings\nexport DISCORD_TOKEN='from-file'\nNEWSDESK_GUILD_ID=42\n"
                      "NEWSDESK_DB=/data/nd.db\nDISCORD_API_BASE=http://127.0.0.1:9/api/v10/\n")
    config = Config.load(env={"DISCORD_TOKEN": "from-env", "NEWSDESK_CORPUS": "/articles"}, dotenv=dotenv)
    assert (config.token, config.guild_id, config.db, config.corpus) == ("from-env", 42, Path("/data/nd.db"),
                                                                         Path("/articles"))
    assert config.api_base == "http://127.0.0.1:9/api/v10" and config.gateway_url is None
    assert "from-env" not in repr(config)
    assert Config.load(env={}, dotenv=dotenv, db=Path("/cli.db")).db == Path("/cli.db")
    with pytest.raises(ConfigError, match="NEWSDESK_GUILD_ID"):
        Config.load(env={"NEWSDESK_GUILD_ID": "my server"}, dotenv=None)


def test_a_missing_token_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)                          # no .env here
    assert entry.main(corpus=tmp_path, db=tmp_path / "x.db") == 1
    assert entry.sync_commands(None) == 1
    err = capsys.readouterr().err
    assert err == entry.NO_TOKEN + "\n" + entry.NO_TOKEN + "\n"


@pytest.mark.asyncio
async def test_a_rejected_token_is_one_clear_line(fake: FakeDiscord, config: Config,
                                                  capsys: pytest.CaptureFixture) -> None:
    bad = Config(token="not-the-token", db=config.db, corpus=config.corpus, api_base=fake.api_base,
                 gateway_url=fake.gateway_url)
    with fake.patch():                                   # run() repoints discord.py; restore it afterwards
        assert await entry.run(bad) == 1
    assert capsys.readouterr().err == entry.REJECTED + "\n"
    assert fake.requests_matching("GET", "/users/@me")[0].status == 401


@pytest.mark.asyncio
async def test_newsdesk_run_answers_ask_and_stops_on_sigterm(fake: FakeDiscord, corpus_dir: Path,
                                                             db_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DISCORD_TOKEN": fake.token, "DISCORD_API_BASE": fake.api_base,
           "DISCORD_GATEWAY_URL": fake.gateway_url, "NEWSDESK_DB": str(db_path), "NEWSDESK_CORPUS": str(corpus_dir)}
    newsdesk = Path(sys.executable).with_name("newsdesk")
    process = await asyncio.create_subprocess_exec(str(newsdesk), "run", cwd=tmp_path, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_for_gateway(2, timeout=30)        # IDENTIFY: logged in and connected
        payload = fake.chat_input("ask", {"question": PFG_QUESTION})
        for _ in range(100):                              # READY goes out right after IDENTIFY
            try:
                await fake.interact(payload)
                break
            except RuntimeError:
                await asyncio.sleep(0.02)
        assert (await fake.wait_for_callback(payload)).json == {"type": 5}
        answer = await fake.wait_for_webhook(payload)
        assert len(passage_ids(answer.json["content"])) >= 2 and "Egypt" in answer.json["content"]

        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = err.decode()
    assert process.returncode == 0, log
    assert "SIGTERM received" in log and "Newsdesk stopped" in log
    assert fake.token not in log and "Traceback" not in log
    assert fake.connections[-1].ws.closed
    fake.assert_no_unexpected()
