"""The bot: a commands.Bot that opens the Newsdesk engine, loads the cogs and answers every error."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from index.config import Settings
from index.desk import Newsdesk, PendingAnswer
from index.errors import IndexNotBuilt, NewsdeskError
from index.inert import clean
from index.render import escape_markdown

from . import checks
from .config import Config
from .limits import PostLimits

__all__ = ("NewsdeskBot", "NewsdeskTree", "EXTENSIONS", "apply_endpoints", "error_message", "reply_error",
           "report_error", "deliver", "track", "defer_answer", "apology")

_log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.ask", "bot.cogs.admin", "bot.cogs.info", "bot.cogs.ingest", "bot.cogs.mention")
GENERIC_ERROR = "Something went wrong on Newsdesk's side while doing that. It has been logged; please try again later."
DISCORD_ERROR = "Discord did not accept Newsdesk's reply (Discord's side failed). Please try again in a moment."
CLOSING = "Newsdesk is restarting. Please try again in a minute."
# discord.py retries a failing edit for about 25 s; past this the answer goes out as a followup instead.
EDIT_DEADLINE_S = 8.0
# An interaction token works this long after the interaction was created; then "thinking…" can no longer change.
TOKEN_LIFETIME_S = 15 * 60
RESTARTED = "Newsdesk restarted before it could answer. "
_LOADING = discord.MessageFlags.loading.flag


def apply_endpoints(config: Config) -> None:
    """Point discord.py at a Discord-compatible server (a local test double, say) when configured.

    Both are process-wide class attributes; discord.py reads them when each request or connection is made.
    """
    if config.api_base:
        discord.http.Route.BASE = config.api_base
    if config.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


def error_message(error: BaseException, show_paths: bool = False) -> str | None:
    """What to tell the person, or None for a bug (which gets the generic line and a logged traceback).

    Engine errors may name the operator's files: only the owner (show_paths) sees them.
    """
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, NewsdeskError):
        text = str(error) if show_paths else checks.redact_paths(str(error))
        return escape_markdown(text)     # it may quote the person's own input
    if isinstance(error, checks.NotOperator):
        return str(error)
    if isinstance(error, discord.DiscordServerError):
        return DISCORD_ERROR
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"You're asking quickly: please wait {math.ceil(error.retry_after)} s before the next one."
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("guild", "server").replace("_", " ").title() for p in error.missing_permissions)
        return f"Only members with the {needed} permission can do that."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not valid here: {error.value!r}."
    if isinstance(error, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
        return "This command has changed since Discord last heard of it; an admin needs to run `newsdesk sync`."
    return None


async def reply_error(interaction: discord.Interaction, text: str) -> None:
    """Tell only this person, whatever state the interaction is in."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # A public "thinking…" would turn into the error for everyone to see: remove it, then follow up.
            with contextlib.suppress(discord.HTTPException):
                original = await interaction.original_response()
                if original.flags.loading and not original.flags.ephemeral:
                    await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as e:
        _log.warning("Could not tell user %s about an error: %s", interaction.user.id, e)


async def deliver(interaction: discord.Interaction, content: str, view: discord.ui.View) -> discord.Message:
    """Put the answer in place of "thinking…"; when Discord fails that edit, send the same answer as a followup
    (the first followup after a defer takes the "thinking…" message's place), so a computed answer is not lost."""
    try:
        return await asyncio.wait_for(interaction.edit_original_response(content=content, view=view), EDIT_DEADLINE_S)
    except (discord.DiscordServerError, asyncio.TimeoutError) as e:
        _log.warning("Editing the answer failed (%r); sending it as a followup", e)
        return await interaction.followup.send(content, view=view, wait=True)


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """The one error path for commands and buttons: a known error as is, a bug logged in full."""
    original = getattr(error, "original", error)
    text = error_message(original, show_paths=checks.is_owner(interaction))
    if text is None:
        data: dict[str, Any] = dict(interaction.data or {})
        what = interaction.command.qualified_name if interaction.command else data.get("custom_id")
        _log.error("Interaction %r by user %s failed", what, interaction.user.id, exc_info=original)
        text = GENERIC_ERROR
    await reply_error(interaction, text)


