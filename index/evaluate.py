"""Retrieval evaluation: hit@k, MRR@10 and latency over a file of questions with expected substrings."""

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

__all__ = ("Question", "EvalReport", "load_questions", "evaluate", "normalize_for_match", "CUTOFFS")

CUTOFFS = (1, 3, 5, 20)


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

    def to_dict(self) -> dict:
        return {"questions": self.questions, **{f"hit@{k}": round(v, 4) for k, v in self.hits.items()},
                "mrr@10": round(self.mrr10, 4), "abstained": self.abstained,
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
