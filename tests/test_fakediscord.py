"""Proves tests/fakediscord.py against the real discord.py client, using a throwaway bot."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import zlib

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import (ADMIN, CHANNEL_ID, EPHEMERAL, GUILD_ID, MEMBER, STRANGER, FakeDiscord, new_user,
                               run_bot)


class PagerView(discord.ui.View):
    def __init__(self, owner_id: int) -> None:
        super().__init__(timeout=60)
        self.owner_id = owner_id
        self.page = 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("Only the person who asked can page.", ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Next", custom_id="pager:next", style=discord.ButtonStyle.primary)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.page += 1
        await interaction.response.edit_message(content=f"page {self.page}", view=self)


class ThrowawayBot(commands.Bot):
    """Just enough bot to exercise every route the fake serves."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(),
                         guild_ready_timeout=0.05, allowed_mentions=discord.AllowedMentions.none())
        self.errors: asyncio.Queue[app_commands.AppCommandError] = asyncio.Queue()
        self.slow_seconds = 0.0

    async def setup_hook(self) -> None:
        tree = self.tree

        @tree.error
        async def record_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.put_nowait(error)

        @tree.command(name="ask", description="Deferred answer")
        async def ask(interaction: discord.Interaction, question: str, limit: int = 3) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content=f"answer to {question} (limit {limit})")

        @tree.command(name="pager", description="Paged answer")
        async def pager(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("page 1", view=PagerView(interaction.user.id))

        @tree.command(name="secret", description="Ephemeral answer")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("just for you", ephemeral=True)

        @tree.command(name="slow", description="Answers after slow_seconds")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(self.slow_seconds)
            await interaction.response.send_message("finally")

        @tree.command(name="eager", description="Follows up before acknowledging")
        async def eager(interaction: discord.Interaction) -> None:
            await interaction.followup.send("too soon")

        @tree.command(name="search", description="Autocompleted option")
        async def search(interaction: discord.Interaction, source: str) -> None:
            await interaction.response.send_message(source)

        @search.autocomplete("source")
        async def source_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            names = ["reuters", "apnews", "bbc"]
            return [app_commands.Choice(name=n, value=n) for n in names if n.startswith(current)]

        @tree.command(name="upload", description="Reads an attached file")
        async def upload(interaction: discord.Interaction, file: discord.Attachment, note: str = "") -> None:
            data = await file.read()
            await interaction.response.send_message(
                f"{file.filename} {file.content_type} {file.size} {data.decode()!r} {note}".strip())

        @tree.context_menu(name="Quote")
        async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(f"quoted: {message.content}", ephemeral=True)


@pytest_asyncio.fixture
async def fake():
    async with FakeDiscord() as fake:
        yield fake


@pytest_asyncio.fixture
async def bot(fake: FakeDiscord):
    async with run_bot(ThrowawayBot, fake) as bot:
        yield bot
    fake.assert_no_unexpected()


async def next_error(bot: ThrowawayBot) -> BaseException:
    error = await asyncio.wait_for(bot.errors.get(), timeout=5)
    return getattr(error, "original", error)


@pytest.mark.asyncio
async def test_handshake_uses_oauth2_app_id_and_default_gateway(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    assert [(r.method, r.path) for r in fake.requests[:2]] == [("GET", "/users/@me"),
                                                              ("GET", "/oauth2/applications/@me")]
    assert fake.requests_matching("GET", r"/gateway(/bot)?") == []
    assert bot.application_id == fake.app_id and bot.user.id == fake.bot_user.id
    identify = await fake.wait_for_gateway(2)
    assert identify.d["token"] == fake.token
    assert identify.d["intents"] == discord.Intents.default().value
    assert [f.op for f in fake.gateway_frames][:2] == [1, 2]  # immediate heartbeat, then IDENTIFY
    assert fake.connections[0].compressed and fake.connections[0].query["encoding"] == "json"
    guild = bot.get_guild(GUILD_ID)
    assert guild is not None and guild.get_channel(CHANNEL_ID).name == "newsroom"
    assert [m.id for m in guild.members] == [bot.user.id]  # no members intent, so only the bot
    assert guild.get_role(guild.id).name == "@everyone"
    assert discord.utils.get(guild.roles, name="Admin").permissions.manage_guild


@pytest.mark.asyncio
async def test_zlib_stream_frames_are_sync_flushed_binary() -> None:
    # Talk to the gateway by hand: only a raw client sees the bytes discord.py decompresses.
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws:
            frame = await ws.receive(timeout=2)
            assert frame.type is aiohttp.WSMsgType.BINARY and frame.data.endswith(b"\x00\x00\xff\xff")
            inflate = zlib.decompressobj()
            assert b'"op":10' in inflate.decompress(frame.data)
            await ws.send_json({"op": 2, "d": {"token": fake.token, "intents": 1, "properties": {}}})
            ready = await ws.receive(timeout=2)
            # Same inflater: the stream shares one compression context across frames.
            assert b'"t":"READY"' in inflate.decompress(ready.data)


@pytest.mark.asyncio
async def test_bad_token_raises_login_failure(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with fake.patch(), pytest.raises(discord.LoginFailure):
        await client.login("wrong-token")
    await client.close()
    assert (await fake.wait_for_request("GET", "/users/@me")).status == 401
    assert discord.http.Route.BASE == "https://discord.com/api/v10"  # patch() restored it


@pytest.mark.asyncio
async def test_defer_then_edit_original(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    ask = await fake.interact(fake.chat_input("ask", {"question": "budget", "limit": 5}))
    callback = await fake.wait_for_callback(ask)
    assert callback.json == {"type": 5} and callback.query == {"with_response": "1"}
    assert "Authorization" not in callback.headers
    edit = await fake.wait_for_webhook(ask)
    assert edit.json["content"] == "answer to budget (limit 5)"
    assert edit.json["allowed_mentions"] == {"parse": []}
    stored = fake.original_message(ask)
    assert stored["content"] == edit.json["content"] and stored["flags"] == 0  # loading flag cleared


@pytest.mark.asyncio
async def test_button_press_updates_message_and_refuses_stranger(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    pager = await fake.interact(fake.chat_input("pager", user=MEMBER))
    sent = await fake.wait_for_callback(pager)
    assert sent.json["type"] == 4
    assert sent.json["data"]["components"][0]["components"][0]["custom_id"] == "pager:next"
    message_id = fake.original_message(pager)["id"]

    press = await fake.interact(fake.component("pager:next", message_id, user=MEMBER))
    update = await fake.wait_for_callback(press)
    assert update.json["type"] == 7 and update.json["data"]["content"] == "page 2"
    assert fake.message(message_id)["content"] == "page 2"

    intruder = await fake.interact(fake.component("pager:next", message_id, user=STRANGER))
    refusal = await fake.wait_for_callback(intruder)
    assert refusal.json["type"] == 4 and refusal.json["data"]["flags"] == EPHEMERAL
    assert "Only the person" in refusal.json["data"]["content"]
    assert fake.message(message_id)["content"] == "page 2"


@pytest.mark.asyncio
async def test_ephemeral_send_message(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    secret = await fake.interact(fake.chat_input("secret", user=ADMIN))
    callback = await fake.wait_for_callback(secret)
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] == EPHEMERAL
    assert callback.response["interaction"]["response_message_ephemeral"] is True


@pytest.mark.asyncio
async def test_late_callback_is_unknown_interaction(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    fake.ack_deadline, bot.slow_seconds = 0.2, 0.3
    slow = await fake.interact(fake.chat_input("slow"))
    assert (await fake.wait_for_callback(slow)).status == 404
    error = await next_error(bot)
    assert isinstance(error, discord.NotFound) and error.code == 10062


@pytest.mark.asyncio
async def test_callback_within_deadline_succeeds_once(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    fake.ack_deadline, bot.slow_seconds = 1.0, 0.05
    slow = await fake.interact(fake.chat_input("slow"))
    assert (await fake.wait_for_callback(slow)).status == 200
    # A second acknowledgement of the same interaction is Discord's 40060.
    url = f"{fake.api_base}/interactions/{slow['id']}/{slow['token']}/callback"
    async with aiohttp.ClientSession() as session, session.post(url, json={"type": 5}) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 40060


@pytest.mark.asyncio
async def test_followup_before_ack_is_unknown_webhook(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    eager = await fake.interact(fake.chat_input("eager"))
    followup = await fake.wait_for_webhook(eager, method="POST")
    assert followup.status == 404 and followup.query["wait"] == "1"
    error = await next_error(bot)
    assert isinstance(error, discord.NotFound) and error.code == 10015


@pytest.mark.asyncio
async def test_autocomplete_returns_choices(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    request = await fake.interact(fake.autocomplete("search", {"source": "ap"}, focused="source"))
    callback = await fake.wait_for_callback(request)
    assert callback.json == {"type": 8, "data": {"choices": [{"name": "apnews", "value": "apnews"}]}}


@pytest.mark.asyncio
async def test_context_menu_first_followup_replaces_thinking_message(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    target = fake.make_message("Rates rise again", author=STRANGER)
    quote = await fake.interact(fake.message_command("Quote", target, user=new_user("reader")))
    assert (await fake.wait_for_callback(quote)).json == {"type": 5, "data": {"flags": EPHEMERAL}}
    followup = await fake.wait_for_webhook(quote, method="POST")
    assert followup.json["content"] == "quoted: Rates rise again" and followup.json["flags"] == EPHEMERAL
    assert followup.response["id"] == fake.original_message(quote)["id"]
    assert followup.response["flags"] == EPHEMERAL


@pytest.mark.asyncio
async def test_attachment_option_is_resolved_and_served_by_the_cdn(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    upload = fake.attachment("story.md", b"# Tripoli\n", "text/markdown")
    assert upload["url"].startswith(f"http://127.0.0.1:{fake.port}/attachments/") and upload["size"] == 10
    sent = await fake.interact(fake.chat_input("upload", {"file": upload, "note": "ok"}))
    assert sent["data"]["options"][0] == {"name": "file", "type": 11, "value": upload["id"]}
    assert sent["data"]["resolved"]["attachments"][upload["id"]]["filename"] == "story.md"
    callback = await fake.wait_for_callback(sent)
    assert callback.json["data"]["content"] == "story.md text/markdown 10 '# Tripoli\\n' ok"
    download = await fake.wait_for_request("GET", r"/attachments/\d+/\d+/story\.md")
    assert download.status == 200 and "Authorization" not in download.headers
    async with aiohttp.ClientSession() as session:
        async with session.get(upload["url"].replace(upload["id"], "1")) as missing:
            assert missing.status == 404


@pytest.mark.asyncio
async def test_channel_send_sync_and_unknown_route(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    channel = bot.get_channel(CHANNEL_ID)
    async with channel.typing():
        pass
    sent = await channel.send("morning briefing", file=discord.File(io.BytesIO(b"a,b\n"), "sources.csv"))
    assert sent.author.id == bot.user.id and fake.message(sent.id)["content"] == "morning briefing"
    assert [(a.filename, a.size) for a in sent.attachments] == [("sources.csv", 4)]
    assert (await channel.fetch_message(sent.id)).content == "morning briefing"

    synced = await bot.tree.sync()
    put = await fake.wait_for_request("PUT", rf"/applications/{fake.app_id}/commands")
    assert {c["name"] for c in put.json} == {c.name for c in synced} == {"ask", "pager", "secret", "slow",
                                                                         "eager", "search", "upload", "Quote"}
    assert all(c.id for c in synced)
    assert next(c for c in put.json if c["name"] == "Quote")["type"] == 3

    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=GUILD_ID))
    assert [str(r) for r in fake.unexpected] == [f"#{len(fake.requests) - 1} GET /guilds/{GUILD_ID}/bans -> 404"]
    fake.unexpected.clear()


@pytest.mark.asyncio
async def test_reconnect_resumes_session(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    before = fake.chat_input("secret")
    last_seq = await fake.dispatch("INTERACTION_CREATE", before)
    await fake.wait_for_callback(before)
    resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=2))
    await fake.request_reconnect()
    resume = await fake.wait_for_gateway(6)
    assert resume.connection == 1 and resume.d["session_id"] == fake.connections[0].session_id
    assert resume.d["seq"] == last_seq == 3  # READY=1, GUILD_CREATE=2, then ours
    await resumed
    after = await fake.interact(fake.chat_input("secret"))
    assert (await fake.wait_for_callback(after)).status == 200


def intents_bot(intents: discord.Intents) -> commands.Bot:
    return commands.Bot(command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05)


@pytest.mark.asyncio
async def test_privileged_intent_is_refused_unless_enabled_in_portal(fake: FakeDiscord) -> None:
    wants_content = discord.Intents.default()
    wants_content.message_content = True
    with pytest.raises(discord.ConnectionClosed) as closed:
        async with run_bot(intents_bot(wants_content), fake):
            pass
    assert closed.value.code == 4014


@pytest.mark.asyncio
async def test_members_intent_sends_and_chunks_members() -> None:
    intents = discord.Intents.default()
    intents.members = True
    async with FakeDiscord(privileged_intents=intents.value) as fake, run_bot(intents_bot(intents), fake) as bot:
        guild = bot.get_guild(GUILD_ID)
        assert guild.get_member(ADMIN.id).guild_permissions.administrator
        assert {m.id for m in await asyncio.wait_for(guild.chunk(), 2)} == {u.id for u in fake.members}
        assert int((await fake.wait_for_gateway(8, timeout=0)).d["guild_id"]) == GUILD_ID


@pytest.mark.asyncio
async def test_wait_for_request_timeout_lists_what_arrived(fake: FakeDiscord, bot: ThrowawayBot) -> None:
    with pytest.raises(TimeoutError, match=r"GET /users/@me -> 200"):
        await fake.wait_for_request("DELETE", r"/nothing", timeout=0.05)


CHILD_BOT = """
import asyncio, os, discord, yarl
from discord import app_commands

discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
tree = app_commands.CommandTree(client)

@tree.command(name="ping", description="ping")
async def ping(interaction):
    await interaction.response.send_message("pong from child")
    await client.close()

async def main():
    async with client:
        await client.start(os.environ["DISCORD_TOKEN"])

asyncio.run(main())
"""


@pytest.mark.asyncio
async def test_subprocess_bot_via_environment(fake: FakeDiscord) -> None:
    env = {**os.environ, "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url,
           "DISCORD_TOKEN": fake.token}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD_BOT, env=env,
                                                 stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_for_gateway(2, timeout=10)
        ping = await fake.interact(fake.chat_input("ping"))
        callback = await fake.wait_for_callback(ping)
        assert callback.json["data"]["content"] == "pong from child"
        _, stderr = await asyncio.wait_for(child.communicate(), timeout=10)
        assert child.returncode == 0, stderr.decode()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
