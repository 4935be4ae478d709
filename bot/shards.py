"""The bot over several gateway connections: NEWSDESK_SHARDS runs an AutoShardedBot, NEWSDESK_SHARD_IDS a slice.

Discord sends a server's events only on the shard that owns it, (guild_id >> 22) % shard_count, so processes
running disjoint slices of the same count split the servers between them. Every process opens the same index
(the same SQLite file, or the same NEWSDESK_SEARCH cluster); see README "Beyond one machine" for what is shared.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from .app import NewsdeskBot
from .config import Config

__all__ = ("ShardedNewsdeskBot", "IdentifyPacer", "make_bot", "IDENTIFY_INTERVAL_S")

_log = logging.getLogger(__name__)

# Discord's session start limit: max_concurrency IDENTIFYs per 5 s, one per bucket (shard_id % max_concurrency).
IDENTIFY_INTERVAL_S = 5.0


class IdentifyPacer:
    """When each shard may IDENTIFY: a bucket's IDENTIFYs IDENTIFY_INTERVAL_S apart, buckets in parallel.

    Processes started together need not talk to each other: each holds a shard's first IDENTIFY back to that
    shard's turn across all of them, start + (shard_id // max_concurrency) x 5 s. Later IDENTIFYs (a lost session)
    only wait for their bucket in this process; if another process collides, Discord invalidates the session and
    discord.py identifies again.
    """

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._started: float | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._last: dict[int, float] = {}
        self._identified: set[int] = set()

    async def wait(self, shard_id: int) -> None:
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        turn = self._started + (shard_id // self.max_concurrency) * IDENTIFY_INTERVAL_S
        not_before = turn if shard_id not in self._identified else 0.0
        bucket = shard_id % self.max_concurrency
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            if bucket in self._last:
                not_before = max(not_before, self._last[bucket] + IDENTIFY_INTERVAL_S)
            delay = not_before - loop.time()
            if delay > 0:
                _log.info("Shard %d waits %.1f s for its turn to identify (max_concurrency %d)", shard_id, delay,
                          self.max_concurrency)
                await asyncio.sleep(delay)
            self._last[bucket] = loop.time()
            self._identified.add(shard_id)


class ShardedNewsdeskBot(NewsdeskBot, commands.AutoShardedBot):
    """NewsdeskBot on every shard (NEWSDESK_SHARDS=N or auto) or on this process's slice (NEWSDESK_SHARD_IDS)."""

    def __init__(self, config: Config, *, open_index: bool = True) -> None:
        count = config.shards if isinstance(config.shards, int) else None   # None: Discord recommends (auto)
        ids = list(config.shard_ids) if config.shard_ids is not None else None
        super().__init__(config, open_index=open_index, shard_count=count, shard_ids=ids)
        self._pacer: IdentifyPacer | None = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Replaces discord.py's flat 5 s before every IDENTIFY but the first with Discord's actual limit."""
        if self._pacer is None:
            self._pacer = IdentifyPacer(await self._max_concurrency())
        await self._pacer.wait(shard_id or 0)

    async def _max_concurrency(self) -> int:
        try:
            limits = await self.fetch_session_start_limits()      # GET /gateway/bot
        except (discord.HTTPException, discord.GatewayNotFound) as e:
            _log.warning("Could not read the session start limit (%s); identifying one shard at a time", e)
            return 1
        _log.info("Discord allows %d IDENTIFY(s) per 5 s; %d session starts left", limits.max_concurrency,
                  limits.remaining)
        return limits.max_concurrency


def make_bot(config: Config, *, open_index: bool = True) -> NewsdeskBot:
    """The bot this configuration asks for: sharded when NEWSDESK_SHARDS is set, else one gateway connection."""
    if config.sharded:
        return ShardedNewsdeskBot(config, open_index=open_index)
    return NewsdeskBot(config, open_index=open_index)
