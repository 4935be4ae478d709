"""/add and /feeds: new articles from links, uploads and feeds (operators only), and the scheduled feed poll.

The work is the engine's (Newsdesk.add, .fetch, .add_feed …): fetching waits on the event loop,
extraction and the rebuild run in worker threads, so answers never wait for a fetch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from index.corpus import SUFFIXES
from index.errors import NewsdeskError
from index.ingest import Added

from ..app import NewsdeskBot, defer_answer
from ..checks import operator_only

__all__ = ("IngestCog", "setup", "ATTACHMENT_LIMIT", "fetch_interval")

_log = logging.getLogger(__name__)

# An uploaded article is read into memory and parsed whole: 5 MiB is far beyond any news story (the
# longest in the shipped corpus is 30 KB) and well under Discord's own upload limit.
ATTACHMENT_LIMIT = 5 * 2**20
ACCEPTED = (".txt", ".md", ".html", ".jsonl")
DEFAULT_INTERVAL_MIN = 30.0


def fetch_interval(env: dict[str, str] | None = None) -> float:
    """Seconds between feed polls, from NEWSDESK_FETCH_INTERVAL in minutes (default 30; 0 = off)."""
    raw = (os.environ if env is None else env).get("NEWSDESK_FETCH_INTERVAL", "").strip()
    try:
        minutes = float(raw) if raw else DEFAULT_INTERVAL_MIN
    except ValueError:
        _log.warning("NEWSDESK_FETCH_INTERVAL=%r is not a number of minutes; polling every %g", raw, DEFAULT_INTERVAL_MIN)
        minutes = DEFAULT_INTERVAL_MIN
    return max(0.0, minutes * 60)


def _escape(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def preview(added: Added) -> str:
    """The ephemeral preview: title (a masked link, preview suppressed), outlet, date, paragraphs, ¶1 quoted."""
    a = added.article
    title = f"**{_escape(a.title)}**"
    if added.url:           # validated by links.safe_url: http(s), nothing that can close the link early
        title = f"[{title}](<{added.url}>)"
    facts = " · ".join(f for f in (_escape(a.outlet or ""), a.published or "no date", f"{len(a.paragraphs)} paragraphs") if f)
    first = _escape(a.paragraphs[0].text[:900]) + ("…" if len(a.paragraphs[0].text) > 900 else "") if a.paragraphs else ""
    return f"📰 Added {title}\n{facts}\n> {first}\n⏳ Updating the index…"


class FeedsGroup(app_commands.Group):
    def __init__(self, bot: NewsdeskBot) -> None:
        super().__init__(name="feeds", description="The news feeds Newsdesk polls (operators only).",
                         guild_only=True, default_permissions=discord.Permissions(manage_guild=True))
        self.bot = bot

    @app_commands.command(name="add")
    @app_commands.describe(url="The feed's http(s) address (RSS or Atom)")
    @operator_only()
    async def add(self, interaction: discord.Interaction, url: str) -> None:
        """Add a news feed (it is checked first)."""
        await defer_answer(interaction, ephemeral=True)
        try:
            feed, items = await self.bot.desk.add_feed(url)
        except NewsdeskError as e:
            await interaction.edit_original_response(content=_escape(e.message))
            return
        await interaction.edit_original_response(
            content=f"Added feed <{feed.url}>: {_escape(feed.title or 'untitled')} ({items} items). "
                    "Its articles arrive at the next poll.")

    @app_commands.command(name="list")
    @operator_only()
    async def list(self, interaction: discord.Interaction) -> None:
        """List the news feeds and what each answered last."""
        feeds = await self.bot.desk.feeds()
        lines = [f"<{f.url}> {_escape(f.title or 'untitled')} — "
                 + (f"{f.last_polled}: {_escape(f.last_result or '')}" if f.last_polled else "not polled yet")
                 for f in feeds]
        await interaction.response.send_message("\n".join(lines)[:1900] or "No feeds yet. Add one with /feeds add.",
                                                ephemeral=True)

    @app_commands.command(name="remove")
    @app_commands.describe(url="The feed's address as /feeds list shows it")
    @operator_only()
    async def remove(self, interaction: discord.Interaction, url: str) -> None:
        """Remove a news feed (its articles stay)."""
        feed = await self.bot.desk.remove_feed(url)
        await interaction.response.send_message(f"Removed feed <{feed.url}>; its articles stay.", ephemeral=True)


class IngestCog(commands.Cog):
    """Articles in: one at a time by link or upload, and from the feeds on a schedule."""

    def __init__(self, bot: NewsdeskBot, interval: float | None = None) -> None:
        self.bot = bot
        self.interval = fetch_interval() if interval is None else interval
        self.poller: asyncio.Task | None = None
        bot.tree.add_command(FeedsGroup(bot))

    async def cog_load(self) -> None:
        if self.interval > 0:
            self.poller = asyncio.create_task(self._poll_forever(), name="newsdesk-feed-poll")

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command("feeds")
        if self.poller is not None:
            self.poller.cancel()
            await asyncio.wait({self.poller})

    async def _poll_forever(self) -> None:
        """Poll the feeds every interval; a failed poll is logged and the next one comes all the same."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if not await self.bot.desk.feeds():
                    continue
                report = await self.bot.desk.fetch()
                _log.info("Feeds polled: %d added, %d skipped", len(report.added), len(report.skipped))
            except NewsdeskError as e:
                _log.warning("Feed poll: %s", e.message)
            except Exception:
                _log.exception("Feed poll failed")

    @app_commands.command(name="add")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.describe(url="A news article's http(s) address",
                           file="An article file: .txt, .md, .html or .jsonl, at most 5 MiB")
    @operator_only()
    async def add(self, interaction: discord.Interaction, url: str | None = None,
                  file: discord.Attachment | None = None) -> None:
        """Add one news article by link or file (operators only)."""
        if (url is None) == (file is None):
            await interaction.response.send_message("Give either `url` or `file`, one of the two.", ephemeral=True)
            return
        if file is not None:
            if Path(file.filename).suffix.lower() not in ACCEPTED:
                await interaction.response.send_message(
                    f"Only {', '.join(ACCEPTED)} files can be added, not {_escape(file.filename[:80])}.", ephemeral=True)
                return
            if file.size > ATTACHMENT_LIMIT:
                await interaction.response.send_message(
                    f"That file is {file.size / 2**20:.1f} MiB; the limit is {ATTACHMENT_LIMIT // 2**20} MiB.", ephemeral=True)
                return
        await defer_answer(interaction, ephemeral=True)

        async def show(added: Added) -> None:
            await interaction.edit_original_response(content=preview(added))

        try:
            if file is not None:
                data = await file.read()
                added, build = await self.bot.desk.add(file.filename, data, on_added=show)
            else:
                added, build = await self.bot.desk.add(url or "", on_added=show)
        except NewsdeskError as e:
            await interaction.edit_original_response(content=_escape(e.message))
            return
        done = preview(added).replace("⏳ Updating the index…",
                                      f"✅ Searchable now: build {build.build_id}, {build.passages} passages.")
        await interaction.edit_original_response(content=done)


async def setup(bot: NewsdeskBot) -> None:
    await bot.add_cog(IngestCog(bot))
