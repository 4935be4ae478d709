"""Buttons that survive restarts: each custom ID carries what its click needs (discord.py DynamicItem).

An answer's passage IDs and question are read back from the message itself (`interaction.message`), so
a click on a two-day-old answer works after any number of restarts, or says why it cannot.

    nd:more:<asker>:<offset>:<k>[:<source>]   next page, for the asker only
    nd:cite | nd:vote:up | nd:vote:down       passages and question read from the message
    nd:post:<passage id>                      post one passage publicly
    nd:src:<owner>:<offset>:<p|n>             page /sources
    nd:discuss                                open a thread on the answer for follow-ups
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Sequence

import discord

from index.errors import PassageNotFound

from . import layout, limits, threads
from .app import CLOSING, NewsdeskBot, defer_answer, reply_error, report_error, track

if TYPE_CHECKING:
    from index.desk import Newsdesk, Result

__all__ = ("PERSISTENT_ITEMS", "answer_view", "post_view", "sources_message", "ask_page", "post_card",
           "MoreButton", "CiteButton", "VoteButton", "PostButton", "SourcesButton", "DiscussButton")

_log = logging.getLogger(__name__)

CUSTOM_ID_LIMIT = 100
GONE = ("That passage is no longer in the index (a rebuild changed or removed its article). "
        "Ask again with `/ask` for the current wording.")
_CITED = re.compile(r"¶\d+(?: \(part \d+\))? · `([a-z0-9]+)`")


def _bot(interaction: discord.Interaction) -> NewsdeskBot:
    return interaction.client  # type: ignore[return-value]


def message_passage_ids(content: str) -> list[str]:
    """The passage IDs an answer or chooser shows, in order, read back from its citations."""
    return list(dict.fromkeys(_CITED.findall(content)))


def _frozen(*items: discord.ui.Item) -> discord.ui.View:
    """A view to send: its items are persistent, so the view itself is not kept in memory (stopped)."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()
    return view


class _Persistent(discord.ui.DynamicItem[discord.ui.Button], template=r"nd:(?!)"):
    """Common ground: refuse while closing, count as in-flight work, and answer every error privately.

    discord.py only logs what a dynamic item raises, so `run` is wrapped here.
    """

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        bot = _bot(interaction)
        if bot.closing:
            await reply_error(interaction, CLOSING)
            return False
        track(interaction)
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.run(interaction)
        except Exception as error:   # noqa: BLE001 - every failure is answered (report_error logs bugs in full)
            await report_error(interaction, error)

    async def run(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


async def ask_page(desk: "Newsdesk", question: str, k: int, offset: int, source: str | None,
                   header: str | None = None, context: str | None = None) -> tuple[layout.Page, bool] | str:
    """One page of an answer and whether a next page exists, or the abstention text.

    Asks the engine for one result more than the page holds: that is how we know More has something to show.
    context: a thread's first question, which a follow-up is searched with.
    """
    answer = await desk.ask(question, k=k + 1, offset=offset, source=source,
                            **({"context": context} if context else {}))
    if answer.abstained:
        return layout.abstention_text(answer, header)
    if not answer.results:
        return "No more results."
    page = layout.answer_page(answer, offset, k, header=header)
    return page, len(answer.results) > len(page.results)


async def post_card(interaction: discord.Interaction, record: Any, quote: Any = None) -> None:
    """The passage as a public quote card in the channel, answering this button press (rate-limited)."""
    if not await limits.allow_public_post(interaction):
        return
    await interaction.response.send_message(layout.quote_card(record, quote))


# ----------------------------------------------------------------------------------- answers


class MoreButton(_Persistent, template=r"nd:more:(?P<asker>\d+):(?P<offset>\d+):(?P<k>\d+)(?::(?P<source>.+))?"):
    def __init__(self, asker: int, offset: int, k: int, source: str | None, disabled: bool = False) -> None:
        custom_id = f"nd:more:{asker}:{offset}:{k}" + (f":{source}" if source else "")
        super().__init__(discord.ui.Button(label="More", emoji="➡️", style=discord.ButtonStyle.primary,
                                           custom_id=custom_id, disabled=disabled))
        self.asker, self.offset, self.k, self.source = asker, offset, k, source

    @staticmethod
    def fits(source: str | None) -> bool:
        return len(f"nd:more:{2**64}:{10**6}:10:{source or ''}") <= CUSTOM_ID_LIMIT

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /):
        return cls(int(match["asker"]), int(match["offset"]), int(match["k"]), match["source"])

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if not await super().interaction_check(interaction):
            return False
        if interaction.user.id == self.asker:
            return True
        await interaction.response.send_message(
            "Only the person who asked can page through this answer. Ask your own with `/ask`.", ephemeral=True)
        return False

    async def run(self, interaction: discord.Interaction) -> None:
        message = interaction.message
        content = message.content if message else ""
        question = layout.question_of(content)
        if question is None:
            await interaction.response.send_message("This answer is too old to page: ask again with `/ask`.",
                                                    ephemeral=True)
            return
        header = layout.header_of(content)
        got = await ask_page(_bot(interaction).desk, question, self.k, self.offset, self.source, header,
                             layout.context_of(content))
        if isinstance(got, str):
            view = answer_view(self.asker, self.offset, self.k, self.source, has_more=False,
                               discuss=_discussable(interaction))
            await interaction.response.edit_message(view=view)
            await interaction.followup.send(got, ephemeral=True)
            return
        page, has_more = got
        view = answer_view(self.asker, self.offset + len(page.results), self.k, self.source, has_more,
                           discuss=_discussable(interaction))
        await interaction.response.edit_message(content=page.content, view=view)


