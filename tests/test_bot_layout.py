"""bot.layout on real engine output: Discord's limits kept by cutting sentences, never by altering words."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from tests.bot_harness import passage_ids, quoted_pieces

from bot import layout
from index.desk import Newsdesk
from index.quotes import Quote
from index.render import quote_markdown

# One long paragraph dense with characters that escaping doubles: as a card it cannot fit whole.
SENTENCE = "Guards held port {n} (a)[b]*c*_d_|e|~f~`g`<h>(i)[j]."
LONG_ARTICLE = "T" + "itle of a very long report " * 12 + "\n\n" + " ".join(SENTENCE.format(n=n) for n in range(40)) + "\n"


@pytest_asyncio.fixture
async def desk(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "long.txt").write_text(LONG_ARTICLE, encoding="utf-8")
    (corpus / "short.txt").write_text("Port news\n\nThe guards held the port at dawn.\n", encoding="utf-8")
    desk = await Newsdesk.open(tmp_path / "layout.db", corpus)
    yield desk
    await desk.close()


def assert_verbatim(content: str, text: str) -> None:
    pieces = quoted_pieces(content)
    assert pieces and all(piece in text for piece in pieces), pieces


@pytest.mark.asyncio
async def test_a_card_too_long_for_one_message_is_cut_at_words_and_marked(desk: Newsdesk) -> None:
    answer = await desk.ask("guards held the port", k=5)
    long = next(r for r in answer.results if len(r.record.text) > 1000)
    whole = Quote(long.record.text, ((0, len(long.record.text)),), ())
    assert layout.discord_length(quote_markdown(whole)) > 2000          # escaping made it too long
    card = layout.quote_card(long.record, long.quote)
    assert layout.discord_length(card) <= 2000
    assert card.rstrip().splitlines()[-2].endswith(" …")               # the cut is marked
    assert_verbatim(card, long.record.text)
    assert card.splitlines()[-1].startswith("— *Title of a very long report")
    small = layout.quote_card(long.record, long.quote, limit=500)
    assert layout.discord_length(small) <= 500 and small.startswith("> ")
    assert_verbatim(small, long.record.text)


@pytest.mark.asyncio
async def test_an_answer_page_fits_the_limit_and_leaves_the_rest_for_more(desk: Newsdesk) -> None:
    answer = await desk.ask("guards held the port", k=5)
    assert len(answer.results) >= 2
    for limit in (2000, 700, 400):
        page = layout.answer_page(answer, 0, 5, limit=limit)
        assert layout.discord_length(page.content) <= limit
        assert 1 <= len(page.results) <= len(answer.results)
        assert passage_ids(page.content) == [r.record.id for r in page.results]
        for result in page.results:
            block = next(b for b in page.content.split("\n\n") if f"`{result.record.id}`" in b)
            assert_verbatim(block, result.record.text)
        assert page.content.splitlines()[-1].startswith(f"-# {answer.build.label} · result")
    assert len(layout.answer_page(answer, 0, 5, limit=400).results) == 1


def test_clip_cuts_at_a_word_and_never_leaves_a_dangling_escape() -> None:
    assert layout.clip("short", 10) == "short"
    clipped = layout.clip("alpha beta gamma delta epsilon", 17)
    assert clipped == "alpha beta …" and layout.discord_length(clipped) <= 17
    assert layout.clip("x" * 8 + "\\" + "y" * 20, 11) == "x" * 8 + " …"
    assert layout.discord_length(layout.clip("👍" * 30, 21)) <= 21
