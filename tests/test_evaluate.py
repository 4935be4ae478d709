"""index.evaluate over a BEIR-style folder: documents scored by their best passage, measures from ir-measures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from index.cli import main
from index.desk import Newsdesk
from index.errors import QueryError
from index.evaluate import evaluate_beir, is_beir, load_beir

DOCS = [
    {"_id": "d-harbour", "title": "Harbour cranes", "text": "The zanzibar harbour bought two new cranes for the quay."},
    {"_id": "d-rice", "title": "Rice harvest", "text": "Farmers near Morogoro brought in a record rice harvest this year."},
    {"_id": "d-ferry", "title": "Ferry timetable", "text": "The ferry to Pemba leaves the zanzibar harbour twice a day.\n\n"
                                                         "Tickets for the ferry are sold at the quay."},
]
QUERIES = [
    {"_id": "q1", "text": "record rice harvest near Morogoro"},
    # d-harbour names "zanzibar harbour cranes" itself; the judged doc (the ferry's) ranks second.
    {"_id": "q2", "text": "zanzibar harbour cranes"},
    {"_id": "q-unjudged", "text": "ferry tickets"},
]
QRELS = [("q1", "d-rice"), ("q2", "d-ferry")]


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS),
                                             encoding="utf-8")
    return root


def test_a_beir_folder_is_read_with_its_judged_queries(tmp_path):
    root = write_beir(tmp_path / "beir")
    assert is_beir(root) and not is_beir(tmp_path)
    data = load_beir(root)
    assert [qid for qid, _ in data.queries] == ["q1", "q2"]          # the unjudged query is left out
    assert data.qrels == {"q1": {"d-rice": 1}, "q2": {"d-ferry": 1}}
    assert data.doc_of_article == {"1": "d-harbour", "2": "d-rice", "3": "d-ferry"}


@pytest.mark.asyncio
async def test_documents_are_ranked_by_their_best_passage(tmp_path):
    pytest.importorskip("ir_measures")
    data = load_beir(write_beir(tmp_path / "beir"))
    async with await Newsdesk.open(tmp_path / "beir.db", data.corpus) as desk:
        report = await evaluate_beir(desk, data)
    assert report.questions == 2
    assert report.hits[1] == 0.5 and report.hits[3] == 1.0
    # q1: the judged doc first (1.0); q2: second (1 / log2(3)); the mean of the two.
    assert report.ndcg10 == pytest.approx((1.0 + 1 / 1.5849625007211563) / 2, abs=1e-4)
    assert report.recall100 == 1.0
    assert set(report.to_dict()) >= {"ndcg@10", "recall@100", "hit@1", "mrr@10"}


def test_without_ir_measures_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ir_measures", None)       # import now raises ImportError
    root = write_beir(tmp_path / "beir")
    code = main(["eval", str(root), "--db", str(tmp_path / "beir.db")])
    err = capsys.readouterr().err
    assert code == 1
    assert "ir-measures" in err and "pip install 'newsdesk[eval]'" in err


def test_a_malformed_qrels_line_names_the_line(tmp_path):
    root = write_beir(tmp_path / "beir")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1 d-rice\n", encoding="utf-8")
    with pytest.raises(QueryError, match="line 2"):
        load_beir(root)
