"""The index on a real Sphinx/Manticore cluster: 2 shards x 2 replicas + an aggregator on loopback ports.

Started through `newsdesk cluster up`, stopped by PID at the end whatever happens. Without `searchd` the
cluster tests skip locally and fail in CI (CI=true), where .ci/run installs sphinxsearch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from index.cli import main
from index.sphinx import escape_match, passage_int, shard_of, term_token

PFG = "which countries bombed the PFG?"


@pytest.fixture
def cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if shutil.which("searchd") is None:
        reason = "searchd (Sphinx or Manticore) is not installed: apt-get install sphinxsearch"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the cluster tests: {reason}")
        pytest.skip(reason)
    directory = tmp_path / "cluster"
    assert main(["cluster", "up", str(directory), "--shards", "2", "--replicas", "2"]) == 0
    try:
        line = capsys.readouterr().out.strip()
        assert line.startswith("NEWSDESK_SEARCH=sphinx://127.0.0.1:")
        yield directory, line.split("=", 1)[1]
    finally:
        main(["cluster", "down", str(directory)])
        capsys.readouterr()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ask(capsys, db: Path, corpus: Path, search: str | None) -> dict:
    extra = ["--search", search] if search else []
    code, out, err = run(capsys, "ask", PFG, "--json", "--db", str(db), "--corpus", str(corpus), *extra)
    assert code == 0, err
    return json.loads(out)


def kill(directory: Path, node: str, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the server (the pid_file PID), then wait until its SphinxQL port is closed."""
    layout = json.loads((directory / "cluster.json").read_text())
    port = next(n["sql_port"] for n in layout["nodes"] if n["name"] == node)
    os.kill(int((directory / node / "searchd.pid").read_text()), sig)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.05)
        except OSError:
            return
    raise AssertionError(f"{node} still listens on {port}")


def build(capsys, db: Path, corpus: Path, search: str) -> str:
    code, out, err = run(capsys, "index", "build", "--db", str(db), "--corpus", str(corpus), "--search", search)
    assert code == 0, err
    return out


def test_ids_tokens_and_escaping():
    assert passage_int("abc1234") == passage_int("abc1234")
    ids = [passage_int(f"p{i}") for i in range(10_000)]
    assert min(ids) >= 1 and max(ids) < 2 ** 61 and len(set(ids)) == len(ids)
    assert {shard_of(f"p{i}", 2) for i in range(100)} == {0, 1}
    assert term_token("égypt").isalnum() and term_token("égypt") != term_token("egypt")
    assert escape_match('a "b" (c) -d x/2 e|f') == r'a \"b\" \(c\) \-d x\/2 e\|f'


def test_build_writes_every_mirror_and_answers_like_the_embedded_index(cluster, capsys, corpus_copy, tmp_path):
    directory, url = cluster
    db = tmp_path / "local.db"
    out = build(capsys, db, corpus_copy, url)
    assert "passages written, 0 deleted" in out
    code, out, _ = run(capsys, "cluster", "status", str(directory), "--json")
    nodes = {n["node"]: n for n in json.loads(out)}
    assert all(n["up"] for n in nodes.values())
    assert nodes["s0r0"]["rows"] == nodes["s0r1"]["rows"] > 0 and nodes["s1r0"]["rows"] == nodes["s1r1"]["rows"] > 0

    clustered, embedded = ask(capsys, db, corpus_copy, url), ask(capsys, db, corpus_copy, None)
    assert [(r["id"], r["score"]) for r in clustered["results"]] == [(r["id"], r["score"]) for r in embedded["results"]]
    assert clustered == embedded and "partial" not in clustered

    # Nothing changed: nothing is written again. A removed article's passages are deleted from every mirror.
    assert "0 passages written, 0 deleted" in build(capsys, db, corpus_copy, url)
    victim = sorted(p for p in corpus_copy.iterdir() if p.is_file())[0]
    victim.unlink()
    out = build(capsys, db, corpus_copy, url)
    assert "0 passages written" in out and " 0 deleted" not in out
    code, out, _ = run(capsys, "cluster", "status", str(directory), "--json")
    rows = {n["node"]: n["rows"] for n in json.loads(out)}
    assert rows["s0r0"] == rows["s0r1"] and rows["s1r0"] == rows["s1r1"]
    assert ask(capsys, db, corpus_copy, url)["results"] == ask(capsys, db, corpus_copy, None)["results"]


def test_faults_one_replica_both_replicas_aggregator(cluster, capsys, corpus_copy, tmp_path):
    directory, url = cluster
    db = tmp_path / "local.db"
    build(capsys, db, corpus_copy, url)
    before = ask(capsys, db, corpus_copy, url)

    kill(directory, "s0r0")                    # one mirror of shard 0: answers unchanged, nothing said
    for _ in range(5):
        assert ask(capsys, db, corpus_copy, url) == before

    kill(directory, "s0r1")                    # shard 0 gone: shard 1's passages, marked partial
    partial = ask(capsys, db, corpus_copy, url)
    assert partial["partial"] is True and partial["missing_shards"] == [0]
    assert all(shard_of(r["id"], 2) == 1 for r in partial["results"])
    code, out, err = run(capsys, "ask", PFG, "--db", str(db), "--corpus", str(corpus_copy), "--search", url)
    assert code == 0 and out.rstrip().splitlines()[-1].startswith("Partial answer: shard 0 of the search cluster")

    kill(directory, "agg", signal.SIGTERM)     # the aggregator: one line, no traceback
    code, out, err = run(capsys, "ask", PFG, "--db", str(db), "--corpus", str(corpus_copy), "--search", url)
    assert code == 1 and out == ""
    assert err.startswith("Error: The search node 127.0.0.1:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
