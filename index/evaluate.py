"""Retrieval evaluation: hit@k, MRR@10 and latency over a file of questions with expected substrings, or
nDCG@10 and recall@100 beside them over a BEIR-style folder (corpus.jsonl, queries.jsonl, qrels/test.tsv).

The BEIR measures are computed by ir-measures (trec_eval underneath), an optional extra
(`pip install 'newsdesk[eval]'`), so the numbers compare with published tables.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import fold_text
from .errors import QueryError
from .inert import inert

__all__ = ("Question", "EvalReport", "load_questions", "evaluate", "normalize_for_match", "CUTOFFS",
           "BeirSet", "is_beir", "load_beir", "evaluate_beir")

CUTOFFS = (1, 3, 5, 20)
BEIR_CUTOFFS = (1, 3, 5, 10, 20)     # hit@10 too: the depth published passage-retrieval figures use


@dataclass(frozen=True)
class Question:
    q: str
    any: tuple[str, ...]


@dataclass
class EvalReport:
    questions: int
    hits: dict[int, float]
    mrr10: float
    abstained: int
    p50_ms: float
    p95_ms: float
    misses: list[dict] = field(default_factory=list)
    ndcg10: float | None = None      # BEIR sets only: over documents, a document scored by its best passage
    recall100: float | None = None

    def to_dict(self) -> dict:
        beir = {} if self.ndcg10 is None else {"ndcg@10": round(self.ndcg10, 4),
                                                "recall@100": round(self.recall100 or 0.0, 4)}
        return {"questions": self.questions, **{f"hit@{k}": round(v, 4) for k, v in self.hits.items()},
                "mrr@10": round(self.mrr10, 4), **beir, "abstained": self.abstained,
                "p50_ms": round(self.p50_ms, 3), "p95_ms": round(self.p95_ms, 3)}

    def table(self) -> str:
        d = self.to_dict()
        return "\n".join(f"{key:<10} {value}" for key, value in d.items())


def normalize_for_match(text: str) -> str:
    return re.sub(r"\s+", " ", fold_text(text)).strip().casefold()


def load_questions(path: Path) -> list[Question]:
    questions = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"The question file {inert(str(path))} does not exist.") from None
    except IsADirectoryError:
        raise QueryError(f"{inert(str(path))} is a folder; give a .jsonl file of questions.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise QueryError(f"The question file {inert(str(path))} cannot be read ({e}).") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(Question(str(record["q"]), tuple(str(s) for s in record["any"])))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise QueryError(f"{path} line {number} is not a question record ({e}).",
                             'Each line needs {"q": "question", "any": ["expected substring", ...]}.') from e
    if not questions:
        raise QueryError(f"{path} has no questions.")
    return questions


async def evaluate(desk, questions: list[Question], depth: int = 20) -> EvalReport:
    """Runs every question through the searcher; a hit at k means a top-k passage contains an expected string.

    Latency is the search itself (analysis, expansion, scoring, top-k), timed per question.
    An abstention counts as a miss: the person got no quote.
    """
    searcher = desk.searcher
    found_at: list[int | None] = []
    latencies = []
    abstained = 0
    misses = []
    for question in questions:
        started = time.perf_counter()
        result = searcher.search(question.q, k=depth)
        latencies.append((time.perf_counter() - started) * 1000)
        if result.abstained:
            abstained += 1
        texts = await desk.passages([h.passage_id for h in result.hits])
        wanted = [normalize_for_match(s) for s in question.any]
        rank = next((i for i, h in enumerate(result.hits, start=1)
                     if any(w in normalize_for_match(texts[h.passage_id].text) for w in wanted)), None)
        found_at.append(rank)
        if rank != 1:
            misses.append({"q": question.q, "rank": rank, "abstained": result.abstained,
                           "top": texts[result.hits[0].passage_id].text[:120] if result.hits else None})
    n = len(questions)
    hits = {k: sum(1 for r in found_at if r is not None and r <= k) / n for k in CUTOFFS}
    mrr = sum(1 / r for r in found_at if r is not None and r <= 10) / n
    latencies.sort()
    return EvalReport(n, hits, mrr, abstained, statistics.median(latencies),
                      latencies[min(n - 1, int(0.95 * n))], misses)


# -- BEIR-style folders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirSet:
    """A BEIR folder read: the corpus file to index, the judged queries, and how an article maps to a doc id."""

    corpus: Path
    queries: list[tuple[str, str]]          # (query id, text), the queries that have judgments
    qrels: dict[str, dict[str, int]]        # query id -> doc id -> relevance
    doc_of_article: dict[str, str]          # the article id the .jsonl reader gives a line -> BEIR "_id"


def is_beir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"))


def load_beir(path: Path) -> BeirSet:
    """Reads corpus.jsonl (_id, title, text), queries.jsonl (_id, text) and qrels/test.tsv."""
    path = Path(path)
    if not is_beir(path):
        raise QueryError(f"{inert(str(path))} is not a BEIR folder.", "It needs corpus.jsonl, queries.jsonl and qrels/test.tsv.")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate((path / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines(), start=1):
        cells = line.split("\t")
        if not line.strip() or (number == 1 and cells[0] == "query-id"):
            continue
        try:
            qrels.setdefault(cells[0], {})[cells[1]] = int(cells[2])
        except (IndexError, ValueError):
            raise QueryError(f"{path / 'qrels' / 'test.tsv'} line {number} is not 'query-id<TAB>corpus-id<TAB>score'.") from None
    queries = []
    for line in (path / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if str(record["_id"]) in qrels:
                queries.append((str(record["_id"]), str(record["text"])))
    # The .jsonl reader names an article by its "id", else by its line number (index/corpus.py): the same
    # numbering here maps each article back to its "_id".
    doc_of_article = {}
    for number, line in enumerate((path / "corpus.jsonl").read_text(encoding="utf-8").split("\n"), start=1):
        if line.strip():
            record = json.loads(line)
            doc_of_article[str(record.get("id") or number)] = str(record["_id"])
    if not queries:
        raise QueryError(f"{path} has no query with a judgment in qrels/test.tsv.")
    return BeirSet(path / "corpus.jsonl", queries, qrels, doc_of_article)


def _ir_measures():
    try:
        import ir_measures
    except ImportError:
        raise QueryError("nDCG@10 and recall@100 are computed with ir-measures, which is not installed.",
                         "pip install 'newsdesk[eval]'  (or: pip install ir-measures)") from None
    return ir_measures


async def evaluate_beir(desk, data: BeirSet, depth: int = 1000) -> EvalReport:
    """nDCG@10 and recall@100 over documents, hit@k and MRR@10 over passages, for a BEIR folder.

    The engine ranks passages; a document's score is its best passage's (a passage printed in several
    documents counts for each). hit@k is what a reader sees: one of the top k passages comes from a
    relevant document. An abstention is an empty ranking.
    """
    ir_measures = _ir_measures()
    searcher = desk.searcher
    run: dict[str, dict[str, float]] = {}
    found_at: list[int | None] = []
    latencies, misses = [], []
    abstained = 0
    for qid, text in data.queries:
        started = time.perf_counter()
        result = searcher.search(text, k=depth)
        latencies.append((time.perf_counter() - started) * 1000)
        abstained += bool(result.abstained)
        records = await desk.passages([h.passage_id for h in result.hits])
        docs: dict[str, float] = {}
        relevant = {d for d, rel in data.qrels[qid].items() if rel > 0}
        rank = None
        for i, hit in enumerate(result.hits, start=1):
            for place in records[hit.passage_id].places:
                doc = data.doc_of_article.get(place.article.source.rsplit("#", 1)[-1])
                if doc is None:
                    continue
                if doc not in docs:
                    docs[doc] = hit.score     # hits come best first: the first score seen is the best
                if rank is None and doc in relevant:
                    rank = i
        run[qid] = docs
        found_at.append(rank)
        if rank != 1:
            misses.append({"q": text, "rank": rank, "abstained": result.abstained})
    measures = ir_measures.calc_aggregate([ir_measures.nDCG @ 10, ir_measures.R @ 100], data.qrels, run)
    n = len(data.queries)
    hits = {k: sum(1 for r in found_at if r is not None and r <= k) / n for k in BEIR_CUTOFFS}
    mrr = sum(1 / r for r in found_at if r is not None and r <= 10) / n
    latencies.sort()
    return EvalReport(n, hits, mrr, abstained, statistics.median(latencies), latencies[min(n - 1, int(0.95 * n))],
                      misses, ndcg10=measures.get(ir_measures.nDCG @ 10, 0.0), recall100=measures.get(ir_measures.R @ 100, 0.0))
