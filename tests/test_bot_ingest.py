"""/add url:, /add file: and /feeds against the fake Discord, with pages from the loopback news site."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.app import NewsdeskBot
from bot.cogs.ingest import fetch_interval
from tests.bot_harness import content_of, is_ephemeral, slash
from tests.fakediscord import ADMIN, MEMBER, STRANGER, FakeDiscord
from tests.newsserver import NewsServer

DEFERRED_EPHEMERAL = {"type": 5, "data": {"flags": 64}}


@pytest.fixture
def news(monkeypatch):
    for name, value in {"NEWSDESK_ALLOW_PRIVATE_URLS": "1", "NEWSDESK_ALLOWED_PORTS": "any",
                        "NEWSDESK_FETCH_HOST_DELAY": "0", "NEWSDESK_FETCH_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    with NewsServer() as site:
        yield site


def original(payload: dict) -> str:
    return rf"/webhooks/\d+/{re.escape(payload['token'])}/messages/@original"


@pytest.mark.asyncio
async def test_add_url_by_an_admin_previews_then_answers_ask(fake: FakeDiscord, bot: NewsdeskBot, news) -> None:
    payload, callback = await slash(fake, "add", {"url": news.base + "/news/school"}, user=ADMIN)
    assert callback.json == DEFERRED_EPHEMERAL
    done = await fake.wait_for_request("PATCH", original(payload), predicate=lambda r: "Searchable now" in r.json["content"])
    edits = [r.json["content"] for r in fake.requests if r.method == "PATCH" and re.fullmatch(original(payload), r.path)]
    assert edits[0].endswith("⏳ Updating the index…")       # the preview came before the rebuild finished
    text = done.json["content"]
    assert text.startswith(f"📰 Added [**Village school gets solar roof**](<{news.base}/news/school>)\n"
                           "Valley Post · 2024-05-20 · 3 paragraphs\n> The village school in Xylo switched on a solar roof")
    assert re.search(r"✅ Searchable now: build \d+, \d+ passages\.$", text)

    asked, _ = await slash(fake, "ask", {"question": "solar roof village school Xylo"}, user=STRANGER)
    answer = await fake.wait_for_webhook(asked)
    assert "switched on a **solar roof**" in answer.json["content"]


@pytest.mark.asyncio
async def test_add_is_refused_to_a_member(fake: FakeDiscord, bot: NewsdeskBot, news) -> None:
    _, callback = await slash(fake, "add", {"url": news.base + "/news/school"}, user=MEMBER)
    assert callback.json["type"] == 4 and is_ephemeral(callback)
    assert content_of(callback) == "Only members with the Manage Server permission can do that."
    assert not any(r.path == "/news/school" for r in news.requests)


@pytest.mark.asyncio
async def test_add_file_reads_the_attachment_from_the_cdn(fake: FakeDiscord, bot: NewsdeskBot) -> None:
    upload = fake.attachment("ferry.md", b"---\ntitle: Ferry strike ends\noutlet: Harbour Herald\n---\n\n"
                                         b"The qwertyferry strike ended on Friday after the union accepted a pay offer.\n",
                             "text/markdown")
    payload, callback = await slash(fake, "add", {"file": upload}, user=ADMIN)
    assert callback.json == DEFERRED_EPHEMERAL
    await fake.wait_for_request("GET", r"/attachments/\d+/\d+/ferry\.md")
    done = await fake.wait_for_request("PATCH", original(payload), predicate=lambda r: "Searchable now" in r.json["content"])
    assert done.json["content"].startswith("📰 Added **Ferry strike ends**\nHarbour Herald · no date · 1 paragraphs")
    assert (bot.config.corpus / "added" / "ferry.md").exists()
    asked, _ = await slash(fake, "ask", {"question": "qwertyferry strike"}, user=STRANGER)
    assert "**qwertyferry strike** ended" in (await fake.wait_for_webhook(asked)).json["content"]


@pytest.mark.asyncio
async def test_add_file_of_another_kind_and_a_private_url_are_refused(fake: FakeDiscord, bot: NewsdeskBot,
                                                                       monkeypatch) -> None:
    _, callback = await slash(fake, "add", {"file": fake.attachment("pic.png", b"\x89PNG", "image/png")}, user=ADMIN)
    assert content_of(callback) == "Only .txt, .md, .html, .jsonl files can be added, not pic.png."
    monkeypatch.delenv("NEWSDESK_ALLOW_PRIVATE_URLS", raising=False)
    payload, _ = await slash(fake, "add", {"url": "http://169.254.169.254/latest/meta-data/"}, user=ADMIN)
    refused = await fake.wait_for_request("PATCH", original(payload))
    assert refused.json["content"].startswith("Not added: http://169.254.169.254/latest/meta-data/: refused: "
                                              "169.254.169.254 is a link-local address")


@pytest.mark.asyncio
async def test_feeds_add_list_remove_and_the_scheduled_poll(fake: FakeDiscord, bot: NewsdeskBot, news) -> None:
    payload, _ = await slash(fake, "feeds", {"add": {"url": news.base + "/atom.xml"}}, user=ADMIN)
    added = await fake.wait_for_request("PATCH", original(payload))
    assert added.json["content"].startswith(f"Added feed <{news.base}/atom.xml>: Coastal Courier (2 items).")
    _, listed = await slash(fake, "feeds", {"list": {}}, user=ADMIN)
    assert content_of(listed) == f"<{news.base}/atom.xml> Coastal Courier — not polled yet"

    cog = bot.get_cog("IngestCog")
    assert cog.interval == 1800 and cog.poller is not None and not cog.poller.done()   # the default: 30 min
    # The bot's own poll loop, at a test's pace: it fetches the feed and rebuilds while the bot answers.
    articles_before = bot.desk.build.articles
    poll = asyncio.create_task(type(cog)._poll_forever(type("Quick", (), {"interval": 0.01, "bot": bot})()))
    try:
        for _ in range(300):
            await asyncio.sleep(0.05)
            if bot.desk.build.articles > articles_before and not bot.desk.rebuilding:
                break
        asked, _ = await slash(fake, "ask", {"question": "zanzibar footbridge vote"}, user=STRANGER)
        assert "The council postponed its **vote** on the **zanzibar footbridge**" in (await fake.wait_for_webhook(asked)).json["content"]
    finally:
        poll.cancel()
        await asyncio.wait({poll})
    _, removed = await slash(fake, "feeds", {"remove": {"url": news.base + "/atom.xml"}}, user=ADMIN)
    assert content_of(removed) == f"Removed feed <{news.base}/atom.xml>; its articles stay."
    _, refused = await slash(fake, "feeds", {"list": {}}, user=MEMBER)
    assert content_of(refused) == "Only members with the Manage Server permission can do that."


def test_fetch_interval_setting():
    assert fetch_interval({}) == 1800
    assert fetch_interval({"NEWSDESK_FETCH_INTERVAL": "0"}) == 0
    assert fetch_interval({"NEWSDESK_FETCH_INTERVAL": "5"}) == 300


@pytest.mark.asyncio
async def test_an_article_added_in_the_bot_is_indexed_as_a_delta_and_answers(fake: FakeDiscord, bot: NewsdeskBot, news,
                                                                            monkeypatch) -> None:
    """The shipped corpus is too small for a delta (one article is past MERGE_SHARE of it and moves the average
    length past AVGDL_DRIFT): with both raised, /add goes the way it goes at scale, and /ask and /cite read the
    new passages through the segmented index."""
    from index.segments import SegmentedIndex

    monkeypatch.setattr("index.build.MERGE_SHARE", 1.0)
    monkeypatch.setattr("index.build.AVGDL_DRIFT", 1.0)
    monkeypatch.setattr("index.build.MERGE_SOON_SHARE", 1.0)
    base = bot.desk.searcher.index
    payload, _ = await slash(fake, "add", {"url": news.base + "/news/school"}, user=ADMIN)
    await fake.wait_for_request("PATCH", original(payload), predicate=lambda r: "Searchable now" in r.json["content"])
    assert isinstance(bot.desk.searcher.index, SegmentedIndex) and bot.desk.searcher.index.base is base
    asked, _ = await slash(fake, "ask", {"question": "solar roof village school Xylo"}, user=STRANGER)
    answer = (await fake.wait_for_webhook(asked)).json["content"]
    assert "switched on a **solar roof**" in answer
    passage = re.search(r"`([a-z2-7]{7,})`", answer).group(1)
    _, card = await slash(fake, "cite", {"id": passage}, user=STRANGER)
    assert "solar roof" in content_of(card) and not is_ephemeral(card)
