"""The bot's member commands through the real discord.py client against the fake Discord."""

from __future__ import annotations

import logging
import re

import pytest

from tests.bot_harness import Gate, button, assert_within_limits, content_of, is_ephemeral, passage_ids, quoted_pieces, slash
from tests.fakediscord import MEMBER, STRANGER, FakeDiscord

from bot.app import GENERIC_ERROR, NewsdeskBot

PFG_QUESTION = "which countries bombed the PFG?"
CALLBACK_MESSAGE, DEFERRED, UPDATE = 4, 5, 7


async def assert_verbatim(bot: NewsdeskBot, content: str) -> list[str]:
    """Every quoted piece is a substring of the stored passage its citation names; returns the IDs."""
    blocks = content.split("\n\n")
    ids = []
    for block in blocks:
        found = passage_ids(block)
        if not found:
            continue
        record = await bot.desk.cite(found[0])
        pieces = quoted_pieces(block)
        assert pieces and all(piece in record.text for piece in pieces), (pieces, record.text)
        ids.append(record.id)
    return ids


async def ask(fake: FakeDiscord, options: dict, user=MEMBER):
    payload, callback = await slash(fake, "ask", options, user=user)
    assert callback.json == {"type": DEFERRED}   # public "thinking…"
    edit = await fake.wait_for_webhook(payload)
    return payload, edit


@pytest.mark.asyncio
async def test_ask_defers_before_searching_then_quotes_the_pfg_passages(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    gate = Gate(bot.desk.ask)
    bot.desk.ask = gate                      # the search cannot finish until the test says so
    payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION})
    assert callback.json == {"type": DEFERRED}
    assert not gate.finished.is_set() and fake.requests_matching("PATCH", r"/webhooks/.*") == []
    gate.opened.set()
    edit = await fake.wait_for_webhook(payload)
    assert edit.index > callback.index and gate.finished.is_set()

    content = edit.json["content"]
    assert_within_limits(edit.json)
    assert "Egypt and the UAE" in content and "UAE and Egyptian warplanes" in content
    assert "**PFG**" in content and "**bombing**" in content            # matched words bold
    assert "*Haftar of Libya Ended a Top-Secret Visit to Egypt before Leaving for Jordan*" in content
    assert re.search(r"¶\d+ · `[a-z0-9]+`", content)                    # paragraph number, passage ID
    assert "also in:" in content                                        # a paragraph two articles share
    assert re.search(r"^-# build \d+ .* · results 1–\d+", content, re.MULTILINE)  # footer names the build
    ids = await assert_verbatim(bot, content)
    assert len(ids) >= 2
    labels = [c.get("label") or c["emoji"]["name"] for row in edit.json["components"] for c in row["components"]]
    assert labels == ["More", "Cite", "👍", "👎", "Discuss"]
    assert not fake.message(edit.response["id"])["flags"]                # public


