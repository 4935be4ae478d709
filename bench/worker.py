"""One engine's build + queries in its own process, so its peak memory can be read on its own.

Run by bench/run.py, not by hand:

    python -m bench.worker --engine ours|ours_before|rank_bm25|bm25s|bm25s_numba|baseline --method plus|okapi \
        --tokens TOKENS.pkl --n N --queries QUERIES.json --nq Q --out RESULT.json

TOKENS.pkl holds the base token lists (tokenized once, by our Analyzer, in the parent).  When
N is larger than the base, document i is a *copy* of base list i % len(base), so the process
holds N distinct lists, as it would after tokenizing N paragraphs.  "baseline" only does the
common part (imports, load the tokens, expand to N, build an Analyzer): its peak RSS is what
the parent subtracts to get each engine's own memory.

Query latency is single-query, wall clock, and includes analysing the question text with our
Analyzer (and, for bm25s, its vocabulary lookup, which its retrieve() does).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from index.analysis import Analyzer  # noqa: E402

os.environ.setdefault("DISABLE_TQDM", "1")


def rss_now_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_kb() -> int:
    """This process's own high-water RSS (VmHWM): unlike ru_maxrss it does not inherit the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ------------------------------------------------------------------------------------ engines
class Ours:
    def __init__(self, token_lists, method, k1, b, delta, epsilon):
        from index.bm25 import BM25Index

        kw = dict(method=method, k1=k1, b=b)
        if method == "okapi":
            kw["epsilon"] = epsilon
        else:
            kw["delta"] = delta
        self.idx = BM25Index.build(token_lists, **kw)

    def top_k(self, tokens, k):
        return [(int(d), float(s)) for d, s in self.idx.top_k(tokens, k)]

    def extra(self):
        out = {}
        nbytes = getattr(self.idx, "nbytes", None)
        if nbytes is not None:
            out["index_array_bytes"] = int(nbytes)
        out["vocabulary"] = len(getattr(self.idx, "vocabulary", []) or [])
        return out


class OursBefore(Ours):
    """Today's index with the top-k and array layout from before issue 10 (bench/bm25_before.py): the baseline
    the new top-k is timed against in the same run. Its build is today's plus the conversion."""

    def __init__(self, token_lists, method, k1, b, delta, epsilon):
        from bench.bm25_before import BM25Before

        super().__init__(token_lists, method, k1, b, delta, epsilon)
        self.idx = BM25Before(self.idx)


class RankBM25:
    def __init__(self, token_lists, method, k1, b, delta, epsilon):
        import rank_bm25

        if method == "okapi":
            self.m = rank_bm25.BM25Okapi(token_lists, k1=k1, b=b, epsilon=epsilon)
        elif method == "plus":
            self.m = rank_bm25.BM25Plus(token_lists, k1=k1, b=b, delta=delta)
        else:
            self.m = rank_bm25.BM25L(token_lists, k1=k1, b=b, delta=delta)

    def top_k(self, tokens, k):
        s = self.m.get_scores(tokens)
        part = np.argpartition(-s, k)[:k] if len(s) > k else np.arange(len(s))
        order = part[np.lexsort((part, -s[part]))]
        return [(int(d), float(s[d])) for d in order]

    def extra(self):
        return {}


class BM25S:
    METHOD = {"okapi": "robertson", "plus": "bm25+", "l": "bm25l"}

    BACKEND = "numpy"

    def __init__(self, token_lists, method, k1, b, delta, epsilon):
        import bm25s

        self.r = bm25s.BM25(method=self.METHOD[method], k1=k1, b=b, delta=delta, backend=self.BACKEND)
        # list of list of str: bm25s builds its own vocabulary (part of its build time).
        self.r.index(token_lists, show_progress=False)
        self.n = self.r.scores["num_docs"]

    def top_k(self, tokens, k):
        # The public single-query path: retrieve() maps tokens to ids, scores, selects.
        res = self.r.retrieve([tokens], k=min(k, self.n), show_progress=False, backend_selection=self.BACKEND)
        return [(int(d), float(s)) for d, s in zip(res.documents[0], res.scores[0])]

    def extra(self):
        sc = self.r.scores
        return {"index_array_bytes": int(sc["data"].nbytes + sc["indices"].nbytes + sc["indptr"].nbytes),
                "vocabulary": len(self.r.vocab_dict)}


class BM25SNumba(BM25S):
    """bm25s with its numba backend (the 'bench' extra installs numba): compiled scoring and selection. The
    first query compiles, so the warm-up questions absorb it."""

    BACKEND = "numba"


ENGINES = {"ours": Ours, "ours_before": OursBefore, "rank_bm25": RankBM25, "bm25s": BM25S, "bm25s_numba": BM25SNumba}


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True, choices=[*ENGINES, "baseline"])
    ap.add_argument("--method", default="plus", choices=["okapi", "l", "plus"])
    ap.add_argument("--k1", type=float, default=1.2)
    ap.add_argument("--b", type=float, default=0.75)
    ap.add_argument("--delta", type=float, default=1.0)
    ap.add_argument("--epsilon", type=float, default=0.25)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    with open(a.tokens, "rb") as fh:
        base = pickle.load(fh)
    nbase = len(base)
    if a.n <= nbase:
        token_lists = base[: a.n]
    else:
        token_lists = [list(base[i % nbase]) for i in range(a.n)]
    del base
    with open(a.queries, encoding="utf-8") as fh:
        qdata = json.load(fh)
    warm_q, queries = qdata["warmup"][: a.warmup], qdata["queries"][: a.nq]
    an = Analyzer()
    gc.collect()
    out = {"engine": a.engine, "method": a.method, "n": a.n, "pid": os.getpid(),
           "rss_after_load_kb": rss_now_kb(), "peak_after_load_kb": peak_kb()}
    if a.engine == "baseline":
        out["peak_kb"] = peak_kb()
        Path(a.out).write_text(json.dumps(out))
        return 0

    t0 = time.perf_counter()
    eng = ENGINES[a.engine](token_lists, a.method, a.k1, a.b, a.delta, a.epsilon)
    out["build_s"] = time.perf_counter() - t0
    out["rss_after_build_kb"] = rss_now_kb()
    out["peak_after_build_kb"] = peak_kb()
    # The engines hold what they need; drop our copy of the token lists only if nobody else does
    # (rank-bm25 keeps per-document dicts, bm25s keeps arrays, ours keeps arrays).
    del token_lists
    gc.collect()
    out["rss_after_build_gc_kb"] = rss_now_kb()

    for q in warm_q:
        eng.top_k(an.tokenize(q), a.k)
    lat, tok_lat, results = [], [], []
    perf = time.perf_counter
    for q in queries:
        t = perf()
        toks = an.tokenize(q)
        t_tok = perf()
        res = eng.top_k(toks, a.k)
        t_end = perf()
        lat.append(t_end - t)
        tok_lat.append(t_tok - t)
        results.append(res)
    out["latency_s"] = lat
    out["tokenize_latency_s"] = tok_lat
    out["nq"] = len(queries)
    out["results"] = results
    out["peak_kb"] = peak_kb()
    out.update(eng.extra())
    Path(a.out).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
