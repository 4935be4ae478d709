"""index.cli: `newsdesk` run in-process with main([...]), real databases in tmp_path, output captured."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from index.cli import main

from tests.conftest import SHIPPED_CORPUS

REPO = Path(__file__).resolve().parent.parent
PFG = "\u201cPFG accused Egypt and the UAE of bombing their forces near the residential district of Ras Lanuf."
CITATION = re.compile(r"^\u2014 .+ \u00b6\d+(?: \(part \d+\))? \u00b7 `([a-z2-7]{7,})`$")


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    """The person's own NEWSDESK_* settings must not reach these runs."""
    for name in ("NEWSDESK_DB", "NEWSDESK_CORPUS"):
        monkeypatch.delenv(name, raising=False)


def run(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def passage_id_of(db: Path, start: str) -> str:
    with sqlite3.connect(db) as conn:
        (pid,) = conn.execute("SELECT id FROM passages WHERE text LIKE ?", (start + "%",)).fetchone()
    return pid


# -- ask -------------------------------------------------------------------------------------------


def test_ask_prints_quotes_with_citations(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "who bombed the PFG?", "-k", "3", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    quotes = [line for line in lines if line.startswith("> ")]
    citations = [line for line in lines if CITATION.match(line)]
    assert 1 <= len(citations) <= 3
    assert len(quotes) >= len(citations)
    assert any("PFG" in line for line in quotes)
    # Each citation follows its quote.
    for line in citations:
        assert lines[lines.index(line) - 1].startswith("> ")


def test_ask_builds_the_index_on_first_use(capsys, db_file, corpus_copy):
    code, out, err = run(capsys, "ask", "who bombed the PFG?", "--db", db_file, "--corpus", corpus_copy)
    assert code == 0, err
    assert "no index yet" in err.lower()
    assert db_file.exists()
    assert any(CITATION.match(line) for line in out.splitlines())


def test_ask_json_has_the_documented_shape(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "who bombed the PFG?", "-k", "3", "--json", "--db", seed_db,
                         "--corpus", seed_index.corpus)
    assert code == 0, err
    data = json.loads(out)
    assert {"query", "expanded_terms", "results"} <= set(data)
    assert data["query"] == "who bombed the PFG?"
    assert isinstance(data["expanded_terms"], list)
    assert 1 <= len(data["results"]) <= 3
    files = {p.name: p.read_text(encoding="utf-8") for p in SHIPPED_CORPUS.iterdir()}
    for result in data["results"]:
        assert {"id", "text", "score", "paragraph", "document", "also_in"} <= set(result)
        assert {"title", "path", "url", "outlet", "published"} <= set(result["document"])
        assert re.fullmatch(r"[a-z2-7]{7,}", result["id"])
        assert isinstance(result["score"], float) and isinstance(result["paragraph"], int)
        assert result["text"] in files[result["document"]["path"]]          # verbatim from the corpus file
        for other in result["also_in"]:
            assert result["text"] in files[other["path"]]
    scores = [r["score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)
    shared = next(r for r in data["results"] if r["text"].startswith(PFG))
    assert {shared["document"]["path"]} | {o["path"] for o in shared["also_in"]} == {
        "001_b8dd3071ee1f5b21.txt", "002_8b0c8cfba84b287d.txt"}


def test_ask_json_for_an_unrelated_question_has_no_results(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "how do I bake bread?", "--json", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    data = json.loads(out)
    assert data["results"] == []


def test_ask_for_an_unrelated_question_says_there_is_no_answer(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "how do I bake bread?", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    assert out.startswith("No answer in the indexed articles for \u201chow do I bake bread?\u201d.\n")
    assert "> " not in out


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_is_an_error_without_traceback(capsys, seed_db, seed_index, question):
    code, out, err = run(capsys, "ask", question, "--db", seed_db, "--corpus", seed_index.corpus)
    assert code != 0
    assert err.startswith("Error: The question is empty.")
    assert "Traceback" not in err and out == ""


def test_source_option_keeps_to_one_article(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "Haftar visit to Cairo", "--json", "-k", "10", "--source",
                         "004_fd8deb390daa752a.txt", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results
    for r in results:
        assert "004_fd8deb390daa752a.txt" in {r["document"]["path"]} | {o["path"] for o in r["also_in"]}


# -- cite ------------------------------------------------------------------------------------------


def test_cite_prints_the_passage_and_every_article_it_is_in(capsys, seed_db, seed_index):
    pid = passage_id_of(seed_db, PFG)
    code, out, err = run(capsys, "cite", pid, "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    with sqlite3.connect(seed_db) as conn:
        (text,) = conn.execute("SELECT text FROM passages WHERE id = ?", (pid,)).fetchone()
    assert out == (
        f"> {text}\n"
        f"\u2014 *Haftar of Libya Ended a Top-Secret Visit to Egypt before Leaving for Jordan* \u00b7 \u00b616 \u00b7 `{pid}`\n"
        "  also in: *General Khalifa Haftar has arrived in Moscow on an official visit to Russia for talks\u2026* \u00b620\n"
    )


def test_cite_accepts_the_id_as_shown_in_backticks(capsys, seed_db, seed_index):
    pid = passage_id_of(seed_db, PFG)
    code, out, _ = run(capsys, "cite", f"`{pid.upper()}`", "--json", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0
    data = json.loads(out)
    assert data["id"] == pid and data["text"].startswith(PFG)
    assert [(p["path"], p["paragraph"]) for p in data["places"]] == [
        ("001_b8dd3071ee1f5b21.txt", 16), ("002_8b0c8cfba84b287d.txt", 20)]


def test_cite_unknown_id_exits_1_with_the_closest_ids(capsys, seed_db, seed_index):
    pid = passage_id_of(seed_db, PFG)
    typo = pid[:5] + ("22" if pid[5:] != "22" else "33")
    code, out, err = run(capsys, "cite", typo, "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 1
    assert out == ""
    first, second = err.splitlines()[:2]
    assert first == f"Error: No passage has the ID '{typo}'."
    assert second.startswith("Closest IDs: ") and pid in second
    assert "Traceback" not in err


# -- index build -----------------------------------------------------------------------------------


def test_index_build_prints_the_report(capsys, seed_db, corpus_copy):
    path = corpus_copy / "003_c877ea3053c63f58.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("Russia vetoed", "Russia blocked"), encoding="utf-8")
    code, out, err = run(capsys, "index", "build", "--db", seed_db, "--corpus", corpus_copy)
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "Articles: 0 added, 1 changed, 0 removed.",
        "Passages: 0 added, 1 changed, 0 removed.",
        "Files: 1 read, 4 unchanged.",
    ]
    assert re.fullmatch(r"Build 2: 5 articles, \d+ passages in [\d.]+ s\.", out.splitlines()[0])

    code, out, err = run(capsys, "index", "build", "--json", "--db", seed_db, "--corpus", corpus_copy)
    assert code == 0, err
    report = json.loads(out)
    assert (report["build"], report["articles"]) == (3, 5)
    assert (report["files_read"], report["files_unchanged"]) == (0, 5)
    assert report["articles_added"] == report["articles_changed"] == report["articles_removed"] == 0


def test_first_index_build_reports_what_it_added(capsys, db_file, corpus_copy):
    code, out, err = run(capsys, "index", "build", "--db", db_file, "--corpus", corpus_copy)
    assert code == 0, err
    assert "Articles: 5 added, 0 changed, 0 removed." in out
    assert out.startswith("Build 1: ")


def test_index_build_reports_skipped_files(capsys, db_file, corpus_copy):
    (corpus_copy / "empty.txt").write_text("", encoding="utf-8")
    code, out, err = run(capsys, "index", "build", "--db", db_file, "--corpus", corpus_copy)
    assert code == 0, err
    assert "Skipped: empty.txt: empty file" in out + err


# -- eval ------------------------------------------------------------------------------------------


def test_eval_prints_the_metrics(capsys, seed_db, seed_index, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"q": "Russia vetoed a UN Security Council statement", "any": ["Russia vetoed a UN Security Council"]},
        {"q": "Four PFG fighters were killed", "any": ["Four PFG fighters were killed"]},
        {"q": "Boshra News Agency", "any": ["Boshra News Agency"]},
    ]) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "eval", questions, "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    metrics = dict(line.split(None, 1) for line in out.splitlines()[1:] if line.strip())
    for key in ("hit@1", "hit@3", "hit@5", "hit@20", "mrr@10", "p50_ms", "p95_ms"):
        assert key in {k.lower() for k in metrics}, key
    lower = {k.lower(): v for k, v in metrics.items()}
    assert float(lower["hit@1"]) == float(lower["hit@20"]) == float(lower["mrr@10"]) == 1.0
    assert out.splitlines()[0].startswith(f"{questions}: 3 questions")

    code, out, err = run(capsys, "eval", questions, "--json", "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 0, err
    data = json.loads(out)
    assert data["questions"] == 3 and data["hit@3"] == 1.0
    assert data["p95_ms"] >= data["p50_ms"] >= 0


def test_eval_rejects_a_malformed_question_file(capsys, seed_db, seed_index, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"q": "fine", "any": ["fine"]}\n{"question": "wrong key"}\n', encoding="utf-8")
    code, out, err = run(capsys, "eval", questions, "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 1
    assert err.startswith(f"Error: {questions} line 2 is not a question record")
    assert "Traceback" not in err


# -- missing corpus --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["ask", "who leads the LNA?"], ["index", "build"]])
def test_missing_corpus_folder_exits_1_with_a_clear_message(capsys, db_file, tmp_path, command):
    missing = tmp_path / "nowhere"
    code, out, err = run(capsys, *command, "--db", db_file, "--corpus", missing)
    assert code == 1
    assert f"Error: The corpus folder {missing} does not exist." in err
    assert "Traceback" not in err and out == ""


CHILD = textwrap.dedent("""
    import json, os, sys, threading
    from index.cli import main
    code = main(sys.argv[1:])
    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    sys.stderr.flush()
    print(json.dumps({"code": code, "threads": alive}), flush=True)
    os._exit(0)   # report, rather than hang on a thread left running
""")


def run_child(*argv: str | Path) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, argv)], capture_output=True, text=True, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")} | {"PYTHONPATH": str(REPO)},
                          timeout=120)
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_a_finished_command_leaves_no_thread_running(seed_db, seed_index):
    result, err = run_child("ask", "who leads the LNA?", "--db", seed_db, "--corpus", seed_index.corpus)
    assert result == {"code": 0, "threads": []}, err


def test_missing_corpus_with_an_existing_index_exits(seed_db, tmp_path):
    missing = tmp_path / "nowhere"
    result, err = run_child("ask", "who leads the LNA?", "--db", seed_db, "--corpus", missing)
    assert f"Error: The corpus folder {missing} does not exist." in err
    assert result == {"code": 1, "threads": []}


# -- echoes, --source and the red-team's inputs ------------------------------------------------------------


def test_ask_source_unknown_says_so_and_names_it_inertly(capsys, seed_db, seed_index):
    code, out, err = run(capsys, "ask", "who bombed the PFG?", "--source", "nope\x1b[31m\nmore.txt",
                         "--db", seed_db, "--corpus", seed_index.corpus)
    assert code == 1 and out == ""
    assert err.startswith("Error: No indexed article is called “nope[31m\\nmore.txt”.")
    assert "\x1b" not in err and len(err.splitlines()) == 2


def test_ask_source_names_the_article_asked_for_when_another_prints_the_same_paragraph(capsys, seed_db, seed_index):
    # Articles 001 and 002 both print the "PFG accused Egypt and the UAE" paragraph word for word.
    for source in ("001_b8dd3071ee1f5b21.txt", "002_8b0c8cfba84b287d.txt"):
        code, out, err = run(capsys, "ask", "PFG accused Egypt and the UAE of bombing", "-k", "1", "--json",
                             "--source", source, "--db", seed_db, "--corpus", seed_index.corpus)
        assert code == 0, err
        result = json.loads(out)["results"][0]
        assert result["text"].startswith(PFG)
        assert result["document"]["path"] == source
        assert source not in [place["path"] for place in result["also_in"]]


def test_a_file_name_with_escape_sequences_is_reported_inert(capsys, tmp_path, corpus_copy):
    (corpus_copy / "evil\x1b]0;pwned\x07\nname.txt").write_bytes(b"")
    code, out, err = run(capsys, "index", "build", "--db", tmp_path / "x.db", "--corpus", corpus_copy)
    assert code == 0, err
    line = next(line for line in out.splitlines() if "empty file" in line)
    assert line == "Skipped: evil]0;pwned\\nname.txt: empty file"
