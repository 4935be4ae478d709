"""Operators: only admin servers' managers and the application's owner change the one shared index."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest

from tests.bot_harness import content_of, is_ephemeral, running, slash
from tests.fakediscord import ADMIN, GUILD_ID, MANAGER, MEMBER, OTHER_GUILD_ID, STRANGER, FakeDiscord

from bot.__main__ import sync
from bot.checks import redact_paths
from bot.config import Config, ConfigError

DEFERRED_EPHEMERAL = {"type": 5, "data": {"flags": 64}}
SHARED = ("This command changes the index every server shares, so it only works in the bot's admin servers "
          "(or for the bot's owner).")


def original_path(payload: dict) -> str:
    return rf"/webhooks/\d+/{re.escape(payload['token'])}/messages/@original"


async def finished(fake: FakeDiscord, payload: dict) -> str:
    final = await fake.wait_for_request("PATCH", original_path(payload),
                                        predicate=lambda r: r.json["content"].startswith(("✅", "❌")))
    return final.json["content"]


@pytest.mark.asyncio
async def test_a_second_servers_manager_is_refused_reindex(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config) as bot:
        build = bot.desk.build
        _, refused = await slash(fake, "reindex", user=MANAGER, guild_id=OTHER_GUILD_ID)
        assert refused.json["type"] == 4 and is_ephemeral(refused) and content_of(refused) == SHARED
        assert not bot.desk.rebuilding and bot.desk.build == build

        # The same person with Manage Server in an admin server may; so may the owner anywhere.
        payload, callback = await slash(fake, "reindex", user=MANAGER)
        assert callback.json == DEFERRED_EPHEMERAL
        assert (await finished(fake, payload)).startswith("✅ **Rebuild finished**")
        payload, callback = await slash(fake, "reindex", user=ADMIN, guild_id=OTHER_GUILD_ID)
        assert callback.json == DEFERRED_EPHEMERAL
        assert (await finished(fake, payload)).startswith("✅ **Rebuild finished**")


@pytest.mark.asyncio
async def test_without_admin_servers_only_the_owner_or_team_may(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config, admin_guilds=frozenset()):
        _, refused = await slash(fake, "reindex", user=MANAGER)
        assert content_of(refused) == SHARED
        payload, callback = await slash(fake, "reindex", user=ADMIN)
        assert callback.json == DEFERRED_EPHEMERAL
        await finished(fake, payload)
    fake.team = [STRANGER]                               # a team-owned application: its members are owners
    async with running(fake, config, admin_guilds=frozenset()):
        payload, callback = await slash(fake, "reindex", user=STRANGER, guild_id=OTHER_GUILD_ID)
        assert callback.json == DEFERRED_EPHEMERAL
        await finished(fake, payload)
        _, refused = await slash(fake, "reindex", user=ADMIN)     # no longer the owner
        assert content_of(refused) == SHARED


@pytest.mark.asyncio
async def test_in_a_dm_admin_commands_say_they_work_only_in_a_server(fake: FakeDiscord, bot) -> None:
    _, refused = await slash(fake, "reindex", user=ADMIN, dm=True)
    assert is_ephemeral(refused) and content_of(refused) == "This command only works in a server."


@pytest.mark.asyncio
async def test_a_failed_rebuild_shows_paths_to_the_owner_only(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config) as bot:
        shutil.rmtree(bot.config.corpus)
        payload, _ = await slash(fake, "reindex", user=MANAGER)
        text = await finished(fake, payload)
        assert text.startswith("❌ **Rebuild failed:** The corpus folder … does not exist.")
        assert str(config.corpus.parent.name) not in text and "/" not in text.split("\n")[0]

        async def broken(*args, **kwargs):
            from index.errors import StoreError
            raise StoreError(f"Cannot open {config.db}: permission denied.", f"Check {config.db.parent}.")

        bot.desk.ask = broken
        for user, shows in ((MEMBER, False), (ADMIN, True)):
            payload, _ = await slash(fake, "ask", {"question": "who leads the LNA?"}, user=user)
            told = await fake.wait_for_webhook(payload, method="POST")
            assert (config.db.name in told.json["content"]) is shows, told.json["content"]


def test_redact_paths_keeps_urls_and_plain_slashes() -> None:
    assert redact_paths("Cannot open /srv/news data/nd.db: denied.", ["/srv/news data/nd.db"]) == "Cannot open …: denied."
    assert redact_paths("See /var/lib/x.db, or C:\\news\\x.db.") == "See …, or …."
    assert redact_paths("https://example.com/a/b and 1/2 and/or") == "https://example.com/a/b and 1/2 and/or"


def test_admin_guilds_are_read_from_the_environment() -> None:
    config = Config.load(env={"NEWSDESK_ADMIN_GUILDS": f" {GUILD_ID}, {OTHER_GUILD_ID} "}, dotenv=None)
    assert config.admin_guilds == {GUILD_ID, OTHER_GUILD_ID}
    assert Config.load(env={}, dotenv=None).admin_guilds == frozenset()
    with pytest.raises(ConfigError, match="NEWSDESK_ADMIN_GUILDS"):
        Config.load(env={"NEWSDESK_ADMIN_GUILDS": "main server"}, dotenv=None)


@pytest.mark.asyncio
async def test_sync_registers_operator_commands_only_in_admin_servers(fake: FakeDiscord, config: Config,
                                                                     capsys: pytest.CaptureFixture) -> None:
    config = dataclasses.replace(config, admin_guilds=frozenset({GUILD_ID, OTHER_GUILD_ID}))
    with fake.patch():
        assert await sync(config, None) == 0
    everywhere = {c["name"] for c in fake.global_commands}
    operators = {"reindex", "add", "feeds"}              # /feeds is a group: operator-only by its subcommands
    assert not operators & everywhere and {"ask", "cite", "sources", "about", "Find sources"} <= everywhere
    for guild in (GUILD_ID, OTHER_GUILD_ID):
        assert operators <= {c["name"] for c in fake.guild_commands[guild]}
        assert not {"ask", "cite"} & {c["name"] for c in fake.guild_commands[guild]}
    out = capsys.readouterr().out
    assert f"operator commands to admin server {OTHER_GUILD_ID}: " in out

    # Unset: everything is global (the check in code keeps it to the owner).
    fake.guild_commands.clear()
    with fake.patch():
        assert await sync(dataclasses.replace(config, admin_guilds=frozenset()), None) == 0
    assert "reindex" in {c["name"] for c in fake.global_commands} and not fake.guild_commands
