"""BM25 top-k alone, ours against its version from before issue 10 and bm25s-numba, interleaved in one process.

    python -m bench.topk                       # 118k and 1M, 1,000 SQuAD questions, 5 rounds
    python -m bench.topk --sizes 1m --rounds 3 --json out.json

bench/run.py times each engine in a child of its own, one after the other: on a shared machine the load
changes between children, and their ratios with it. Here every question is asked of every engine in turn
(the order alternating), for several rounds, and each engine's time for a question is its fastest round:
a burst of load then costs all engines alike or none. Questions are analysed beforehand (top-k alone, as
issue 10's targets are stated); bm25s's retrieve() maps the tokens to its ids itself, as it always does.
The 1M size repeats the 118k paragraphs' token lists under distinct document numbers, as run.py does.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench import data  # noqa: E402
from bench.bm25_before import BM25Before  # noqa: E402
from index.analysis import Analyzer  # noqa: E402
from index.bm25 import BM25Index, BM25Params  # noqa: E402

os.environ.setdefault("DISABLE_TQDM", "1")
SIZES = {"118k": None, "1m": 1_000_000}
TARGETS_1M = {"p50": 0.5, "p95": 1.2, "arrays_mb": 150.0}


class BM25SNumba:
    def __init__(self, token_lists: list[list[str]], params: BM25Params) -> None:
        import bm25s

        self.r = bm25s.BM25(method="bm25+", k1=params.k1, b=params.b, delta=params.delta, backend="numba")
        self.r.index(token_lists, show_progress=False)
        sc = self.r.scores
        self.nbytes = int(sc["data"].nbytes + sc["indices"].nbytes + sc["indptr"].nbytes)

    def top_k(self, tokens: list[str], k: int) -> list:
        res = self.r.retrieve([tokens], k=k, show_progress=False, backend_selection="numba")
        return list(zip(res.documents[0].tolist(), res.scores[0].tolist()))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(engines: dict, questions: list[list[str]], k: int, rounds: int) -> dict[str, np.ndarray]:
    """Each question's fastest time over the rounds, per engine, in ms."""
    best = {name: np.full(len(questions), np.inf) for name in engines}
    names = list(engines)
    clock = time.perf_counter
    for r in range(rounds):
        for j, tokens in enumerate(questions):
            for name in (names if (r + j) % 2 == 0 else names[::-1]):
                top_k = engines[name].top_k
                start = clock()
                top_k(tokens, k)
                elapsed = clock() - start
                if elapsed < best[name][j]:
                    best[name][j] = elapsed
    return {name: times * 1000 for name, times in best.items()}


def run_size(name: str, base: list[list[str]], questions: list[list[str]], a: argparse.Namespace) -> dict:
    n = SIZES[name] or len(base)
    token_lists = base if n == len(base) else [base[i % len(base)] for i in range(n)]
    params = BM25Params("plus", k1=1.2, b=0.75, delta=1.0)
    log(f"{name}: building ours over {n:,} documents ...")
    started = time.perf_counter()
    ours = BM25Index.build(token_lists, params)
    out: dict = {"n": n, "build_s": {"ours": time.perf_counter() - started}, "ours_arrays_mb": arrays_by_part(ours)}
    engines: dict = {"ours": ours, "ours_before": BM25Before(ours)}
    if not a.no_numba and importlib.util.find_spec("numba") is not None:
        log(f"{name}: building bm25s-numba ...")
        started = time.perf_counter()
        engines["bm25s_numba"] = BM25SNumba(token_lists, params)
        out["build_s"]["bm25s_numba"] = time.perf_counter() - started
        engines["bm25s_numba"].top_k(questions[0], a.k)          # compiles
    elif not a.no_numba:
        out["note"] = "bm25s-numba skipped: numba is not installed (pip install -e '.[bench]')"
    del token_lists
    gc.collect()
    gc.freeze()       # the token lists' objects stay: a collection of them inside a timed query is not the query
    mismatches = sum(ours.top_k(q, a.k) != engines["ours_before"].top_k(q, a.k) for q in questions)
    for engine in engines.values():
        for q in questions[:5]:
            engine.top_k(q, a.k)
    log(f"{name}: timing {len(questions)} questions x {len(engines)} engines x {a.rounds} rounds ...")
    loads = [os.getloadavg()[0]]
    times = measure(engines, questions, a.k, a.rounds)
    loads.append(os.getloadavg()[0])
    gc.unfreeze()
    out["same_results_as_before"] = len(questions) - mismatches
    out["questions"] = len(questions)
    out["load_1min"] = loads
    out["engines"] = {}
    for engine_name, ms in times.items():
        out["engines"][engine_name] = {
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "arrays_mb": engines[engine_name].nbytes / 1e6}
    return out


