"""Buttons survive a restart of the bot process; public cards are rate-limited and a Post posts once."""

from __future__ import annotations

import pytest

from tests.bot_harness import button, content_of, is_ephemeral, passage_ids, running, slash
from tests.fakediscord import MEMBER, STRANGER, FakeDiscord, new_user

from bot.config import Config

PFG_QUESTION = "which countries bombed the PFG?"


@pytest.mark.asyncio
async def test_buttons_work_after_the_bot_restarts(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config):
        payload, _ = await slash(fake, "ask", {"question": PFG_QUESTION, "k": 2})
        first = (await fake.wait_for_webhook(payload)).json["content"]
    assert first.startswith(f"**Q:** {PFG_QUESTION}\n")
    message = fake.original_message(payload)

    async with running(fake, config) as bot:            # a new process: nothing of the old views in memory
        press = await fake.interact(fake.component(button(message, "More"), message, user=MEMBER))
        page = await fake.wait_for_callback(press)
        assert page.json["type"] == 7 and "results 3–4" in content_of(page)
        assert content_of(page).startswith(f"**Q:** {PFG_QUESTION}\n")
        assert not set(passage_ids(content_of(page))) & set(passage_ids(first))

        message = fake.original_message(payload)
        press = await fake.interact(fake.component("nd:vote:up", message, user=STRANGER))
        await fake.wait_for_callback(press)
        assert "recorded for the 2 passages" in (await fake.wait_for_webhook(press, method="POST")).json["content"]
        assert (await bot.desk.feedback_totals(passage_ids(content_of(page))[0]))[0] == 1

        press = await fake.interact(fake.component("nd:cite", message, user=STRANGER))
        chooser = await fake.wait_for_callback(press)
        assert is_ephemeral(chooser)

        # A passage a rebuild removed: the button says why it cannot post it.
        old = fake.original_message(press)
        old["id"] = str(int(old["id"]) + 1)          # a chooser from before the rebuild, not in the fake's store
        old["components"][0]["components"][0]["custom_id"] = "nd:post:zzzzzzz"
        press = await fake.interact(fake.component("nd:post:zzzzzzz", old, user=STRANGER))
        gone = await fake.wait_for_callback(press)
        assert is_ephemeral(gone) and "no longer in the index" in content_of(gone)


@pytest.mark.asyncio
async def test_ten_rapid_cites_post_at_most_the_limit(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config, post_limit=(3, 30.0), channel_post_limit=(5, 60.0)) as bot:
        passage = (await bot.desk.ask(PFG_QUESTION, k=1)).results[0].record.id
        user = new_user("quick")
        public = refused = 0
        for _ in range(10):
            _, callback = await slash(fake, "cite", {"id": passage}, user=user)
            if is_ephemeral(callback):
                refused += 1
                assert content_of(callback).startswith("You're posting quickly: please wait ")
            else:
                public += 1
        assert (public, refused) == (3, 7)
        # The channel's own limit holds whoever posts.
        others = [new_user(f"other{i}") for i in range(4)]
        results = [is_ephemeral((await slash(fake, "cite", {"id": passage}, user=u))[1]) for u in others]
        assert results == [False, False, True, True]


@pytest.mark.asyncio
async def test_a_post_button_pressed_ten_times_posts_once(fake: FakeDiscord, bot) -> None:
    payload, _ = await slash(fake, "ask", {"question": PFG_QUESTION, "k": 2})
    await fake.wait_for_webhook(payload)
    press = await fake.interact(fake.component("nd:cite", fake.original_message(payload)))
    await fake.wait_for_callback(press)
    chooser = fake.original_message(press)
    posted = 0
    for _ in range(10):
        post = await fake.interact(fake.component(button(chooser, chooser["components"][0]["components"][0]["label"]),
                                                  chooser, user=MEMBER))
        card = await fake.wait_for_callback(post)
        posted += not is_ephemeral(card)
    assert posted == 1
