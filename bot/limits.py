"""Limits on what reaches a channel publicly: per person and per channel, and one card per Post button."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict

import discord
from discord import app_commands

__all__ = ("allow_public_post", "first_post", "forget_post", "PostLimits")

_log = logging.getLogger(__name__)

# How many (message, passage) pairs already posted are remembered against a second press.
REMEMBERED_POSTS = 10_000


class PostLimits:
    """Cooldown buckets for public cards, keyed by user and by channel (discord.py's own Cooldown)."""

    def __init__(self, per_user: tuple[int, float], per_channel: tuple[int, float]) -> None:
        self.per_user, self.per_channel = per_user, per_channel
        self._users: dict[int, app_commands.Cooldown] = {}
        self._channels: dict[int, app_commands.Cooldown] = {}
        self.posted: OrderedDict[tuple[int, str], float] = OrderedDict()

    def check(self, user_id: int, channel_id: int) -> tuple[str, float] | None:
        """None when a post may go out now (and counts it); else ("you"|"channel", seconds to wait)."""
        buckets = [(who, table.setdefault(key, app_commands.Cooldown(*rate)))
                   for who, table, key, rate in (("you", self._users, user_id, self.per_user),
                                                 ("channel", self._channels, channel_id, self.per_channel))
                   if rate[0] > 0]
        for who, bucket in buckets:
            if bucket.get_tokens() == 0:
                return who, bucket.get_retry_after()
        for _, bucket in buckets:
            bucket.update_rate_limit()
        return None


def _limits(interaction: discord.Interaction) -> PostLimits:
    return interaction.client.post_limits  # type: ignore[attr-defined]


async def allow_public_post(interaction: discord.Interaction) -> bool:
    """Count a public card against the person's and the channel's limits; refuse privately past them."""
    refused = _limits(interaction).check(interaction.user.id, interaction.channel_id or 0)
    if refused is None:
        return True
    who, wait = refused
    text = (f"You're posting quickly: please wait {math.ceil(wait)} s before the next card." if who == "you" else
            f"This channel has had many cards just now: please wait {math.ceil(wait)} s.")
    if interaction.response.is_done():       # e.g. a thread asked for with an answer already shown
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)
    return False


def _post_key(interaction: discord.Interaction, passage_id: str) -> tuple[int, str]:
    return (interaction.message.id if interaction.message else 0, passage_id)


def first_post(interaction: discord.Interaction, passage_id: str) -> bool:
    """True the first time this button (message, passage) is pressed; a second press posts nothing."""
    posted = _limits(interaction).posted
    key = _post_key(interaction, passage_id)
    if key in posted:
        return False
    posted[key] = time.monotonic()
    while len(posted) > REMEMBERED_POSTS:
        posted.popitem(last=False)
    return True


def forget_post(interaction: discord.Interaction, passage_id: str) -> None:
    _limits(interaction).posted.pop(_post_key(interaction, passage_id), None)
