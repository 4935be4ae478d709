"""/sources and /about: what is indexed and how to cite it."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from index.errors import IndexNotBuilt

from .. import layout
from ..app import NewsdeskBot
from ..views import sources_message

__all__ = ("InfoCog", "setup")

_log = logging.getLogger(__name__)


class InfoCog(commands.Cog):
    """What Newsdesk knows: the articles, the index build, and how to cite."""

    def __init__(self, bot: NewsdeskBot) -> None:
        self.bot = bot

    @app_commands.command()
    async def sources(self, interaction: discord.Interaction) -> None:
        """List the indexed news articles, a page at a time."""
        content, view = await sources_message(self.bot, interaction.user.id, 0)
        await interaction.response.send_message(content, view=view, ephemeral=True)

    @app_commands.command()
    async def about(self, interaction: discord.Interaction) -> None:
        """How big the corpus is, which index build answers, and how to cite a passage."""
        desk = self.bot.desk
        if desk.build is None:
            raise IndexNotBuilt("The index is not loaded yet.", "Try again in a minute.")
        articles = await desk.count_articles()
        await interaction.response.send_message(layout.about_text(desk.build, articles), ephemeral=True)


async def setup(bot: NewsdeskBot) -> None:
    await bot.add_cog(InfoCog(bot))
