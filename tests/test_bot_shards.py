"""The bot sharded: servers on each of two shards get answers from one process running both shards, from two
bots with one shard each, and from two `newsdesk run` processes splitting the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from tests.bot_harness import passage_ids
from tests.fakediscord import GUILD_ID, SHARD1_GUILD_ID, FakeDiscord, run_bot

from bot import shards
from bot.app import NewsdeskBot
from bot.config import Config, ConfigError
from bot.shards import IdentifyPacer, ShardedNewsdeskBot, make_bot

PFG_QUESTION = "which countries bombed the PFG?"
IDENTIFY = 2


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """Discord recommending two shards, two IDENTIFYs at once; the bot is in a server on each shard."""
    async with FakeDiscord(shards=2, max_concurrency=2) as fake:
        fake.other_guilds.append(SHARD1_GUILD_ID)
        yield fake


def record_dispatches(fake: FakeDiscord) -> list[tuple[str, tuple[int, int], dict[str, Any]]]:
    """(event, the connection's [shard_id, shard_count], payload) for every DISPATCH the fake sends."""
    sent: list[tuple[str, tuple[int, int], dict[str, Any]]] = []
    send = fake._send_dispatch

    async def recording(conn: Any, event: str, payload: Any) -> int:
        sent.append((event, conn.shard, payload))
        return await send(conn, event, payload)

    fake._send_dispatch = recording  # type: ignore[method-assign]
    return sent


async def ask_in(fake: FakeDiscord, guild_id: int) -> str:
    """/ask from a member of this server; returns the answer's content."""
    where = {} if guild_id == GUILD_ID else {"guild_id": guild_id}
    payload = await fake.interact(fake.chat_input("ask", {"question": PFG_QUESTION}, **where))
    assert (await fake.wait_for_callback(payload)).json == {"type": 5}
    answer = (await fake.wait_for_webhook(payload)).json["content"]
    assert "Egypt" in answer and len(passage_ids(answer)) >= 2, answer
    return answer


def identified_shards(fake: FakeDiscord) -> list[tuple[int, int]]:
    return [tuple(f.d["shard"]) for f in fake.gateway_frames if f.op == IDENTIFY]  # type: ignore[misc]


def test_shard_settings_are_checked_in_one_line() -> None:
    load = lambda **env: Config.load(env=env, dotenv=None)    # noqa: E731
    assert (load().shards, load().sharded) == (None, False)
    assert (load(NEWSDESK_SHARDS="auto").shards, load(NEWSDESK_SHARDS="auto").shard_ids) == ("auto", None)
    assert load(NEWSDESK_SHARDS="4", NEWSDESK_SHARD_IDS="3, 1").shard_ids == (1, 3)
    for env, message in [
        ({"NEWSDESK_SHARDS": "0"}, "NEWSDESK_SHARDS must be a number of shards (1 or more) or auto, not '0'."),
        ({"NEWSDESK_SHARD_IDS": "1"}, "NEWSDESK_SHARD_IDS needs NEWSDESK_SHARDS set to the total number of shards "
                                      "(the same in every process); it is not set."),
        ({"NEWSDESK_SHARDS": "auto", "NEWSDESK_SHARD_IDS": "0"}, "it is 'auto'."),
        ({"NEWSDESK_SHARDS": "2", "NEWSDESK_SHARD_IDS": "2"},
         "NEWSDESK_SHARD_IDS must be distinct shard numbers from 0 to 1 separated by commas, not '2'."),
        ({"NEWSDESK_SHARDS": "2", "NEWSDESK_SHARD_IDS": "1,1"}, "not '1,1'."),
    ]:
        with pytest.raises(ConfigError) as caught:
            load(**env)
        assert str(caught.value).endswith(message) and "\n" not in str(caught.value)
    assert type(make_bot(Config(token="t"), open_index=False)) is NewsdeskBot
    assert type(make_bot(Config(token="t", shards=2, shard_ids=(1,)), open_index=False)) is ShardedNewsdeskBot


@pytest.mark.asyncio
@pytest.mark.parametrize("count", [2, "auto"])
async def test_one_process_running_both_shards_answers_servers_on_each(fake: FakeDiscord, config: Config,
                                                                       count: int | str) -> None:
    sent = record_dispatches(fake)
    settings = dataclasses.replace(config, shards=count)
    async with run_bot(lambda: make_bot(settings), fake) as bot:
        assert isinstance(bot, ShardedNewsdeskBot) and bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
        assert sorted(identified_shards(fake)) == [(0, 2), (1, 2)]
        # Discord told each shard about its own server only; discord.py files each under that shard.
        assert [(g.id, g.shard_id) for g in sorted(bot.guilds, key=lambda g: g.id)] == [(GUILD_ID, 0),
                                                                                       (SHARD1_GUILD_ID, 1)]
        for guild, shard in ((GUILD_ID, 0), (SHARD1_GUILD_ID, 1)):
            await ask_in(fake, guild)
            event, on, payload = [s for s in sent if s[0] == "INTERACTION_CREATE"][-1]
            assert (int(payload["guild_id"]), on) == (guild, (shard, 2))
    fake.assert_no_unexpected()
    assert fake.requests_matching("GET", "/gateway/bot")                # max_concurrency read from Discord


@pytest.mark.asyncio
async def test_two_bots_with_one_shard_each_split_the_servers(fake: FakeDiscord, config: Config) -> None:
    asked: dict[int, list[int]] = {0: [], 1: []}

    def counted(bot: NewsdeskBot, shard: int) -> None:
        ask = bot.desk.ask

        async def counting(*args: Any, **kwargs: Any) -> Any:
            asked[shard].append(1)
            return await ask(*args, **kwargs)

        bot.desk.ask = counting  # type: ignore[method-assign]

    first = dataclasses.replace(config, shards=2, shard_ids=(0,))
    second = dataclasses.replace(config, shards=2, shard_ids=(1,))
    async with run_bot(lambda: make_bot(first), fake) as bot0, run_bot(lambda: make_bot(second), fake) as bot1:
        assert [g.id for g in bot0.guilds] == [GUILD_ID] and [g.id for g in bot1.guilds] == [SHARD1_GUILD_ID]
        counted(bot0, 0)
        counted(bot1, 1)
        await ask_in(fake, GUILD_ID)
        assert (len(asked[0]), len(asked[1])) == (1, 0)
        await ask_in(fake, SHARD1_GUILD_ID)
        assert (len(asked[0]), len(asked[1])) == (1, 1)
    assert identified_shards(fake) == [(0, 2), (1, 2)]
    fake.assert_no_unexpected()


@pytest.mark.asyncio
async def test_identifies_in_one_bucket_are_spaced(fake: FakeDiscord, config: Config,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "IDENTIFY_INTERVAL_S", 0.4)
    fake.max_concurrency = 1                        # one IDENTIFY per interval for the whole bot
    async with run_bot(lambda: make_bot(dataclasses.replace(config, shards=2)), fake, ready_timeout=10):
        frames = [f for f in fake.gateway_frames if f.op == IDENTIFY]
        assert len(frames) == 2 and frames[1].at - frames[0].at >= 0.4


@pytest.mark.asyncio
async def test_a_process_holds_a_shard_back_to_its_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes started together identify in shard order without talking: shard 3 of max_concurrency 2 waits
    one interval (shards 0-1 go first); its bucket then keeps the interval for a later re-identify."""
    monkeypatch.setattr(shards, "IDENTIFY_INTERVAL_S", 0.2)
    loop = asyncio.get_running_loop()
    pacer, start = IdentifyPacer(2), loop.time()
    await pacer.wait(3)
    assert 0.2 <= loop.time() - start < 0.35
    await pacer.wait(3)
    assert loop.time() - start >= 0.4
    first, start = IdentifyPacer(2), loop.time()
    await asyncio.gather(first.wait(0), first.wait(1))               # different buckets: no wait
    assert loop.time() - start < 0.1


@pytest.mark.asyncio
async def test_two_newsdesk_run_processes_split_the_gateway(fake: FakeDiscord, corpus_dir: Path,
                                                            db_path: Path, tmp_path: Path) -> None:
    base = {**os.environ, "DISCORD_TOKEN": fake.token, "DISCORD_API_BASE": fake.api_base,
            "DISCORD_GATEWAY_URL": fake.gateway_url, "NEWSDESK_DB": str(db_path),
            "NEWSDESK_CORPUS": str(corpus_dir), "NEWSDESK_SHARDS": "2"}
    newsdesk = Path(sys.executable).with_name("newsdesk")
    processes = []
    async with contextlib.AsyncExitStack() as stack:
        for shard in (0, 1):
            process = await asyncio.create_subprocess_exec(
                str(newsdesk), "run", cwd=tmp_path, env={**base, "NEWSDESK_SHARD_IDS": str(shard)},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stack.push_async_callback(_stop, process)
            processes.append(process)
        for _ in range(300):                                   # both IDENTIFY, then READY and GUILD_CREATE
            if len({c.shard for c in fake.connections if c.session_id}) == 2 and \
                    all(fake.connection_for(g) for g in (GUILD_ID, SHARD1_GUILD_ID)):
                break
            await asyncio.sleep(0.1)
        assert sorted(identified_shards(fake)) == [(0, 2), (1, 2)]
        for guild in (GUILD_ID, SHARD1_GUILD_ID):
            for _ in range(100):                               # the session is up; the bot may still be readying
                try:
                    await ask_in(fake, guild)
                    break
                except (RuntimeError, TimeoutError):
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no answer in server {guild}")
        for process in processes:
            process.send_signal(signal.SIGTERM)
        # Both read at once: one process's full stderr pipe must not hold it up while we wait for the other.
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), timeout=20)
        logs = [err.decode() for _, err in outputs]
    assert [p.returncode for p in processes] == [0, 0], logs
    assert all("Traceback" not in log and fake.token not in log for log in logs)
    fake.assert_no_unexpected()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()
