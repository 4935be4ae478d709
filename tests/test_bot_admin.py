"""/reindex, /sources, /about, cooldowns, command definitions, publishing and shutdown, against the fake Discord."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading

import discord
import pytest

import index.build

from tests.bot_harness import Gate, button, content_of, is_ephemeral, passage_ids, running, slash
from tests.fakediscord import ADMIN, MEMBER, STRANGER, FakeDiscord, new_user

from bot.__main__ import sync
from bot.app import NewsdeskBot
from bot.config import Config
from index.render import escape_markdown

DEFERRED_EPHEMERAL = {"type": 5, "data": {"flags": 64}}
PFG_QUESTION = "which countries bombed the PFG?"


def original_path(payload: dict) -> str:
    return rf"/webhooks/\d+/{re.escape(payload['token'])}/messages/@original"


@pytest.mark.asyncio
async def test_reindex_is_refused_to_a_member_without_manage_server(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    command = bot.tree.get_command("reindex")
    assert command.default_permissions == discord.Permissions(manage_guild=True) and command.guild_only
    _, callback = await slash(fake, "reindex", user=MEMBER)     # in an admin server, without Manage Server
    assert callback.json["type"] == 4 and is_ephemeral(callback)
    assert content_of(callback) == "Only members with the Manage Server permission can do that."
    assert not bot.desk.rebuilding


@pytest.mark.asyncio
async def test_reindex_reports_progress_refuses_a_second_run_and_keeps_answering(
        fake: FakeDiscord, bot: NewsdeskBot, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_rebuild = index.build.rebuild

    def held(db, corpus, progress=None, *args, **kwargs):     # runs in the engine's build thread
        progress("reading", 2, 7)                # as the engine would, before the test holds it
        assert release.wait(30)
        return real_rebuild(db, corpus, progress, *args, **kwargs)

    monkeypatch.setattr(index.build, "rebuild", held)     # the engine's own rebuild, held open by the test
    (bot.config.corpus / "902_new.txt").write_text("Brand new article\n\nA fresh paragraph about qwerty ports.\n")
    build_before = bot.desk.build.id

    payload, callback = await slash(fake, "reindex", user=ADMIN)
    assert callback.json == DEFERRED_EPHEMERAL
    first = await fake.wait_for_request("PATCH", original_path(payload))
    second = await fake.wait_for_request("PATCH", original_path(payload))
    for edit in (first, second):
        assert re.fullmatch(r"⏳ Rebuilding the index… reading 2/7 · \d+ s", edit.json["content"])
    assert bot.desk.rebuilding

    _, refused = await slash(fake, "reindex", user=ADMIN)
    assert refused.json["type"] == 4 and is_ephemeral(refused)
    assert content_of(refused).startswith(f"A rebuild is already running, started by <@{ADMIN.id}>")

    asked, answering = await slash(fake, "ask", {"question": PFG_QUESTION}, user=STRANGER)
    answer = await fake.wait_for_webhook(asked)          # the previous index answers meanwhile
    assert passage_ids(answer.json["content"]) and f"build {build_before} " in answer.json["content"]

    release.set()
    final = await fake.wait_for_request("PATCH", original_path(payload),
                                        predicate=lambda r: "Rebuild finished" in r.json["content"])
    report = final.json["content"]
    assert report.startswith("✅ **Rebuild finished** in ")
    assert "Articles: 1 added, 0 changed, 0 removed." in report
    assert "Passages: 1 added, 0 changed, 0 removed." in report
    assert re.search(r"in \d+\.\d s\.", report)
    await asyncio.sleep(0.1)                             # no progress edit may land after the report
    last = fake.requests_matching("PATCH", original_path(payload))[-1]
    assert last is final and fake.original_message(payload)["flags"] & 64
    assert bot.desk.build.id > build_before and not bot.desk.rebuilding


@pytest.mark.asyncio
async def test_a_failed_rebuild_says_why_and_answers_keep_working(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    build = bot.desk.build
    shutil.rmtree(bot.config.corpus)
    payload, callback = await slash(fake, "reindex", user=ADMIN)
    assert callback.json == DEFERRED_EPHEMERAL
    final = await fake.wait_for_request("PATCH", original_path(payload),
                                        predicate=lambda r: "Rebuild failed" in r.json["content"])
    text = final.json["content"]
    folder = escape_markdown(str(bot.config.corpus))
    assert text.startswith(f"❌ **Rebuild failed:** The corpus folder {folder} does not exist.")
    assert f"The previous index ({build.label}) keeps answering." in text

    asked, _ = await slash(fake, "ask", {"question": PFG_QUESTION})
    answer = await fake.wait_for_webhook(asked)
    assert passage_ids(answer.json["content"]) and bot.desk.build == build


@pytest.mark.asyncio
async def test_ask_has_a_per_user_cooldown(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config, ask_cooldown=(1, 60.0)):
        user, other = new_user("quick"), new_user("patient")
        first, _ = await slash(fake, "ask", {"question": PFG_QUESTION}, user=user)
        await fake.wait_for_webhook(first)
        _, again = await slash(fake, "ask", {"question": PFG_QUESTION}, user=user)
        assert again.json["type"] == 4 and is_ephemeral(again)
        assert re.fullmatch(r"You're asking quickly: please wait \d+ s before the next one\.", content_of(again))
        _, theirs = await slash(fake, "ask", {"question": PFG_QUESTION}, user=other)
        assert theirs.json == {"type": 5}                # someone else is not slowed down


@pytest.mark.asyncio
async def test_sources_pages_through_the_articles(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config, sources_per_page=3):
        payload, callback = await slash(fake, "sources")
        assert callback.json["type"] == 4 and is_ephemeral(callback)
        first = content_of(callback)
        assert first.startswith("**Indexed articles** (1–3 of 7)")
        assert "[Qwerty harbour reopens](<https://example.com/news/qwerty-harbour>) · Example Gazette · 2024-03-05" \
            in first
        message = fake.original_message(payload)

        press = await fake.interact(fake.component(button(message, "Next"), message, user=STRANGER))
        assert "Only the person who asked" in content_of(await fake.wait_for_callback(press))
        for expected in ("(4–6 of 7)", "(7–7 of 7)"):
            press = await fake.interact(fake.component(button(fake.original_message(payload), "Next"), fake.original_message(payload)))
            page = await fake.wait_for_callback(press)
            assert page.json["type"] == 7 and expected in content_of(page)
        buttons = {c["label"]: c["disabled"] for c in page.json["data"]["components"][0]["components"]}
        assert buttons == {"Previous": False, "Next": True}
        press = await fake.interact(fake.component(button(fake.original_message(payload), "Previous"),
                                                   fake.original_message(payload)))
        assert "(4–6 of 7)" in content_of(await fake.wait_for_callback(press))


@pytest.mark.asyncio
async def test_about_names_the_corpus_build_and_how_to_cite(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    _, callback = await slash(fake, "about")
    text = content_of(callback)
    assert is_ephemeral(callback)
    assert f"from 7 indexed articles ({bot.desk.build.passages} passages)" in text
    assert bot.desk.build.label in text and "/cite" in text


def test_commands_describe_themselves(config: Config) -> None:
    async def load() -> NewsdeskBot:
        bot = NewsdeskBot(config, open_index=False)
        for extension in ("bot.cogs.ask", "bot.cogs.admin", "bot.cogs.info"):
            await bot.load_extension(extension)
        return bot

    bot = asyncio.run(load())
    names = sorted(c.name for c in bot.tree.get_commands())
    assert names == ["Find sources", "about", "ask", "cite", "reindex", "sources"]
    for command in bot.tree.walk_commands():
        assert 0 < len(command.description) <= 100, command.name
        for parameter in command.parameters:
            assert parameter.description and parameter.description != "…", (command.name, parameter.name)
    k = bot.tree.get_command("ask").get_parameter("k")
    assert (k.min_value, k.max_value, k.default) == (1, 10, 5)


@pytest.mark.asyncio
async def test_sync_publishes_the_commands_to_a_guild(fake: FakeDiscord, config: Config,
                                                      capsys: pytest.CaptureFixture) -> None:
    with fake.patch():                               # sync() points discord.py at config's endpoints; undo after
        assert await sync(config, fake.guild_id) == 0
    put = fake.requests_matching("PUT", rf"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands")
    assert len(put) == 1 and not fake.requests_matching("PUT", rf"/applications/{fake.app_id}/commands")
    published = {c["name"]: c for c in put[0].json}
    assert set(published) == {"ask", "cite", "reindex", "sources", "about", "Find sources", "add", "feeds"}
    assert published["reindex"]["default_member_permissions"] == discord.Permissions(manage_guild=True).value
    assert published["reindex"]["contexts"] == [0]
    assert published["Find sources"]["type"] == 3
    options = {o["name"]: o for o in published["ask"]["options"]}
    assert options["source"]["autocomplete"] and (options["k"]["min_value"], options["k"]["max_value"]) == (1, 10)
    assert capsys.readouterr().out.startswith(f"Published 8 commands to server {fake.guild_id}")


@pytest.mark.asyncio
async def test_closing_lets_an_in_flight_command_finish(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config) as bot:
        gate = Gate(bot.desk.ask)
        bot.desk.ask = gate
        payload, _ = await slash(fake, "ask", {"question": PFG_QUESTION})
        await gate.started.wait()
        closing = asyncio.create_task(bot.close())
        await asyncio.sleep(0.05)
        assert not closing.done()                        # waiting for the answer to go out
        gate.opened.set()
        edit = await fake.wait_for_webhook(payload)
        assert passage_ids(edit.json["content"])
        await closing
        assert bot.is_closed()