class CiteButton(_Persistent, template=r"nd:cite"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Button(label="Cite", emoji="📌", style=discord.ButtonStyle.secondary,
                                           custom_id="nd:cite"))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /):
        return cls()

    async def run(self, interaction: discord.Interaction) -> None:
        ids = message_passage_ids(interaction.message.content if interaction.message else "")
        if len(ids) == 1:
            await PostButton(ids[0]).run(interaction)
            return
        if not ids:
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        await interaction.response.send_message("Which passage should I post in the channel?",
                                                view=post_view(ids), ephemeral=True)


class VoteButton(_Persistent, template=r"nd:vote:(?P<vote>up|down)"):
    def __init__(self, vote: str) -> None:
        super().__init__(discord.ui.Button(emoji="👍" if vote == "up" else "👎", style=discord.ButtonStyle.secondary,
                                           custom_id=f"nd:vote:{vote}"))
        self.vote = +1 if vote == "up" else -1

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /):
        return cls(match["vote"])

    async def run(self, interaction: discord.Interaction) -> None:
        content = interaction.message.content if interaction.message else ""
        ids = message_passage_ids(content)
        await defer_answer(interaction, ephemeral=True)
        desk = _bot(interaction).desk
        present = await desk.passages(ids)
        kept = [pid for pid in ids if pid in present]
        if not kept:
            await interaction.followup.send(GONE, ephemeral=True)
            return
        written = await desk.record_feedback(interaction.user.id, kept, layout.question_of(content) or "", self.vote)
        what = "this passage" if len(kept) == 1 else f"the {len(kept)} passages shown"
        when = "" if written else " (saved as soon as the running rebuild finishes)"
        await interaction.followup.send(
            f"Thanks! Your {'👍' if self.vote > 0 else '👎'} is recorded for {what}{when}.", ephemeral=True)


class DiscussButton(CiteButton, template=r"nd:discuss"):
    """A fixed custom ID like Cite's (the inherited from_custom_id builds it): opens a thread on the answer."""

    def __init__(self) -> None:
        _Persistent.__init__(self, discord.ui.Button(label="Discuss", emoji="🧵", style=discord.ButtonStyle.secondary,
                                                     custom_id="nd:discuss"))

    async def run(self, interaction: discord.Interaction) -> None:
        message = interaction.message
        question = layout.question_of(message.content) if message else None
        if message is None or question is None:
            await interaction.response.send_message("This answer is too old to discuss: ask again with `/ask`.",
                                                    ephemeral=True)
            return
        if message.thread is not None:
            await interaction.response.send_message(f"Follow-ups go in {message.thread.mention}.", ephemeral=True)
            return
        if not await limits.allow_public_post(interaction):
            return
        await defer_answer(interaction, ephemeral=True)
        thread = await threads.open_discussion(message, question)
        await interaction.followup.send(f"Opened {thread.mention}: {threads.how_to_follow_up(interaction.client.user)}",
                                        ephemeral=True)


