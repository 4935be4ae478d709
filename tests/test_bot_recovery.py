"""Answers left "thinking…" by a crash: remembered in the database, apologized for by the next start."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from bot.app import NewsdeskBot, apology
from bot.config import Config
from index.desk import Newsdesk, PendingAnswer
from index.inert import clean
from index.render import escape_markdown
from index.store import SCHEMA_VERSION
from tests.bot_harness import Gate, running, slash
from tests.fakediscord import LOADING, FakeDiscord, run_bot

QUESTION = "who leads the *LNA*? <@&123>"


def _pending_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT token, kind, ephemeral, question FROM pending_answers ORDER BY created_at").fetchall()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _old_answer(app_id: int, token: str = "old-token") -> PendingAnswer:
    return PendingAnswer(token, app_id, time.time() - 16 * 60, "/ask", False, 0, "an old question")


@pytest.mark.asyncio
async def test_an_answer_pending_at_a_crash_becomes_an_apology_after_restart(fake: FakeDiscord, config: Config) -> None:
    async with run_bot(lambda: NewsdeskBot(config), fake, drain_timeout=0) as bot:
        gate = Gate(bot.desk.ask)            # never opened: the answer is still being worked on at the crash
        bot.desk.ask = gate                  # type: ignore[method-assign]
        payload, deferral = await slash(fake, "ask", {"question": QUESTION})
        assert deferral.json == {"type": 5}
        await asyncio.wait_for(gate.started.wait(), 5)
        assert _pending_rows(config.db) == [(payload["token"], "/ask", 0, QUESTION)]
        # The crash: the command dies mid-answer (nothing of its own clean-up runs), then the process goes.
        for task in [t for t in bot._inflight if not t.done()]:
            task.cancel()
        await asyncio.sleep(0)
    assert fake.original_message(payload)["flags"] & LOADING         # still "thinking…"
    assert [row[0] for row in _pending_rows(config.db)] == [payload["token"]]

    desk = await Newsdesk.open(config.db, config.corpus)      # a stale one whose token is dead by now
    await desk.remember_pending(_old_answer(fake.app_id))
    await desk.close()

    async with running(fake, config):
        edit = await fake.wait_for_webhook(payload, timeout=5.0)
        await _until(lambda: not _pending_rows(config.db))
    expected = "Newsdesk restarted before it could answer. Please ask again: /ask " + escape_markdown(clean(QUESTION, 200))
    assert edit.json["content"] == expected
    assert edit.json["allowed_mentions"] == {"parse": []}
    message = fake.original_message(payload)
    assert message["content"] == expected and not message["flags"] & LOADING
    assert not [r for r in fake.requests if "old-token" in r.path]      # forgotten without a call to Discord


@pytest.mark.asyncio
async def test_answers_that_went_out_are_forgotten_and_never_overwritten(fake: FakeDiscord, config: Config) -> None:
    async with running(fake, config):
        payload, _ = await slash(fake, "ask", {"question": "which countries bombed the PFG?"})
        answer = (await fake.wait_for_webhook(payload)).json["content"]
        await _until(lambda: not _pending_rows(config.db))          # forgotten once the answer is out
        private, _ = await slash(fake, "ask", {"question": "zzzz qqqq", "private": True})
        await fake.wait_for_webhook(private)
        await _until(lambda: not _pending_rows(config.db))

    # A crash after the answer went out but before its record was forgotten: the answer stays as it is.
    desk = await Newsdesk.open(config.db, config.corpus)
    await desk.remember_pending(PendingAnswer(payload["token"], fake.app_id, time.time() - 5, "/ask", False, 0, "q"))
    await desk.close()
    async with running(fake, config):
        await _until(lambda: not _pending_rows(config.db))
    assert fake.requests_matching("GET", rf"/webhooks/{fake.app_id}/{payload['token']}/messages/@original")
    assert fake.original_message(payload)["content"] == answer


def test_apology_offers_what_to_do_again() -> None:
    def said(kind: str, question: str | None = None) -> str:
        return apology(PendingAnswer("t", 1, 0.0, kind, True, 0, question))

    assert said("/ask", "x\n**y**") == "Newsdesk restarted before it could answer. Please ask again: /ask x\\\\n\\*\\*y\\*\\*"
    assert said("Find sources").endswith("Please use Find sources again.")
    assert said("/reindex").endswith("Please run /reindex again.")


# ----------------------------------------------------------------------------------- the engine's records


@pytest.mark.asyncio
async def test_remember_forget_and_stale_on_a_real_file(db_path: Path, corpus_dir: Path) -> None:
    now = time.time()
    fresh = [PendingAnswer(f"t{i}", 7, now - 60 + i, "/ask", bool(i % 2), i % 2, f"q{i}") for i in range(3)]
    async with await Newsdesk.open(db_path, corpus_dir) as desk:
        for answer in fresh + [_old_answer(7)]:
            assert await desk.remember_pending(answer)
        assert await desk.forget_pending("t1")
        assert await desk.stale_pending(15 * 60) == []         # this run's own answers are not stale
    async with await Newsdesk.open(db_path, corpus_dir) as desk:   # the next run
        assert await desk.stale_pending(15 * 60, shards=[1]) == []             # t1 (shard 1) was forgotten
        assert await desk.stale_pending(15 * 60) == [fresh[0], fresh[2]]       # oldest first; old-token dropped
        assert [row[0] for row in _pending_rows(db_path)] == ["t0", "t2"]      # kept until each is forgotten
        await desk.forget_pending("t0")
        await desk.forget_pending("t2")
    assert _pending_rows(db_path) == []


@pytest.mark.asyncio
async def test_a_write_during_a_rebuild_waits_in_memory(db_path: Path, corpus_dir: Path) -> None:
    async with await Newsdesk.open(db_path, corpus_dir) as desk:
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")       # what a rebuild holds for its whole transaction
        try:
            started = time.monotonic()
            assert not await desk.remember_pending(PendingAnswer("t", 7, time.time(), "/ask", False, 0, None))
            assert time.monotonic() - started < 1.0              # the answer is not held up
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert _pending_rows(db_path) == []
        assert await desk.forget_pending("other")                # the next write takes the waiting one along
        assert [row[0] for row in _pending_rows(db_path)] == ["t"]
        await desk.forget_pending("t")
    assert _pending_rows(db_path) == []


@pytest.mark.asyncio
async def test_a_database_from_before_pending_answers_gets_the_table(tmp_path: Path, db_path: Path,
                                                                     corpus_dir: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copyfile(db_path, old)
    with sqlite3.connect(old) as conn:       # as schema 1 left it
        conn.execute("DROP TABLE pending_answers")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    async with await Newsdesk.open(old, corpus_dir) as desk:
        assert desk.build is not None                  # the index itself is used as it is
        assert await desk.remember_pending(PendingAnswer("t", 7, time.time(), "/ask", False, 0, "q"))
    assert [row[0] for row in _pending_rows(old)] == ["t"]
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
