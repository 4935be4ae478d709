"""index.render on the shipped corpus: one statement quoted once, each name once, lists only when asked for,
and the bot's message cut from the same rendered answer the terminal prints."""

from __future__ import annotations

import re

import pytest

from bot.layout import answer_page
from index.desk import Newsdesk
from index.listing import focus_of, leader_target
from index.render import answer_blocks, answer_markdown, same_statement

pytestmark = pytest.mark.asyncio


async def ask(seed_db, seed_index, question: str, k: int = 5):
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        return await desk.ask(question, k=k)


def source_ids(markdown: str) -> list[str]:
    """The passage IDs of the quotes shown (their "— …" lines), in order."""
    return [m.group(1) for m in re.finditer(r"^— .*`(\w+)`$", markdown, re.M)]


async def test_the_baraghati_statement_from_two_articles_is_quoted_once(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "which countries bombed the PFG?")
    text = answer_markdown(answer, escape=False)
    assert text.count("Al-Mihdi Al-Baraghati") == 1
    assert text.count("fighters were killed") == 1
    assert "  also reported by: *Haftar to attend emergency military meeting in Cairo .. Will Al-Sisi save his " \
           "ally in Libya?* · ¶23 · `upw2m5e`" in text
    shown = source_ids(text)
    assert len(shown) == len(set(shown)) == 3
    folded = [b for b in answer_blocks(answer.results) if len(b.results) > 1]
    assert len(folded) == 2 and all(same_statement(b.results[0].quote, b.results[1].quote) for b in folded)


async def test_different_statements_are_not_folded(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "Haftar visit to Moscow", k=8)
    for block in answer_blocks(answer.results):
        for other in block.results[1:]:
            assert other.record.places[0].article.source != block.results[0].record.places[0].article.source
    quotes = [r.quote for r in answer.results]
    assert not same_statement(quotes[0], type(quotes[0]).whole("Haftar met Shoigu in Moscow on Tuesday last week."))


async def test_the_summary_names_each_country_once_with_its_first_passage(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "which countries bombed the PFG?")
    first = answer_markdown(answer, escape=False).split("\n", 1)[0]
    # Both are named by the first quote ("PFG accused Egypt and the UAE of bombing..." or "the UAE and
    # Egyptian warplanes bombed PFG forces"): each once, with that passage's ID.
    lead = answer_page(answer, 0, 5).quoted[0].record.id
    assert first.startswith("Countries named in these quotes: ")
    assert sorted(first.split(": ", 1)[1].split(" · ")) == [f"**Egypt** (`{lead}`)", f"**UAE** (`{lead}`)"]


async def test_who_leads_the_lna_lists_haftar_only(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "who leads the LNA?")
    assert answer.focus == "leaders"
    assert [n.name for n in answer.named] == ["Khalifa Haftar"]
    first = answer_markdown(answer, escape=False).split("\n", 1)[0]
    assert first.startswith("Leaders named in these quotes: **Khalifa Haftar** (`")
    assert "Mismari" not in first and "Jadhran" not in first


async def test_who_leads_the_pfg_lists_jadhran(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "who leads the PFG?")
    assert [n.name for n in answer.named] == ["Ibrahim Jadhran"]


async def test_a_leader_question_with_no_leader_in_the_quotes_lists_nobody(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "who runs the Russian defense ministry?")
    assert answer.focus == "leaders" and answer.named == ()
    assert not answer_markdown(answer, escape=False).startswith("Leaders")


@pytest.mark.parametrize("question,focus", [
    ("who leads the LNA?", "leaders"), ("Who commands the Libyan National Army", "leaders"),
    ("who is the head of the PFG?", "leaders"), ("which countries bombed the PFG?", "countries"),
    ("which officials did Haftar meet in Moscow?", "people"), ("who bombed the PFG?", None),
    ("who met Haftar in Moscow?", None), ("why did Haftar visit Cairo?", None),
])
async def test_only_list_questions_get_a_list(question, focus):
    assert focus_of(question) == focus
    assert (leader_target(question) is not None) == (focus == "leaders")


async def test_a_plain_who_question_has_no_list(seed_db, seed_index):
    answer = await ask(seed_db, seed_index, "who bombed the PFG?")
    assert answer.named == () and "named in these quotes" not in answer_markdown(answer)


async def test_the_bot_page_is_the_rendered_answer(seed_db, seed_index):
    """Discord gets the terminal's markdown (escaped), cut to a message: the same blocks, head and footer."""
    answer = await ask(seed_db, seed_index, "which countries bombed the PFG?")
    page = answer_page(answer, 0, 5)
    assert page.content == answer_markdown(answer)
    # Five results, grouped: a statement two articles carry is quoted once, "also reported by" the other.
    assert len(page.results) == 5 and 1 < len(page.quoted) < 5
    assert [r.record.id for r in page.quoted] == [r.record.id for r in page.results if r.record.id in
                                                  {q.record.id for q in page.quoted}]
    assert all(f"`{r.record.id}`" in page.content for r in page.results)
