"""/reindex: the incremental rebuild, with progress edits and a final report, for server managers only."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import discord
from discord import app_commands
from discord.ext import commands

from index.errors import NewsdeskError

from .. import layout
from ..app import NewsdeskBot, defer_answer
from ..checks import is_owner, operator_only

__all__ = ("AdminCog", "RebuildJob", "setup")

_log = logging.getLogger(__name__)


@dataclass
class RebuildJob:
    """What a running rebuild last reported. record() is called from worker threads: it only stores."""

    user_id: int
    started: float = field(default_factory=time.monotonic)
    stage: tuple[str, int, int] = ("starting", 0, 1)

    def record(self, stage: str, done: int, total: int) -> None:
        self.stage = (stage, done, total)   # one attribute assignment: atomic, safe across threads

    def waiting(self, holder: str) -> None:
        """Another process (a `newsdesk index build`, say) holds the write lock: say so until it is ours."""
        self.stage = (f"waiting: {holder}", 0, 1)

    def progress(self) -> str:
        return layout.progress_text(*self.stage, elapsed=time.monotonic() - self.started)


class AdminCog(commands.Cog):
    """Index maintenance for people who manage the server."""

    def __init__(self, bot: NewsdeskBot) -> None:
        self.bot = bot
        self.job: RebuildJob | None = None

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @operator_only()
    async def reindex(self, interaction: discord.Interaction) -> None:
        """Re-read the corpus and update the index (operators only)."""
        desk = self.bot.desk
        if self.job is not None or desk.rebuilding:
            running = self.job
            since = f", started by <@{running.user_id}> {time.monotonic() - running.started:.0f} s ago" if running else ""
            await interaction.response.send_message(
                f"A rebuild is already running{since}. Its report goes to whoever started it.", ephemeral=True)
            return
        job = self.job = RebuildJob(interaction.user.id)
        try:
            await defer_answer(interaction, ephemeral=True)
            content = await self._rebuild(interaction, job)
        finally:
            self.job = None
        await interaction.edit_original_response(content=content)

    async def _rebuild(self, interaction: discord.Interaction, job: RebuildJob) -> str:
        """Run the rebuild (its heavy parts run in worker threads) while a ticker edits the reply."""
        desk = self.bot.desk
        _log.info("Rebuild started by user %s", job.user_id)
        ticker = asyncio.create_task(self._show_progress(interaction, job))
        try:
            report = await desk.rebuild(job.record, on_wait=job.waiting)
        except NewsdeskError as e:   # the previous index was left as it was and is still answering
            _log.warning("Rebuild failed: %s", e)
            return layout.failure_text(e, desk.build, show_paths=is_owner(interaction))
        finally:
            await self._stop(ticker)
        _log.info("Rebuild finished: %s", report.to_dict())
        return layout.report_text(report)

    async def _show_progress(self, interaction: discord.Interaction, job: RebuildJob) -> None:
        while True:
            await asyncio.sleep(self.bot.config.progress_interval)
            try:
                await interaction.edit_original_response(content=job.progress())
            except discord.HTTPException as e:   # a missed progress edit is not worth stopping the rebuild
                _log.warning("Could not edit rebuild progress: %s", e)

    @staticmethod
    async def _stop(ticker: asyncio.Task) -> None:
        # Awaited, so no progress edit can land after the report.
        ticker.cancel()
        await asyncio.wait({ticker})


async def setup(bot: NewsdeskBot) -> None:
    await bot.add_cog(AdminCog(bot))
