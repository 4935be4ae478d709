"""The real bot on a real search cluster (2 shards x 2 replicas + an aggregator, `newsdesk cluster up`): it
answers through the cluster, and when the aggregator goes down the asker alone gets one short line."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.bot_harness import content_of, is_ephemeral, passage_ids, running, slash
from tests.fakediscord import FakeDiscord
from tests.test_cluster import cluster, kill  # noqa: F401  # cluster is the fixture

from bot.config import Config
from index.remote import ClusterDesk

PFG_QUESTION = "which countries bombed the PFG?"
FOLLOWUP = r"/webhooks/\d+/[^/]+"
ORIGINAL = FOLLOWUP + "/messages/@original"


def test_the_bot_reads_newsdesk_search() -> None:
    url = "sphinx://127.0.0.1:9306"
    assert Config.load(env={"NEWSDESK_SEARCH": url}, dotenv=None).search == url
    assert Config.load(env={}, dotenv=None).search == "embedded"


@pytest.mark.asyncio
async def test_aggregator_down_the_asker_gets_one_ephemeral_line(cluster, fake: FakeDiscord, config: Config,
                                                                 corpus_dir: Path, tmp_path: Path) -> None:
    directory, url = cluster
    db = tmp_path / "cluster-local.db"
    builder = await asyncio.create_subprocess_exec(     # the CLI runs its own event loop and signal handlers
        str(Path(sys.executable).with_name("newsdesk")), "index", "build", "--db", str(db), "--corpus", str(corpus_dir),
        "--search", url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(builder.communicate(), 120)
    assert builder.returncode == 0 and b"passages written" in out, err.decode()
    async with running(fake, config, db=db, search=url) as bot:
        assert isinstance(bot.desk, ClusterDesk)
        payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION})
        assert callback.json == {"type": 5}
        answer = content_of(await fake.wait_for_webhook(payload))
        assert "Egypt" in answer and len(passage_ids(answer)) >= 2, answer

        kill(directory, "agg", signal.SIGTERM)
        payload, callback = await slash(fake, "ask", {"question": PFG_QUESTION})
        assert callback.json == {"type": 5}                       # public "thinking…", before the cluster is asked
        error = await fake.wait_for_webhook(payload, method="POST")
        text = content_of(error)
        assert is_ephemeral(error), error.json
        assert text.startswith("The search node 127.0.0.1:") and "does not answer" in text, text
        assert "\n" not in text.strip() and len(text) < 300, text
        assert "Traceback" not in text and not re.search(r"\w/\w|\.py\b", text), text
        # The public "thinking…" is removed rather than left spinning or turned into the error for everyone.
        assert fake.requests_matching("DELETE", ORIGINAL)
        edits = fake.requests_matching("PATCH", ORIGINAL)
        assert not [r for r in edits if r.json and "does not answer" in content_of(r)]
