"""Asked the Discord way: mentions, reply-mentions, a thread for follow-ups, private answers."""

from __future__ import annotations

import pytest

from tests.bot_harness import button, content_of, is_ephemeral, passage_ids, quoted_pieces, slash
from tests.fakediscord import EPHEMERAL, MESSAGE_CONTENT, STRANGER, FakeDiscord, new_user

from bot.cogs.mention import UNREADABLE

PFG_QUESTION = "which countries bombed the PFG?"
CHANNEL_SEND = r"/channels/(\d+)/messages"


async def mention(fake: FakeDiscord, text: str, **kwargs):
    """Post a message mentioning the bot; return it and the bot's reply (POST to its channel)."""
    message = fake.user_message(text, **kwargs)
    await fake.post(message)
    reply = await fake.wait_for_request("POST", rf"/channels/{message['channel_id']}/messages",
                                        predicate=lambda r: str((r.json.get("message_reference") or {})
                                                               .get("message_id")) == message["id"])
    return message, reply


@pytest.mark.asyncio
async def test_a_mention_in_a_channel_gets_a_reply_with_the_pfg_quote(fake: FakeDiscord, bot) -> None:
    message, reply = await mention(fake, PFG_QUESTION, author=new_user("asker"))
    content = reply.json["content"]
    assert content.startswith(f"**Q:** {PFG_QUESTION}\n")
    assert "UAE and Egyptian warplanes" in content and passage_ids(content)
    assert reply.json["allowed_mentions"] == {"parse": [], "replied_user": False}     # pings nobody
    labels = [c.get("label") or c["emoji"]["name"] for row in reply.json["components"] for c in row["components"]]
    assert labels == ["More", "Cite", "👍", "👎", "Discuss"]
    # A message that does not mention the bot is not answered.
    await fake.post(fake.user_message(PFG_QUESTION, mention_bot=False))
    await fake.post(fake.user_message("", author=new_user("empty")))
    usage = await fake.wait_for_request("POST", CHANNEL_SEND)
    assert usage.json["content"].startswith("Ask me a question by mentioning me")
    assert len(fake.requests_matching("POST", CHANNEL_SEND)) == 2


@pytest.mark.asyncio
async def test_a_reply_mention_finds_the_sources_of_the_replied_to_message(fake: FakeDiscord, bot) -> None:
    claim = fake.make_message("Egypt and the UAE bombed PFG forces near Ras Lanuf, the guard said.")
    fake.privileged_intents = 0                  # the operator never enabled Message Content: text blanked
    _, reply = await mention(fake, "source?", author=new_user("checker"), reply_to=claim)
    assert reply.json["content"] == UNREADABLE
    fake.privileged_intents = MESSAGE_CONTENT    # enabled in the portal: REST returns the text
    _, reply = await mention(fake, "source?", author=new_user("checker2"), reply_to=claim)
    assert fake.requests_matching("GET", rf"/channels/\d+/messages/{claim['id']}")
    content = reply.json["content"]
    assert content.startswith("Passages matching [this message]")
    assert any("Egypt and the UAE of bombing" in piece for piece in quoted_pieces(content))
    assert not reply.json.get("flags")           # public


@pytest.mark.asyncio
async def test_discuss_opens_a_thread_and_a_follow_up_there_stays_in_it(fake: FakeDiscord, bot) -> None:
    payload, _ = await slash(fake, "ask", {"question": PFG_QUESTION}, user=new_user("asker"))
    await fake.wait_for_webhook(payload)
    answer = fake.original_message(payload)
    press = await fake.interact(fake.component(button(answer, "Discuss"), answer, user=STRANGER))
    assert is_ephemeral(await fake.wait_for_callback(press))
    opened = await fake.wait_for_request("POST", rf"/channels/\d+/messages/{answer['id']}/threads")
    assert opened.status == 201 and opened.json["name"] == PFG_QUESTION
    thread_id = int(opened.response["id"])
    assert "Opened <#" in (await fake.wait_for_webhook(press, method="POST")).json["content"]

    _, reply = await mention(fake, "and Russia?", author=new_user("curious"), channel_id=thread_id)
    assert reply.path == f"/channels/{thread_id}/messages"                    # the answer stays in the thread
    content = reply.json["content"]
    assert content.startswith(f"**Q:** and Russia?\n*Following up on: {PFG_QUESTION}*")
    quotes = " ".join(quoted_pieces(content))
    # The follow-up, in its context: without it, no quote of "and Russia?" names the PFG at all.
    assert "Russia" in quotes and ("PFG" in quotes or "Petroleum Facilities Guards" in quotes)
    assert "Discuss" not in str(reply.json["components"])                     # no thread inside a thread


@pytest.mark.asyncio
async def test_private_ask_is_ephemeral(fake: FakeDiscord, bot) -> None:
    payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION, "private": True})
    assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
    edit = await fake.wait_for_webhook(payload)
    assert "UAE" in edit.json["content"] and fake.original_message(payload)["flags"] & EPHEMERAL
    assert "Discuss" not in str(edit.json["components"])


@pytest.mark.asyncio
async def test_no_answer_is_shown_only_to_the_asker_unless_they_chose_public(fake: FakeDiscord, bot) -> None:
    question = "what is the capital of Peru?"
    payload, callback = await slash(fake, "ask", {"question": question})
    assert callback.json == {"type": 5}
    followup = await fake.wait_for_webhook(payload, method="POST")
    assert is_ephemeral(followup) and "no quote is given" in content_of(followup)
    assert fake.requests_matching("DELETE", rf"/webhooks/\d+/{payload['token']}/messages/@original")

    payload, _ = await slash(fake, "ask", {"question": question, "private": False})
    edit = await fake.wait_for_webhook(payload)
    assert "no quote is given" in content_of(edit) and not fake.original_message(payload)["flags"]