def arrays_by_part(index: BM25Index) -> dict[str, float]:
    """What BM25Index.nbytes adds up, in MB: which arrays the memory target is spent on."""
    impacts, sequence = index.impacts, index.sequence
    codes = [impacts.narrow, impacts.wide] if impacts.wide is not None else []
    parts = {"doc ids": [index.doc_ids], "impact codes, 1 byte": codes[:1], "impact codes, 2 bytes": codes[1:],
             "impact lists and table": [impacts.table, impacts.start, impacts.sub_ptr, impacts.subtable],
             "forward index": [sequence.codes, sequence.rare_at, sequence.rare_ids], "document offsets": [index.doc_starts],
             "per term (indptr, idf, max, constant)": [index.indptr, index.idf, index.max_impacts, index.constants]}
    return {name: sum(a.nbytes for a in arrays) / 1e6 for name, arrays in parts.items()}


def print_size(name: str, res: dict) -> None:
    print(f"\n== {name}: {res['n']:,} documents, BM25+ k1=1.2 b=0.75 delta=1.0, top {ARGS.k}, "
          f"{res['questions']} questions, fastest of {ARGS.rounds} rounds each; load {res['load_1min'][0]:.1f} -> "
          f"{res['load_1min'][1]:.1f} on {os.cpu_count()} CPUs ==")
    engines = res["engines"]
    print(f"{'engine':14s}{'p50 ms':>9s}{'p95 ms':>9s}{'p99 ms':>9s}{'mean ms':>9s}{'arrays MB':>11s}"
          f"{'p50 / ours':>12s}{'p95 / ours':>12s}")
    ours = engines["ours"]
    for engine_name, r in engines.items():
        print(f"{engine_name:14s}{r['p50_ms']:9.3f}{r['p95_ms']:9.3f}{r['p99_ms']:9.3f}{r['mean_ms']:9.3f}"
              f"{r['arrays_mb']:11.1f}{r['p50_ms'] / ours['p50_ms']:11.2f}x{r['p95_ms'] / ours['p95_ms']:11.2f}x")
    print("ours' arrays: " + ", ".join(f"{part} {mb:.1f}" for part, mb in res["ours_arrays_mb"].items()) + " MB")
    print(f"ours and ours-before give the same top {ARGS.k} (documents and scores, to the bit) on "
          f"{res['same_results_as_before']} of {res['questions']} questions")
    if "note" in res:
        print(res["note"])
    if res["n"] >= 1_000_000:
        checks = [("top-k p50 <= 0.5 ms", ours["p50_ms"], TARGETS_1M["p50"]),
                  ("top-k p95 <= 1.2 ms", ours["p95_ms"], TARGETS_1M["p95"]),
                  ("index arrays <= 150 MB", ours["arrays_mb"], TARGETS_1M["arrays_mb"])]
        for label, value, target in checks:
            print(f"target at 1M, {label}: {value:.3f} {'PASS' if value <= target else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="shared data root (default: ../shared/data from the repo root)")
    ap.add_argument("--sizes", default="118k,1m", help="comma list from " + ",".join(SIZES))
    ap.add_argument("--queries", type=int, default=1000, help="SQuAD questions timed")
    ap.add_argument("--rounds", type=int, default=5, help="times each question is asked of each engine")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-numba", action="store_true", help="leave bm25s-numba out")
    ap.add_argument("--json", help="also write the numbers to this file")
    ARGS = a = ap.parse_args(argv)
    root = data.data_root(a.data)
    paras = data.load_squad(root) + data.load_bbc(root) + data.load_reuters(root)
    analyzer = Analyzer()
    log(f"analysing {len(paras):,} paragraphs ...")
    base = analyzer.tokenize_many([p[2] for p in paras])
    questions = [analyzer.tokenize(q["q"]) for q in data.sample_questions(data.load_questions(root), a.queries, seed=0)]
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "sizes": {}}
    for name in [s.strip().lower() for s in a.sizes.split(",") if s.strip()]:
        report["sizes"][name] = run_size(name, base, questions, a)
        print_size(name, report["sizes"][name])
        sys.stdout.flush()
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


ARGS: argparse.Namespace


if __name__ == "__main__":
    sys.exit(main())
