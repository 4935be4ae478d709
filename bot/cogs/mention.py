"""Asked the Discord way: a mention with a question, a reply-mention to check a message, follow-ups in threads.

Needs no privileged intent: Discord delivers the text of a message that mentions the bot. The text of a
replied-to message is fetched; without the Message Content intent Discord blanks it (unless it mentions the
bot or the bot wrote it), and the reply then points to the "Find sources" menu, which always gets the text.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

import discord
from discord import app_commands
from discord.ext import commands

from index.search import MAX_QUESTION_CHARS

from .. import layout, threads
from ..app import GENERIC_ERROR, NewsdeskBot, error_message
from ..views import answer_view, ask_page

__all__ = ("MentionCog", "setup")

_log = logging.getLogger(__name__)

ANSWER_K = 5
FIND_SOURCES_K = 5
USAGE = ("Ask me a question by mentioning me: “{me} who leads the LNA?”. Reply to a message and mention me to find "
         "its sources.")
UNREADABLE = ("Discord does not show me the text of that message (I only see messages that mention me). "
              "Right-click it → Apps → **Find sources** instead.")


def _mention(user_id: int) -> re.Pattern[str]:
    return re.compile(rf"<@!?{user_id}>")


class MentionCog(commands.Cog):
    """Messages that mention Newsdesk: answered as replies, in the channel or thread they were asked in."""

    def __init__(self, bot: NewsdeskBot) -> None:
        self.bot = bot
        self._buckets: dict[int, app_commands.Cooldown] = {}

    def _retry_after(self, user_id: int) -> float | None:
        """The /ask limit (ask_cooldown) applies to mentions too; None when this one may go ahead."""
        rate, per = self.bot.config.ask_cooldown
        if rate <= 0:
            return None
        return self._buckets.setdefault(user_id, app_commands.Cooldown(rate, per)).update_rate_limit()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or self.bot.closing:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if not any(user.id == me.id for user in message.mentions):
            return
        self.bot.track(asyncio.current_task())
        try:
            wait = self._retry_after(message.author.id)
            if wait is not None:
                await self._reply(message, f"You're asking quickly: please wait {math.ceil(wait)} s.")
                return
            await self._answer(message, me)
        except Exception as error:   # noqa: BLE001 - every failure gets a reply (bugs are logged in full)
            text = error_message(error)
            if text is None:
                _log.error("Mention %s by user %s failed", message.id, message.author.id, exc_info=error)
                text = GENERIC_ERROR
            try:
                await self._reply(message, text)
            except discord.HTTPException as e:
                _log.warning("Could not reply to message %s: %s", message.id, e)

    async def _answer(self, message: discord.Message, me: discord.ClientUser) -> None:
        text = _mention(me.id).sub(" ", message.content).strip()
        context = None
        if message.reference is not None and message.reference.message_id is not None:
            target = await _referenced(message)
            if target is not None and target.author.id != me.id:
                await self._find_sources(message, target)
                return
            if target is not None:              # a reply to one of our answers: a follow-up to its question
                context = layout.question_of(target.content)
        if context is None and isinstance(message.channel, discord.Thread):
            context = await threads.thread_question(message.channel)
        if not text:
            await self._reply(message, USAGE.format(me=me.mention))
            return
        question = layout.as_question(text, MAX_QUESTION_CHARS)
        header = layout.question_line(question) + ("\n" + layout.context_line(context) if context else "")
        async with message.channel.typing():
            got = await ask_page(self.bot.desk, question, ANSWER_K, 0, None, header, context)
        if isinstance(got, str):
            await self._reply(message, got)     # asked in public: the non-answer is public too
            return
        page, has_more = got
        view = answer_view(message.author.id, len(page.results), ANSWER_K, None, has_more,
                           discuss=isinstance(message.channel, discord.TextChannel))
        await self._reply(message, page.content, view)

    async def _find_sources(self, message: discord.Message, target: discord.Message) -> None:
        """What "Find sources" does, for everyone to see, as a reply to the person who asked."""
        text = target.content or " ".join(e.description for e in target.embeds if e.description)
        if not text.strip():
            await self._reply(message, UNREADABLE)
            return
        header = f"Passages matching [this message](<{target.jump_url}>):"
        async with message.channel.typing():
            got = await ask_page(self.bot.desk, layout.as_question(text, MAX_QUESTION_CHARS), FIND_SOURCES_K, 0,
                                 None, header)
        await self._reply(message, got if isinstance(got, str) else got[0].content)

    @staticmethod
    async def _reply(message: discord.Message, content: str, view: discord.ui.View | None = None) -> None:
        # AllowedMentions.none() (the bot's default) also keeps the reply from pinging its author.
        if view is None:
            await message.reply(content, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
        else:
            await message.reply(content, mention_author=False, allowed_mentions=discord.AllowedMentions.none(),
                                view=view)


async def _referenced(message: discord.Message) -> discord.Message | None:
    """The replied-to message, fetched (the gateway copy may be stale or missing); None if it is gone."""
    ref = message.reference
    assert ref is not None and ref.message_id is not None
    channel = message.channel
    if ref.channel_id != channel.id:
        got = message.guild.get_channel_or_thread(ref.channel_id) if message.guild else None
        if not isinstance(got, discord.abc.Messageable):
            return None
        channel = got
    try:
        return await channel.fetch_message(ref.message_id)
    except (discord.NotFound, discord.Forbidden):
        return None


async def setup(bot: NewsdeskBot) -> None:
    await bot.add_cog(MentionCog(bot))
