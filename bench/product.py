"""The product in a process of its own, through the engine's Python API (index.desk.Newsdesk).

    python -m bench.product serve --db PATH --corpus DIR --questions Q.json [--answers N] [--hold]
    python -m bench.product topk --db PATH --corpus DIR --questions Q.json [--rounds R]

``serve`` is the serving process bench.run measures: it opens the desk, answers the questions through the
bot's renderer (bot.views.ask_page), and prints its resident memory (RSS and PSS) as a JSON line; with
``--hold`` it then waits on stdin for ``refresh`` (load the build another process committed, answer once,
print its memory again), ``load`` and ``stop`` (answer question after question, as fast as one asker can,
until told to stop; print answers/s and the answers' times: bench.run compares an idle window with one
spanning `newsdesk index build`), ``reindex`` (the bot's /reindex: ``Newsdesk.rebuild()`` in this process
while one asker keeps answering), ``settle`` (memory after the replaced indexes' grace period) or ``quit``.
``topk`` times BM25 top-k on the product's own index (its k1, b and the titles each passage is indexed with)
against bm25s-numba given the same documents' term ids and the same parameters, question by question in
turn (bench/topk.py's measure).
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _memory() -> dict:
    from bench.tree import memory_kb

    m = memory_kb(os.getpid())
    return {"rss_mb": m.get("rss", 0) / 1024, "pss_mb": m.get("pss", 0) / 1024, "hwm_mb": m.get("hwm", 0) / 1024}


async def _open(db: str, corpus: str) -> Any:
    from index.config import Settings
    from index.desk import Newsdesk

    return await Newsdesk.open(Settings(Path(db), Path(corpus).resolve()), build_if_missing=False)


async def _serve(a: Any) -> dict:
    t0 = time.perf_counter()
    from bot.views import ask_page

    t_imp = time.perf_counter()
    questions = json.loads(Path(a.questions).read_text())
    desk = await _open(a.db, a.corpus)
    t_open = time.perf_counter()
    try:
        await ask_page(desk, questions[0], 5, 0, None)
        _emit({"first_answer_monotonic": time.monotonic(), "startup_to_main_s": t0 - _T_START,
               "imports_s": t_imp - t0, "open_s": t_open - t_imp, "first_answer_s": time.perf_counter() - t_open})
        times = []
        for q in questions[1:a.answers]:
            began = time.perf_counter()
            await ask_page(desk, q, 5, 0, None)
            times.append(time.perf_counter() - began)
        assert desk.searcher is not None and desk.build is not None
        passage_index = desk.searcher.index.nbytes
        articles = getattr(getattr(desk.searcher, "articles", None), "nbytes", 0)     # article evidence, if any
        _emit({"answered": len(times) + 1, "answer_p50_ms": 1000 * statistics.median(times) if times else None,
               "passages": desk.build.passages, "build": desk.build.id,
               "index_arrays_mb": (passage_index + articles) / 1e6, "passage_index_mb": passage_index / 1e6,
               "article_evidence_mb": articles / 1e6, **_memory()})
        asker: _Asker | None = None
        while a.hold:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if line == "refresh":
                began = time.perf_counter()
                changed = await desk.refresh()
                refreshed = time.perf_counter() - began
                await ask_page(desk, questions[0], 5, 0, None)
                _emit({"refreshed": changed, "refresh_s": refreshed, "build": desk.build.id,
                       "passages": desk.build.passages, **_segments(desk.searcher), **_memory()})
            elif line == "load" and asker is None:
                asker = _Asker(desk, questions[1:a.answers] or questions)
            elif line == "stop" and asker is not None:
                # The window closes once this process has loaded what was committed meanwhile, as a bot does
                # within index.desk.REFRESH_EVERY_S of its next ask: the load is part of taking in an article.
                # An ask may have started that load in the background already (then refresh() returns at once).
                await desk.refresh()
                while getattr(desk, "_refreshing", False):
                    await asyncio.sleep(0.01)
                answered = await asker.stop()
                asker = None
                _emit({**answered, "build": desk.build.id, **_segments(desk.searcher), **_memory()})
            elif line == "reindex":
                asker = _Asker(desk, questions[1:a.answers] or questions)
                report = await desk.rebuild()
                answered = await asker.stop()
                asker = None
                _emit({**answered, "report": report.to_dict(), "build": desk.build.id, **_segments(desk.searcher),
                       **_memory()})
            elif line == "settle":
                # Replaced indexes are let go READER_GRACE_S after the swap: what stays resident after that.
                from index.desk import READER_GRACE_S

                await asyncio.sleep(READER_GRACE_S + 5)
                await ask_page(desk, questions[0], 5, 0, None)
                _emit({"settled_s": READER_GRACE_S + 5, "build": desk.build.id, **_memory()})
            else:
                break
    finally:
        await desk.close()
    return {"closed": True}


class _Asker:
    """One asker answering question after question through the bot's renderer until stopped: what a busy
    channel asks of the desk. Answers/s over its own window, and each answer's time."""

    def __init__(self, desk: Any, questions: list[str]) -> None:
        self.desk, self.questions = desk, questions
        self.times: list[float] = []
        self.builds_seen: set[int] = set()
        self._stopping = asyncio.Event()
        self.began = time.perf_counter()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        from bot.views import ask_page

        i = 0
        while not self._stopping.is_set():
            began = time.perf_counter()
            await ask_page(self.desk, self.questions[i % len(self.questions)], 5, 0, None)
            self.times.append(time.perf_counter() - began)
            self.builds_seen.add(self.desk.build.id)
            i += 1

    async def stop(self) -> dict:
        self._stopping.set()
        await self.task                # the answer under way finishes: it counts, and so does its time
        window = time.perf_counter() - self.began
        ms = np.array(self.times) * 1000 if self.times else np.zeros(1)
        return {"answers": len(self.times), "window_s": window, "answers_per_s": len(self.times) / window,
                "answer_p50_ms": float(np.percentile(ms, 50)), "answer_p95_ms": float(np.percentile(ms, 95)),
                "answer_max_ms": float(ms.max()), "builds_answered_from": sorted(self.builds_seen)}


