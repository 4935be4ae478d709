"""Product-level build and restart through the engine's Python API (index.desk.Newsdesk), no CLI needed.

    python -m bench.product build --corpus DIR --db PATH
    python -m bench.product ask --db PATH --question "..."

bench.run uses the real CLI (``python -m index.cli``) when index/cli.py exists and this module
otherwise; both run in a fresh subprocess timed from spawn to exit by the parent.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


async def _build(corpus: str, db: str) -> dict:
    from index.build import rebuild
    from index.store import Store

    t0 = time.perf_counter()
    store = await Store(db).open()
    try:
        report = await rebuild(store, Path(corpus))
    finally:
        await store.close()
    return {"seconds": time.perf_counter() - t0, "passages": report.passages, "articles": report.articles}


async def _ask(db: str, question: str) -> dict:
    t0 = time.perf_counter()
    from index.desk import Newsdesk

    t_imp = time.perf_counter()
    desk = await Newsdesk.open(db, build_if_missing=False)
    t_open = time.perf_counter()
    try:
        ans = await desk.ask(question)
    finally:
        await desk.close()
    t_ans = time.perf_counter()
    top = ans.results[0].record.id if ans.results else None
    return {"startup_to_main_s": t0 - _T_START, "imports_s": t_imp - t0, "open_s": t_open - t_imp,
            "ask_s": t_ans - t_open, "in_process_total_s": t_ans - _T_START, "top1": top}


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--corpus", required=True)
    b.add_argument("--db", required=True)
    q = sub.add_parser("ask")
    q.add_argument("--db", required=True)
    q.add_argument("--question", required=True)
    a = ap.parse_args(argv)
    out = asyncio.run(_build(a.corpus, a.db) if a.cmd == "build" else _ask(a.db, a.question))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