async def defer_answer(interaction: discord.Interaction, *, ephemeral: bool = False, question: str | None = None) -> None:
    """Answer with "thinking…" and remember that an answer is owed until the task answering it ends (however
    it ends, except cancelled): a bot restarted after a crash replaces a "thinking…" left behind with an
    apology (NewsdeskBot.recover_pending). question: what to offer to ask again."""
    await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    client = interaction.client
    if isinstance(client, NewsdeskBot):
        await client.remember_pending(interaction, ephemeral, question)


def apology(answer: PendingAnswer) -> str:
    """What replaces a "thinking…" left by a crash: say so, and how to ask again."""
    if answer.kind == "/ask" and answer.question:
        return RESTARTED + "Please ask again: /ask " + escape_markdown(clean(answer.question, 200))
    if answer.kind.startswith("/"):
        return RESTARTED + f"Please run {answer.kind} again."
    if answer.kind == "button":
        return RESTARTED + "Please press the button again."
    return RESTARTED + f"Please use {answer.kind} again."      # a context menu: "Find sources"


def track(interaction: discord.Interaction) -> None:
    """Count the current task as in-flight work, so a shutdown lets it finish."""
    client = interaction.client
    if isinstance(client, NewsdeskBot):
        client.track(asyncio.current_task())


class NewsdeskTree(app_commands.CommandTree):
    """A tree that tracks running commands and answers every failure ephemerally."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        bot = self.client
        if isinstance(bot, NewsdeskBot) and bot.closing:
            if interaction.type is not discord.InteractionType.autocomplete:
                await reply_error(interaction, CLOSING)
            return False
        track(interaction)
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
        if interaction.type is discord.InteractionType.autocomplete:
            _log.warning("Autocomplete failed: %s", error)
            return
        await report_error(interaction, error)


class NewsdeskBot(commands.Bot):
    """Newsdesk on Discord: slash commands, a message context menu, buttons and mentions; no privileged intents.

    guild_messages and dm_messages deliver MESSAGE_CREATE; without message_content (privileged) Discord still
    includes the text of messages that mention the bot, which is all bot.cogs.mention reads.
    """

    def __init__(self, config: Config, *, open_index: bool = True, **options: Any) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False   # text only: no voice warnings
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=discord.Intents(guilds=True, guild_messages=True, dm_messages=True),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=NewsdeskTree,
            guild_ready_timeout=config.guild_ready_timeout,
            **options,                          # shard_count, shard_ids (bot.shards)
        )
        self.config = config
        self.open_index = open_index
        self.closing = False
        self._desk: Newsdesk | None = None
        self._inflight: set[asyncio.Task] = set()
        self._bookkeeping: set[asyncio.Task] = set()     # pending-answer recovery and forgetting
        self._shutdown: asyncio.Future | None = None
        self.post_limits = PostLimits(config.post_limit, config.channel_post_limit)

    @property
    def desk(self) -> Newsdesk:
        if self._desk is None:
            raise IndexNotBuilt("The index is not loaded.", "Start the bot with `newsdesk run`.")
        return self._desk

    async def setup_hook(self) -> None:
        await checks.load_owners(self)
        if self.open_index:
            settings = Settings(Path(self.config.db), Path(self.config.corpus).resolve(), self.config.search)
            # A database proven damaged is rebuilt at start-up (the damaged file is kept): an operator's
            # long-running bot should come back answering, not stop on a file it can replace.
            self._desk = desk = await Newsdesk.open(settings, repair=True, on_wait=_log.info)
            for notice in desk.notices:
                _log.info("%s", notice)
            if desk.build is not None:
                _log.info("Index loaded: %s, %d passages", desk.build.label, desk.build.passages)
            # Alongside connecting: an edit needs only the application id and the token.
            self._background(self.recover_pending(), "recover-pending")
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def on_message(self, message: discord.Message, /) -> None:
        """No text commands: mentions are answered by bot.cogs.mention (this skips process_commands)."""

    # -- answers left "thinking…" by a crash ------------------------------------------------------

    async def remember_pending(self, interaction: discord.Interaction, ephemeral: bool, question: str | None) -> None:
        """Record the deferred interaction until the current task ends (see defer_answer)."""
        task = asyncio.current_task()
        if self._desk is None or task is None:
            return
        command = interaction.command
        kind = "button" if command is None else command.name if isinstance(command, app_commands.ContextMenu) \
            else "/" + command.qualified_name
        answer = PendingAnswer(interaction.token, interaction.application_id, interaction.created_at.timestamp(),
                               kind, ephemeral, self._shard_of(interaction), question)
        try:
            await self._desk.remember_pending(answer)
        except NewsdeskError as e:      # bookkeeping never stands in the way of the answer
            _log.warning("Could not record the pending answer to interaction %s: %s", interaction.id, e)
            return
        task.add_done_callback(lambda done: self._answered(done, answer.token))

    def _answered(self, task: asyncio.Task, token: str) -> None:
        # Cancelled (a crash, or shutdown past drain_timeout): "thinking…" stays, and the next start apologizes.
        if not task.cancelled() and self._desk is not None:
            self._background(self._forget(self._desk, token), "forget-pending")

    @staticmethod
    async def _forget(desk: Newsdesk, token: str) -> None:
        try:
            await desk.forget_pending(token)
        except NewsdeskError as e:
            _log.warning("Could not forget a pending answer: %s", e)

    async def recover_pending(self) -> None:
        """Edit each answer an earlier run left "thinking…" (token still alive) to an apology, then forget it;
        the earlier ones are forgotten unedited. Only this process's shards: others may be running."""
        desk = self._desk
        if desk is None:
            return
        try:
            answers = await desk.stale_pending(TOKEN_LIFETIME_S, self._own_shards())
        except NewsdeskError as e:
            _log.warning("Could not look for answers left pending by the last run: %s", e)
            return
        for answer in answers:
            await self._apologize(answer)
            await self._forget(desk, answer.token)
        if answers:
            _log.info("Told %d people whose answers were pending at the last stop to ask again", len(answers))

    async def _apologize(self, answer: PendingAnswer) -> None:
        # The interaction webhook's own endpoints, as discord.py's Interaction uses them ("@original" is literal:
        # as a message id discord.py would percent-encode it).
        route = functools.partial(discord.http.Route, path="/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                                  webhook_id=answer.application_id, webhook_token=answer.token)
        try:
            message = await self.http.request(route(method="GET"))
            if not int(message.get("flags") or 0) & _LOADING:
                return      # answered after all (the forget was not written before the crash): leave it be
            await self.http.request(route(method="PATCH"), json={
                "content": apology(answer), "components": [], "allowed_mentions": {"parse": []}})
        except discord.HTTPException as e:        # gone, expired, or Discord failing: nothing more to do
            _log.info("Could not edit an answer left pending (%s): %s", answer.kind, e)

    def _shard_of(self, interaction: discord.Interaction) -> int:
        """The shard Discord routes the interaction's server through (a DM comes through shard 0)."""
        count = self.shard_count or 1
        return (interaction.guild_id >> 22) % count if interaction.guild_id else 0

    def _own_shards(self) -> list[int] | None:
        ids = getattr(self, "shard_ids", None)            # an AutoShardedBot's slice, or None: all of them
        if ids is None and self.shard_id is not None:
            ids = [self.shard_id]
        return None if ids is None else list(ids)

    def _background(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)

    def track(self, task: asyncio.Task | None) -> None:
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def close(self) -> None:
        """Refuse new work, let in-flight commands finish (up to drain_timeout), then disconnect and close the index.

        One shutdown, however many callers: a signal starts it, and `async with bot` or run() may ask again
        while it is under way; each waits for the same one, so none returns while the index is still open
        (asyncio.run would cancel the rest, and an unclosed database connection keeps the process alive).
        """
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        self.closing = True
        pending = {t for t in self._inflight if not t.done() and t is not asyncio.current_task()}
        if pending:
            _log.info("Waiting up to %.0f s for %d command(s) to finish", self.config.drain_timeout, len(pending))
            _, late = await asyncio.wait(pending, timeout=self.config.drain_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        await super().close()
        if self._bookkeeping:
            _, late = await asyncio.wait(set(self._bookkeeping), timeout=self.config.drain_timeout)
            for task in late:
                task.cancel()
        if self._desk is not None:
            desk, self._desk = self._desk, None
            await desk.close()
