"""Buttons: paging an answer (More), posting a passage (Cite, Post), feedback, and paging /sources."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

import discord

from . import layout
from .app import report_error, track

if TYPE_CHECKING:
    from index.desk import Newsdesk, Result

__all__ = ("TrackedView", "AnswerView", "PostView", "SourcesView", "ask_page")

_log = logging.getLogger(__name__)


class TrackedView(discord.ui.View):
    """A view whose callbacks count as in-flight work and whose errors reach the person like a command's."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        track(interaction)
        return True

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item, /) -> None:
        await report_error(interaction, error)


async def only_owner(interaction: discord.Interaction, owner_id: int, refusal: str) -> bool:
    """True for the view's owner; anyone else gets the refusal, privately."""
    if interaction.user.id == owner_id:
        return True
    await interaction.response.send_message(refusal, ephemeral=True)
    return False


async def ask_page(desk: "Newsdesk", question: str, k: int, offset: int, source: str | None,
                   header: str | None = None) -> tuple[layout.Page, bool] | str:
    """One page of an answer and whether a next page exists, or the abstention text.

    Asks the engine for one result more than the page holds: that is how we know More has something to show.
    """
    answer = await desk.ask(question, k=k + 1, offset=offset, source=source)
    if answer.abstained:
        return layout.abstention_text(answer)
    if not answer.results:
        return "No more results."
    page = layout.answer_page(answer, offset, k, header=header)
    return page, len(answer.results) > len(page.results)


async def post_card(interaction: discord.Interaction, result: "Result") -> None:
    """The passage as a public quote card in the channel, answering this button press."""
    await interaction.response.send_message(layout.quote_card(result.record, result.quote))


class AnswerView(TrackedView):
    """Under a public answer: More (the asker only), Cite and 👍/👎 (anyone)."""

    def __init__(self, desk: "Newsdesk", asker_id: int, question: str, k: int, source: str | None,
                 page: layout.Page, has_more: bool, header: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(timeout=timeout)
        self.desk, self.asker_id, self.question, self.k, self.source = desk, asker_id, question, k, source
        self.header = header
        self.offset = 0
        self.page = page
        self.more.disabled = not has_more
        self.message: discord.InteractionMessage | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        if (interaction.data or {}).get("custom_id") != self.more.custom_id:
            return True
        return await only_owner(interaction, self.asker_id,
                                "Only the person who asked can page through this answer. Ask your own with `/ask`.")

    async def on_timeout(self) -> None:
        if self.message is not None:
            try:
                await self.message.edit(view=None)
            except discord.HTTPException:
                pass  # the message is gone or the token expired: nothing left to tidy

    @discord.ui.button(label="More", emoji="➡️", style=discord.ButtonStyle.primary, custom_id="answer:more")
    async def more(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        offset = self.offset + len(self.page.results)
        got = await ask_page(self.desk, self.question, self.k, offset, self.source, self.header)
        if isinstance(got, str):
            button.disabled = True
            await interaction.response.edit_message(view=self)
            await interaction.followup.send(got, ephemeral=True)
            return
        self.page, has_more = got
        self.offset = offset
        button.disabled = not has_more
        await interaction.response.edit_message(content=self.page.content, view=self)

    @discord.ui.button(label="Cite", emoji="📌", style=discord.ButtonStyle.secondary, custom_id="answer:cite")
    async def cite(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        results = self.page.results
        if len(results) == 1:
            await post_card(interaction, results[0])
            return
        await interaction.response.send_message("Which passage should I post in the channel?",
                                                view=PostView(results, interaction.user.id), ephemeral=True)

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary, custom_id="answer:up")
    async def thumbs_up(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._vote(interaction, +1)

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary, custom_id="answer:down")
    async def thumbs_down(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._vote(interaction, -1)

    async def _vote(self, interaction: discord.Interaction, vote: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        ids = [result.record.id for result in self.page.results]
        written = await self.desk.record_feedback(interaction.user.id, ids, self.question, vote)
        what = "this passage" if len(ids) == 1 else f"the {len(ids)} passages shown"
        when = "" if written else " (saved as soon as the running rebuild finishes)"
        await interaction.followup.send(f"Thanks! Your {'👍' if vote > 0 else '👎'} is recorded for {what}{when}.",
                                        ephemeral=True)


class PostView(TrackedView):
    """One "Post" button per passage (an ephemeral chooser): the press posts that passage publicly."""

    def __init__(self, results: Sequence["Result"], owner_id: int, timeout: float = 600.0) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        for i, result in enumerate(results[:25]):
            button = discord.ui.Button(label=layout.option_label(f"Post {result.record.id}"),
                                       style=discord.ButtonStyle.primary if i == 0 else discord.ButtonStyle.secondary,
                                       custom_id=f"post:{result.record.id}"[:100], row=i // 5)
            button.callback = self._poster(result)
            self.add_item(button)

    def _poster(self, result: "Result"):
        async def callback(interaction: discord.Interaction) -> None:
            await post_card(interaction, result)
        return callback

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        return await only_owner(interaction, self.owner_id, "These buttons belong to someone else.")


class SourcesView(TrackedView):
    """Previous / Next through the indexed articles; only the person who asked can page."""

    def __init__(self, desk: "Newsdesk", owner_id: int, per_page: int, total: int, shown: int,
                 timeout: float = 600.0) -> None:
        super().__init__(timeout=timeout)
        self.desk, self.owner_id, self.per_page, self.total = desk, owner_id, per_page, total
        self.starts = [0]           # where each page visited so far began (pages fit what fits)
        self.shown = shown
        self._update()

    def _update(self) -> None:
        self.previous.disabled = len(self.starts) == 1
        self.next.disabled = self.starts[-1] + self.shown >= self.total

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        await super().interaction_check(interaction)
        return await only_owner(interaction, self.owner_id, "Only the person who asked can page this list.")

    async def _show(self, interaction: discord.Interaction, offset: int) -> None:
        rows = await self.desk.articles(offset, self.per_page)
        self.total = await self.desk.count_articles()
        content, self.shown = layout.sources_page(rows, offset, self.total)
        self._update()
        await interaction.response.edit_message(content=content, view=self)

    @discord.ui.button(label="Previous", emoji="⬅️", style=discord.ButtonStyle.secondary, custom_id="sources:prev")
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        if len(self.starts) > 1:
            self.starts.pop()
        await self._show(interaction, self.starts[-1])

    @discord.ui.button(label="Next", emoji="➡️", style=discord.ButtonStyle.primary, custom_id="sources:next")
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.starts.append(self.starts[-1] + self.shown)
        await self._show(interaction, self.starts[-1])
