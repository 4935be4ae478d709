"""Threads for follow-ups: open one on an answer, and read back the question a thread follows up on."""

from __future__ import annotations

import logging

from typing import Literal

import discord

from index.inert import clean

from . import layout

__all__ = ("open_discussion", "thread_question", "how_to_follow_up")

_log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100
ARCHIVE_AFTER_MINUTES: Literal[60, 1440, 4320, 10080] = 1440


def how_to_follow_up(me: discord.abc.User | None) -> str:
    name = me.mention if me is not None else "@Newsdesk"
    return f"mention {name} with a short follow-up (“{name} and Russia?”); it is searched with the question above."


async def open_discussion(message: discord.Message, question: str) -> discord.Thread:
    """A public thread on an answer, named after its question, with one line saying how to follow up."""
    name = layout.option_label(clean(question, THREAD_NAME_LIMIT) or "Follow-ups", THREAD_NAME_LIMIT)
    thread = await message.create_thread(name=name, auto_archive_duration=ARCHIVE_AFTER_MINUTES)
    await thread.send("Follow-ups here: " + how_to_follow_up(message.guild.me if message.guild else None))
    return thread


async def thread_question(thread: discord.Thread) -> str | None:
    """The question of the answer this thread was opened on (its starter message), or None.

    A thread started from a message has that message's id; the starter is fetched when not cached.
    """
    starter = thread.starter_message
    if starter is None and thread.parent is not None:
        try:
            starter = await thread.parent.fetch_message(thread.id)     # type: ignore[union-attr]
        except discord.HTTPException as e:
            _log.info("Thread %s: no starter message (%s)", thread.id, e)
            return None
    if starter is None or thread.guild.me is None or starter.author.id != thread.guild.me.id:
        return None
    return layout.question_of(starter.content)