def _discussable(interaction: discord.Interaction) -> bool:
    """Discuss only under a public answer in a server's text channel (a thread cannot hold another)."""
    return isinstance(interaction.channel, discord.TextChannel)


def answer_view(asker: int, offset: int, k: int, source: str | None, has_more: bool,
                discuss: bool = False) -> discord.ui.View:
    """More (when the source fits in its ID), Cite, 👍/👎, and Discuss (a thread) where one can be opened."""
    items: list[discord.ui.Item] = []
    if MoreButton.fits(source):
        items.append(MoreButton(asker, offset, k, source, disabled=not has_more))
    items += [CiteButton(), VoteButton("up"), VoteButton("down")]
    if discuss:
        items.append(DiscussButton())
    return _frozen(*items)


# ----------------------------------------------------------------------------------- posting


class PostButton(_Persistent, template=r"nd:post:(?P<pid>[a-z0-9]+)"):
    def __init__(self, passage_id: str, primary: bool = False, row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=layout.option_label(f"Post {passage_id}"), row=row,
                                           style=discord.ButtonStyle.primary if primary else discord.ButtonStyle.secondary,
                                           custom_id=f"nd:post:{passage_id}"))
        self.passage_id = passage_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /):
        return cls(match["pid"])

    async def run(self, interaction: discord.Interaction) -> None:
        if not limits.first_post(interaction, self.passage_id):
            await interaction.response.send_message("That passage is already posted from here.", ephemeral=True)
            return
        try:
            record = await _bot(interaction).desk.cite(self.passage_id)
        except PassageNotFound:
            limits.forget_post(interaction, self.passage_id)
            await interaction.response.send_message(GONE, ephemeral=True)
            return
        try:
            await post_card(interaction, record)
        except BaseException:
            limits.forget_post(interaction, self.passage_id)    # nothing was posted: a retry may post
            raise
        if not interaction.response.is_done():                  # refused by the rate limit
            limits.forget_post(interaction, self.passage_id)


def post_view(ids: Sequence[str]) -> discord.ui.View:
    """One Post button per passage (an ephemeral chooser)."""
    return _frozen(*(PostButton(pid, primary=i == 0, row=i // 5) for i, pid in enumerate(ids[:25])))


# ----------------------------------------------------------------------------------- /sources


class SourcesButton(_Persistent, template=r"nd:src:(?P<owner>\d+):(?P<offset>\d+):(?P<way>[pn])"):
    def __init__(self, owner: int, offset: int, way: str, disabled: bool = False) -> None:
        label, emoji, style = ("Previous", "⬅️", discord.ButtonStyle.secondary) if way == "p" else \
            ("Next", "➡️", discord.ButtonStyle.primary)
        super().__init__(discord.ui.Button(label=label, emoji=emoji, style=style, disabled=disabled,
                                           custom_id=f"nd:src:{owner}:{offset}:{way}"))
        self.owner, self.offset = owner, offset

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /):
        return cls(int(match["owner"]), int(match["offset"]), match["way"])

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if not await super().interaction_check(interaction):
            return False
        if interaction.user.id == self.owner:
            return True
        await interaction.response.send_message("Only the person who asked can page this list.", ephemeral=True)
        return False

    async def run(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        content, view = await sources_message(bot, self.owner, self.offset)
        await interaction.response.edit_message(content=content, view=view)


async def sources_message(bot: NewsdeskBot, owner: int, offset: int) -> tuple[str, discord.ui.View]:
    """One page of /sources from offset, with Previous (a page back, as far as it fits) and Next."""
    per_page = bot.config.sources_per_page
    total = await bot.desk.count_articles()
    content, shown = layout.sources_page(await bot.desk.articles(offset, per_page), offset, total)
    view = _frozen(SourcesButton(owner, max(offset - per_page, 0), "p", disabled=offset == 0),
                   SourcesButton(owner, offset + shown, "n", disabled=offset + shown >= total))
    return content, view


PERSISTENT_ITEMS = (MoreButton, CiteButton, VoteButton, PostButton, SourcesButton, DiscussButton)
