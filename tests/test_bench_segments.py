"""bench/product.py serve, as bench.run drives it: the serving process takes in an add as a delta over the base
it holds (what the "serving process loads the new build" row times), and counts the answers it gives while asked.

Real processes on a real SQLite file: `newsdesk index build` on a generated corpus, the serving process reading
lines on its stdin, one more article, `newsdesk index build` again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.synthetic import write_articles

REPO = Path(__file__).resolve().parent.parent


def _build(corpus: Path, db: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "index.cli", "index", "build", "--corpus", str(corpus), "--db", str(db),
                          "--json"], cwd=REPO, capture_output=True, text=True, check=True, timeout=120).stdout
    return dict(json.loads(out))


def test_the_serving_process_loads_an_add_as_a_delta_and_counts_answers_while_asked(tmp_path: Path) -> None:
    corpus, db = write_articles(tmp_path / "corpus", 1000, seed=5), tmp_path / "news.db"
    assert _build(corpus, db)["compiled"] == "whole"
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(["Generated dispatch 3", "kalo mira", "Generated dispatch 40"]))
    serving = subprocess.Popen([sys.executable, "-m", "bench.product", "serve", "--db", str(db), "--corpus", str(corpus),
                                "--questions", str(questions), "--answers", "3", "--hold"],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert serving.stdin is not None and serving.stdout is not None

    def say(line: str) -> dict:
        serving.stdin.write(line + "\n")
        serving.stdin.flush()
        return dict(json.loads(serving.stdout.readline())) if line != "load" else {}

    try:
        serving.stdout.readline()                      # the first answer
        opened = json.loads(serving.stdout.readline())
        write_articles(corpus / "new", 20, seed=9)     # 2% of the base: a delta, not a whole compile
        added = _build(corpus, db)
        assert added["compiled"] == "delta" and added["delta_passages"] > 0

        loaded = say("refresh")
        assert loaded["refreshed"] and loaded["build"] == added["build"] != opened["build"]
        assert loaded["index"] == "SegmentedIndex" and loaded["delta_docs"] == added["delta_passages"]

        say("load")
        time.sleep(0.5)
        answered = say("stop")
        assert answered["answers"] > 0 and answered["window_s"] >= 0.5
        assert answered["builds_answered_from"] == [added["build"]]
    finally:
        serving.stdin.close()                          # an empty line read: the serving process closes and exits
        serving.wait(timeout=60)
