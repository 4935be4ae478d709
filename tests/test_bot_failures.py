"""Discord's failures kept from the user: a failed answer edit falls back to a followup, Discord is blamed when
Discord failed, and a fatal gateway close ends `newsdesk run` with one line."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.bot_harness import passage_ids, slash
from tests.fakediscord import FakeDiscord

import bot.__main__ as entry
from bot import app
from bot.app import DISCORD_ERROR, NewsdeskBot, error_message
from bot.config import Config

pytestmark = pytest.mark.asyncio

ORIGINAL = r"/webhooks/\d+/[^/]+/messages/@original"
FOLLOWUP = r"/webhooks/\d+/[^/]+"
PFG_QUESTION = "which countries bombed the PFG?"


@pytest.fixture(autouse=True)
def quick_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "EDIT_DEADLINE_S", 0.5)     # discord.py would retry the 503 for 25 s


async def test_a_failed_answer_edit_is_sent_as_a_followup(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    fake.fail("PATCH", ORIGINAL, 503)                  # every edit of the answer fails
    payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION})
    assert callback.json == {"type": 5}
    followup = await fake.wait_for_webhook(payload, method="POST")
    content = followup.json["content"]
    assert content.startswith("**Q:** which countries bombed the PFG?") and "Egypt" in content
    assert len(passage_ids(content)) >= 2 and followup.json["components"]
    assert {r.status for r in fake.requests_matching("PATCH", ORIGINAL)} == {503}
    shown = fake.message(followup.response["id"])
    assert shown["content"] == content and not shown["flags"] & 64          # public, in place of "thinking…"


async def test_when_discord_fails_the_error_line_blames_discord() -> None:
    """discord.py retries a 5xx followup for ~25 s, so this is checked on the classification itself."""
    class Response:
        status, reason = 503, "Service Unavailable"
    failure = discord.DiscordServerError(Response(), {"message": "503: Service Unavailable", "code": 0})
    assert error_message(failure) == DISCORD_ERROR and "Discord" in DISCORD_ERROR
    assert error_message(RuntimeError("bug")) is None          # a bug of ours gets GENERIC_ERROR


async def test_a_4004_close_mid_run_exits_with_the_login_line(fake: FakeDiscord, config: Config,
                                                             capsys: pytest.CaptureFixture) -> None:
    with fake.patch():
        task = asyncio.create_task(entry.run(config))
        await fake.wait_for_gateway(2, timeout=30)     # IDENTIFY: connected and running
        await asyncio.sleep(0.2)
        await fake.close_gateway(4004, "Authentication failed.")
        assert await asyncio.wait_for(task, timeout=20) == 1
    err = capsys.readouterr().err
    assert err == entry.REJECTED + "\n"
    assert "Traceback" not in err


async def test_another_fatal_close_is_one_line_too(fake: FakeDiscord, config: Config,
                                                   capsys: pytest.CaptureFixture) -> None:
    with fake.patch():
        task = asyncio.create_task(entry.run(config))
        await fake.wait_for_gateway(2, timeout=30)
        await asyncio.sleep(0.2)
        await fake.close_gateway(4013, "Invalid intent(s).")
        assert await asyncio.wait_for(task, timeout=20) == 1
    err = capsys.readouterr().err
    assert err == "Error: Discord closed the gateway connection (code 4013: invalid intents) and Newsdesk " \
                  "cannot reconnect.\n"
