"""Engine-level restart test: persist our BM25 arrays in SQLite, then answer one question from a fresh process.

    python -m bench.restart prep --tokens TOKENS.pkl --n N --db PATH [--method plus]
    python -m bench.restart load --db PATH --question "..."

``prep`` builds the index from the token lists (copies, as in bench.worker) and stores the
engine's own ``to_arrays()`` blobs in a one-table SQLite file.  ``load`` is what a restarted
server does first: import, read the blobs, rebuild the index object, make an Analyzer, answer
one question; it prints its internal timings as JSON.  The parent (bench.run) times ``load``
from spawn to exit, so interpreter start-up and imports are included.

This is *not* the product's storage (that is the CLI's SQLite database, timed separately by
bench.run when index/cli.py exists); it is the floor the engine itself sets.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def _to_arrays(idx):
    for name in ("to_arrays", "save_arrays"):
        if hasattr(idx, name):
            return getattr(idx, name)()
    raise SystemExit("BM25Index has neither to_arrays() nor save_arrays()")


def _from_arrays(cls, blobs):
    for name in ("from_arrays", "load_arrays"):
        if hasattr(cls, name):
            return getattr(cls, name)(blobs)
    raise SystemExit("BM25Index has neither from_arrays() nor load_arrays()")


def prep(a) -> None:
    from index.bm25 import BM25Index

    with open(a.tokens, "rb") as fh:
        base = pickle.load(fh)
    nb = len(base)
    lists = base[: a.n] if a.n <= nb else [list(base[i % nb]) for i in range(a.n)]
    idx = BM25Index.build(lists, method=a.method, k1=1.2, b=0.75, **({"delta": 1.0} if a.method != "okapi" else {}))
    del lists, base
    blobs = _to_arrays(idx)
    Path(a.db).unlink(missing_ok=True)
    con = sqlite3.connect(a.db)
    con.execute("CREATE TABLE arrays (name TEXT PRIMARY KEY, data BLOB NOT NULL)")
    con.executemany("INSERT INTO arrays VALUES (?, ?)",
                    [(k, v if isinstance(v, (bytes, bytearray)) else v.tobytes()) for k, v in blobs.items()])
    con.commit()
    con.close()
    print(json.dumps({"db_bytes": Path(a.db).stat().st_size}))


def load(a) -> None:
    t0 = time.perf_counter()
    import numpy  # noqa: F401

    from index.analysis import Analyzer
    from index.bm25 import BM25Index

    t_import = time.perf_counter()
    con = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    blobs = {name: data for name, data in con.execute("SELECT name, data FROM arrays")}
    con.close()
    t_read = time.perf_counter()
    idx = _from_arrays(BM25Index, blobs)
    t_obj = time.perf_counter()
    an = Analyzer()
    hits = idx.top_k(an.tokenize(a.question), 10)
    t_q = time.perf_counter()
    print(json.dumps({
        "startup_to_main_s": t0 - _T_START,
        "imports_s": t_import - t0,
        "sqlite_read_s": t_read - t_import,
        "index_object_s": t_obj - t_read,
        "first_query_s": t_q - t_obj,
        "in_process_total_s": t_q - _T_START,
        "top1": int(hits[0][0]) if hits else None,
    }))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("--tokens", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--method", default="plus")
    q = sub.add_parser("load")
    q.add_argument("--db", required=True)
    q.add_argument("--question", required=True)
    a = ap.parse_args(argv)
    (prep if a.cmd == "prep" else load)(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