def _segments(searcher: Any) -> dict:
    """Whether the loaded index is a whole compile or a base with a delta over it, and the delta's size."""
    delta = getattr(searcher.index, "delta", None)
    return {"index": type(searcher.index).__name__, "delta_docs": delta.num_docs if delta is not None else 0}


def _documents(index: Any) -> list[list[int]]:
    """Each document's term ids, read back from the index's forward sequence (passage words, title, heading)."""
    starts = index.doc_starts.tolist()
    sequence = index.sequence
    return [sequence[starts[d]:starts[d + 1]].tolist() for d in range(len(starts) - 1)]


async def _topk(a: Any) -> dict:
    from bench.topk import BM25SNumba, measure

    desk = await _open(a.db, a.corpus)
    try:
        assert desk.searcher is not None
        index, analyzer = desk.searcher.index, desk.searcher.analyzer
    finally:
        await desk.close()
    questions = [analyzer.tokenize(q) for q in json.loads(Path(a.questions).read_text())]
    began = time.perf_counter()
    documents = (_documents(index), dict(index.term_ids))
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    numba = BM25SNumba(documents, index.params)         # BM25SNumba indexes (ids, vocabulary) tuples as they are
    build_s = time.perf_counter() - began
    del documents
    numba.top_k(questions[0], a.k)                      # compiles
    engines = {"ours": index, "bm25s_numba": numba}
    same = sum(_same_top(index.top_k(q, a.k), numba.top_k(q, a.k)) for q in questions)
    gc.collect()
    gc.freeze()
    load = os.getloadavg()[0]
    times = measure(engines, questions, a.k, a.rounds)
    out: dict = {"documents": index.num_docs, "params": vars(index.params), "questions": len(questions),
                 "rounds": a.rounds, "k": a.k,
                 "load_1min": [load, os.getloadavg()[0]], "bm25s_numba_build_s": build_s, "term_ids_read_s": read_s,
                 "same_top1": same, "engines": {}}
    for name, ms in times.items():
        out["engines"][name] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                                "mean_ms": float(ms.mean()), "arrays_mb": engines[name].nbytes / 1e6}
    return out


def _same_top(ours: list, theirs: list) -> bool:
    """The same first document, or one tied with it (equal scores: which of them comes first is a tie-break)."""
    if not ours or not theirs:
        return not ours and not theirs
    return int(ours[0][0]) == int(theirs[0][0]) or abs(ours[0][1] - theirs[0][1]) <= 1e-6 * max(1.0, abs(ours[0][1]))


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--corpus", required=True)
    s.add_argument("--questions", required=True, help="a JSON list of question texts")
    s.add_argument("--answers", type=int, default=200, help="questions answered before memory is read")
    s.add_argument("--hold", action="store_true", help="then wait for refresh / quit lines on stdin")
    t = sub.add_parser("topk")
    t.add_argument("--db", required=True)
    t.add_argument("--corpus", required=True)
    t.add_argument("--questions", required=True, help="a JSON list of question texts")
    t.add_argument("--rounds", type=int, default=5)
    t.add_argument("--k", type=int, default=10)
    a = ap.parse_args(argv)
    _emit(asyncio.run(_serve(a) if a.cmd == "serve" else _topk(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
