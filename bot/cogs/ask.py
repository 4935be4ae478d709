"""/ask, /cite and the "Find sources" message menu: route to the engine, render with bot.layout."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from index.errors import PassageNotFound, QueryError
from index.render import escape_markdown
from index.search import MAX_QUESTION_CHARS

from .. import layout, limits, threads
from ..app import NewsdeskBot, defer_answer, deliver, reply_error
from ..views import PERSISTENT_ITEMS, answer_view, ask_page, post_view

__all__ = ("AskCog", "setup")

_log = logging.getLogger(__name__)

FIND_SOURCES_K = 5


def _ask_cooldown(interaction: discord.Interaction) -> app_commands.Cooldown | None:
    rate, per = interaction.client.config.ask_cooldown  # type: ignore[attr-defined]
    return app_commands.Cooldown(rate, per) if rate > 0 else None


class AskCog(commands.Cog):
    """Members' commands: questions, citations and checking a message's sources."""

    def __init__(self, bot: NewsdeskBot) -> None:
        self.bot = bot
        self.find_sources_menu = app_commands.ContextMenu(name="Find sources", callback=self.find_sources)
        bot.tree.add_command(self.find_sources_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.find_sources_menu.name, type=self.find_sources_menu.type)

    async def _resolve_source(self, source: str | None) -> tuple[str | None, str | None]:
        """The article's source key and a header naming it; a typed title is matched when it is unambiguous."""
        if not source:
            return None, None
        matches = await self.bot.desk.find_articles(source, limit=2)
        exact = [a for a in matches if a.source == source]
        if exact or len(matches) == 1:
            article = (exact or matches)[0]
            return article.source, f"*Only in {escape_markdown(layout.option_label(article.title, 150))}*"
        raise QueryError(f"No single indexed article matches “{layout.option_label(source, 100)}”.",
                         "Pick one from the list that appears as you type, or see /sources.")

    @app_commands.command()
    @app_commands.describe(
        question="What you want to know, in your own words",
        source="Search only this article (start typing its title)",
        k="How many passages per page (1–10, default 5)",
        private="Show the answer only to you (a \"no answer\" is only shown to you unless you say False)",
        thread="Open a thread on the answer for follow-up questions",
    )
    @app_commands.checks.dynamic_cooldown(_ask_cooldown)
    async def ask(self, interaction: discord.Interaction, question: app_commands.Range[str, 1, MAX_QUESTION_CHARS],
                  source: str | None = None, k: app_commands.Range[int, 1, 10] = 5, private: bool | None = None,
                  thread: bool = False) -> None:
        """Answer a question with verbatim quotes from the indexed news articles."""
        await defer_answer(interaction, ephemeral=bool(private), question=question)
        source_key, source_header = await self._resolve_source(source)
        header = "\n".join(h for h in (layout.question_line(question), source_header) if h)
        got = await ask_page(self.bot.desk, question, k, 0, source_key, header)
        if isinstance(got, str):
            if private is None:      # nobody chose to show the channel a non-answer
                await reply_error(interaction, got)
            else:
                await interaction.edit_original_response(content=got)
            return
        page, has_more = got
        discuss = not private and isinstance(interaction.channel, discord.TextChannel)
        view = answer_view(interaction.user.id, len(page.results), k, source_key, has_more, discuss=discuss)
        message = await deliver(interaction, page.content, view)
        if thread and discuss and await limits.allow_public_post(interaction):
            await threads.open_discussion(message, question)

    @ask.autocomplete("source")
    async def source_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        articles = await self.bot.desk.find_articles(current, limit=25)
        return [app_commands.Choice(name=layout.option_label(a.title or a.source, 100), value=a.source)
                for a in articles if len(a.source) <= 100]

    @app_commands.command()
    @app_commands.rename(passage_id="id")
    @app_commands.describe(passage_id="The passage ID shown in code at the end of a citation, e.g. ymmqiot")
    async def cite(self, interaction: discord.Interaction, passage_id: app_commands.Range[str, 1, 64]) -> None:
        """Post a passage as a quote card: its exact words and where they come from."""
        try:
            record = await self.bot.desk.cite(passage_id)
        except PassageNotFound as e:
            await interaction.response.send_message(layout.not_found_text(e.passage_id, e.closest), ephemeral=True)
            return
        if await limits.allow_public_post(interaction):
            await interaction.response.send_message(layout.quote_card(record))

    async def find_sources(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The passages that support or match a message, shown only to you, each with a Post button."""
        text = message.content or " ".join(e.description for e in message.embeds if e.description)
        if not text.strip():
            await interaction.response.send_message("That message has no text to look up.", ephemeral=True)
            return
        await defer_answer(interaction, ephemeral=True)
        header = f"Passages matching [this message](<{message.jump_url}>):"
        got = await ask_page(self.bot.desk, layout.as_question(text, MAX_QUESTION_CHARS), FIND_SOURCES_K, 0, None, header)
        if isinstance(got, str):
            await interaction.followup.send(got, ephemeral=True)
            return
        page, _ = got
        view = post_view([r.record.id for r in page.quoted])
        await interaction.followup.send(page.content, view=view, ephemeral=True)


async def setup(bot: NewsdeskBot) -> None:
    # Registered once: every button under every answer ever posted routes here, across restarts.
    bot.add_dynamic_items(*PERSISTENT_ITEMS)
    await bot.add_cog(AskCog(bot))