@pytest.mark.asyncio
async def test_more_pages_for_the_asker_and_refuses_a_stranger(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, first = await ask(fake, {"question": PFG_QUESTION, "k": 2})
    first_ids = passage_ids(first.json["content"])
    assert len(first_ids) == 2
    message = fake.original_message(payload)

    press = await fake.interact(fake.component(button(message, "More"), message, user=STRANGER))
    refusal = await fake.wait_for_callback(press)
    assert refusal.json["type"] == CALLBACK_MESSAGE and is_ephemeral(refusal)
    assert "Only the person who asked" in content_of(refusal)
    assert fake.message(message["id"])["content"] == first.json["content"]   # unchanged

    press = await fake.interact(fake.component(button(message, "More"), message, user=MEMBER))
    page = await fake.wait_for_callback(press)
    assert page.json["type"] == UPDATE
    assert_within_limits(page.json)
    content = content_of(page)
    assert "results 3–4" in content
    second_ids = await assert_verbatim(bot, content)
    assert second_ids and not set(second_ids) & set(first_ids)


@pytest.mark.asyncio
async def test_cite_button_posts_the_chosen_passage_as_a_public_card(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, edit = await ask(fake, {"question": PFG_QUESTION, "k": 2})
    ids = passage_ids(edit.json["content"])
    press = await fake.interact(fake.component("nd:cite", fake.original_message(payload), user=STRANGER))
    chooser = await fake.wait_for_callback(press)
    assert is_ephemeral(chooser)
    buttons = [c for row in chooser.json["data"]["components"] for c in row["components"]]
    assert [b["custom_id"] for b in buttons] == [f"nd:post:{i}" for i in ids]

    post = await fake.interact(fake.component(f"nd:post:{ids[1]}", fake.original_message(press), user=STRANGER))
    card = await fake.wait_for_callback(post)
    assert card.json["type"] == CALLBACK_MESSAGE and not is_ephemeral(card)
    assert_within_limits(card.json)
    text = content_of(card)
    record = await bot.desk.cite(ids[1])
    assert quoted_pieces(text) == [record.text]                        # the whole passage, verbatim
    assert "**" not in text                                             # a card highlights nothing
    attribution = [line for line in text.splitlines() if not line.startswith(">")]
    assert len(attribution) == 1 and attribution[0].startswith("— ") and f"· `{ids[1]}`" in attribution[0]


@pytest.mark.asyncio
async def test_feedback_is_recorded_in_sqlite_and_cite_posts_a_lone_passage(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, edit = await ask(fake, {"question": PFG_QUESTION, "k": 1})
    (passage,) = passage_ids(edit.json["content"])
    message = fake.original_message(payload)
    for user, custom_id in ((MEMBER, "nd:vote:up"), (STRANGER, "nd:vote:up"), (STRANGER, "nd:vote:down")):
        press = await fake.interact(fake.component(custom_id, message, user=user))
        assert (await fake.wait_for_callback(press)).json == {"type": DEFERRED, "data": {"flags": 64}}
        thanks = await fake.wait_for_webhook(press, method="POST")
        assert "recorded" in thanks.json["content"]
    # One vote per person and question: the stranger's 👎 replaced their 👍.
    assert await bot.desk.feedback_totals(passage) == (1, 1)

    # With one passage on the page, Cite posts it straight away.
    press = await fake.interact(fake.component("nd:cite", message, user=STRANGER))
    card = await fake.wait_for_callback(press)
    assert card.json["type"] == CALLBACK_MESSAGE and not is_ephemeral(card)
    assert f"· `{passage}`" in content_of(card).splitlines()[-1]


@pytest.mark.asyncio
async def test_cite_command_posts_a_quote_card(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    record = (await bot.desk.ask(PFG_QUESTION, k=1)).results[0].record
    _, callback = await slash(fake, "cite", {"id": f" `{record.id.upper()}` "})
    assert callback.json["type"] == CALLBACK_MESSAGE and not is_ephemeral(callback)
    assert_within_limits(callback.json)
    lines = content_of(callback).splitlines()
    assert quoted_pieces("\n".join(lines[:-1])) == [record.text]
    title = record.places[0].article.title
    assert lines[-1] == f"— *{title}* · ¶{record.places[0].paragraph} · `{record.id}` · also in 1 other article"


@pytest.mark.asyncio
async def test_cite_command_with_an_unknown_id_suggests_the_closest(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    record = (await bot.desk.ask(PFG_QUESTION, k=1)).results[0].record
    wrong = record.id[:4] + "zzz"
    _, callback = await slash(fake, "cite", {"id": wrong})
    assert callback.json["type"] == CALLBACK_MESSAGE and is_ephemeral(callback)
    text = content_of(callback)
    assert text.startswith(f"No such passage: `{wrong}`. Closest IDs: ")
    assert f"`{record.id}`" in text


@pytest.mark.asyncio
async def test_find_sources_answers_ephemerally_with_post_buttons(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    claim = fake.make_message("Egypt and the UAE bombed PFG forces in Ras Lanuf", author=STRANGER)
    menu = await fake.interact(fake.message_command("Find sources", claim, user=MEMBER))
    assert (await fake.wait_for_callback(menu)).json == {"type": DEFERRED, "data": {"flags": 64}}
    found = await fake.wait_for_webhook(menu, method="POST")
    assert_within_limits(found.json)
    assert fake.message(found.response["id"])["flags"] & 64                # still ephemeral
    content = found.json["content"]
    assert content.startswith(f"Passages matching [this message](<https://discord.com/channels/{fake.guild_id}/"
                              f"{fake.channel_id}/{claim['id']}>):")
    ids = await assert_verbatim(bot, content)
    assert ids and any("Egypt and the UAE" in piece for piece in quoted_pieces(content))
    assert [c["custom_id"] for row in found.json["components"] for c in row["components"]] == \
        [f"nd:post:{i}" for i in ids]

    post = await fake.interact(fake.component(f"nd:post:{ids[0]}", found.response["id"], user=MEMBER))
    card = await fake.wait_for_callback(post)
    assert card.json["type"] == CALLBACK_MESSAGE and not is_ephemeral(card)
    assert quoted_pieces(content_of(card)) == [(await bot.desk.cite(ids[0])).text]


@pytest.mark.asyncio
async def test_mentions_and_markdown_in_corpus_text_stay_inert(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, edit = await ask(fake, {"question": "what did the zyxwv council say?", "k": 1})
    content = edit.json["content"]
    assert edit.json["allowed_mentions"] == {"parse": []}                 # nobody is pinged
    assert "@everyone" in content and "<@&123>" not in content and r"\<@&123\>" in content
    assert r"\*\*bold\*\*" in content and r"\`code\`" in content and r"\[link\]\(<http://example.com>\)" in content
    quote_lines = [line for line in content.splitlines() if line.startswith("> ")]
    assert len(quote_lines) == 1 and "> not a quote" not in content.replace(r"\> not a quote", "")
    assert content.count("`") - content.count(r"\`") == 2                 # only the passage ID's code span
    await assert_verbatim(bot, content)

    (passage,) = passage_ids(content)
    _, card = await slash(fake, "cite", {"id": passage})
    assert card.json["data"]["allowed_mentions"] == {"parse": []}
    assert quoted_pieces(content_of(card)) == [(await bot.desk.cite(passage)).text]


@pytest.mark.asyncio
async def test_a_linked_article_cites_title_link_outlet_and_date(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    _, edit = await ask(fake, {"question": "when did the qwerty harbour reopen?"})
    citation = next(line for line in edit.json["content"].splitlines() if line.startswith("— "))
    assert citation.startswith("— [Qwerty harbour reopens](<https://example.com/news/qwerty-harbour>) · "
                               "Example Gazette · 2024-03-05 · ¶1 · `")


@pytest.mark.asyncio
async def test_source_autocompletes_titles_and_limits_the_search(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    request = await fake.interact(fake.autocomplete("ask", {"question": "x", "source": "cairo"}, focused="source"))
    callback = await fake.wait_for_callback(request)
    choices = callback.json["data"]["choices"]
    assert {c["value"] for c in choices} == {"000_baf13ccadf848008.txt", "004_fd8deb390daa752a.txt"}
    assert all(len(c["name"]) <= 100 for c in choices)

    _, edit = await ask(fake, {"question": PFG_QUESTION, "source": "000_baf13ccadf848008.txt"})
    content = edit.json["content"]
    assert content.startswith(f"**Q:** {PFG_QUESTION}\n*Only in Haftar to attend emergency military meeting in Cairo")
    assert "Haftar of Libya Ended" not in content.split("also in")[0]


@pytest.mark.asyncio
async def test_an_unknown_source_is_told_ephemerally(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION, "source": "no such article"})
    assert callback.json == {"type": DEFERRED}
    await fake.wait_for_request("DELETE", rf"/webhooks/\d+/{re.escape(payload['token'])}/messages/@original")
    told = await fake.wait_for_webhook(payload, method="POST")
    assert told.json["flags"] == 64
    assert told.json["content"].startswith("No single indexed article matches “no such article”.")


@pytest.mark.asyncio
async def test_a_command_that_raises_answers_the_user(fake: FakeDiscord, bot: NewsdeskBot,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    bot.desk.ask = broken
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION})
        assert callback.json == {"type": DEFERRED}
        # The public "thinking…" is removed, so the error reaches only the asker.
        await fake.wait_for_request("DELETE", rf"/webhooks/\d+/{re.escape(payload['token'])}/messages/@original")
        told = await fake.wait_for_webhook(payload, method="POST")
    assert told.json["content"] == GENERIC_ERROR and told.json["flags"] == 64
    assert fake.message(told.response["id"])["flags"] & 64
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.asyncio
async def test_a_failing_button_answers_the_user(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    payload, _ = await ask(fake, {"question": PFG_QUESTION, "k": 1})

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    bot.desk.ask = broken
    press = await fake.interact(fake.component(button(fake.original_message(payload), "More"), fake.original_message(payload)))
    told = await fake.wait_for_callback(press)
    assert content_of(told) == GENERIC_ERROR and is_ephemeral(told)
