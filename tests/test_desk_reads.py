"""What a long-running desk reads after the database changed under it: a layout column added in place is
used from then on, and many asks that find their hits gone load the newer build once between them."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import index.build
import index.desk
from index.desk import Newsdesk
from tests.test_answer_path import as_schema_2

pytestmark = pytest.mark.asyncio

QUESTIONS = ["Which countries bombed the PFG?", "who leads the LNA?", "Haftar Cairo emergency meeting",
             "oil terminals Ras Lanuf"]


def counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of index.desk's function `name` (still calling it)."""
    calls = [0]
    real = getattr(index.desk, name)

    def counting(*args):
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(index.desk, name, counting)
    return calls


async def test_a_layout_column_added_in_place_is_read_by_the_desk_that_was_open(seed_db, seed_index, monkeypatch):
    as_schema_2(seed_db)
    on_the_spot = counted(monkeypatch, "_laid_out_now")
    async with await Newsdesk.open(seed_db, seed_index.corpus, build_if_missing=False) as desk:
        for question in QUESTIONS:
            assert (await desk.ask(question)).results
        assert on_the_spot[0] > 0                       # no layouts stored yet: laid out while answering
        await desk.rebuild()                            # adds the column to this very file and fills it
        on_the_spot[0] = 0
        for question in QUESTIONS:
            assert (await desk.ask(question)).results
    assert on_the_spot[0] == 0


async def test_asks_that_find_their_hits_gone_load_the_newer_build_once(seed_db, seed_index, monkeypatch, tmp_path):
    corpus = Path(shutil.copytree(seed_index.corpus, tmp_path / "corpus"))
    monkeypatch.setattr(index.desk, "REFRESH_EVERY_S", 3600.0)      # only the asks notice the new build
    loads = counted(monkeypatch, "from_blobs")
    question = "Haftar Cairo emergency military meeting"
    async with await Newsdesk.open(seed_db, corpus, build_if_missing=False) as desk:
        shown = await desk.ask(question, k=3)
        for source in {place.article.source for r in shown.results for place in r.record.places}:
            (corpus / source.split("#")[0]).unlink()
        await asyncio.to_thread(index.build.rebuild, seed_db, corpus)     # another writer removes them
        loads[0] = 0
        answers = await asyncio.gather(*(desk.ask(question, k=3) for _ in range(8)))
        assert desk.build is not None and desk.build.id == 2
    assert loads[0] == 1
    assert all(a.build.id == 2 for a in answers)
    assert all(place.article.source not in {p.article.source for r in shown.results for p in r.record.places}
               for a in answers for r in a.results for place in r.record.places)
