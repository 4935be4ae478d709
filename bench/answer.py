"""The whole answer: a question in, the bot's rendered page out, through the real engine and renderer.

    python -m bench.answer                                  # 118k passages (SQuAD + BBC + Reuters)
    python -m bench.answer --sizes 118k,1m --questions 1000
    python -m bench.answer --work /tmp/answer-bench         # keep the built databases for the next run

For each size: the corpus is written as .jsonl (bench/data.py) and built once with the engine
(index.build.rebuild) into `--work` (reused when it is already there). One process then opens the
database twice: the product's `Newsdesk`, and `OldPathDesk` below, which answers the way main did
before issue 10 (three thread hops, the records through aiosqlite, and index/quotes.py as it was at
BASELINE_COMMIT, loaded with `git show`: Punkt and the analyzer re-run on every shown passage). Each
question goes through `bot.views.ask_page` (Newsdesk.ask plus the bot's layout, the same renderer for
both: its own speed-ups count on both sides), the two desks alternating question by question so that
load from other processes falls on both alike. Every page the two render must be the same text.

Printed per size: p50 / p95 / mean of the whole answer for each desk and the ratio, and the median CPU time
of the process (every thread) per answer, which other load on the machine does not inflate; in two passes:
"first" (each question asked once: record cache cold for its passages) and "again" (the same
questions asked a second time), and the search alone (Searcher.search, BM25 and re-ranking) for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import data  # noqa: E402
from index.desk import Answer, Newsdesk  # noqa: E402
from index.store import PassageRecord  # noqa: E402

BASELINE_COMMIT = "776a3bf"     # main before issue 10: its index/quotes.py is the baseline's quoting

SIZES = {"118k": None, "1m": 1_000_000}
PAGE_K = 5      # bot/cogs/ask.py: /ask shows 5 results a page (ask_page asks for one more)


class OldPathDesk(Newsdesk):
    """The answer path before issue 10, kept here as the baseline measured in the same run."""

    async def ask(self, question: str, k: int = 5, offset: int = 0, source: str | None = None,
                  context: str | None = None) -> Answer:
        searcher, build = self._loaded()
        reader = await self._read()
        started = time.perf_counter()
        result = await asyncio.to_thread(searcher.search, question, k, offset, None,
                                         **({"context": context} if context else {}))
        records = await reader.passages([hit.passage_id for hit in result.hits])
        return await asyncio.to_thread(_old_answer, searcher, build, question, result, records, started)


def _baseline_quotes() -> Any:
    """index/quotes.py as it was at BASELINE_COMMIT, loaded as a module of the index package (git show)."""
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:index/quotes.py"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("index._quotes_baseline")
    module.__package__ = "index"
    sys.modules[module.__name__] = module          # dataclasses look their module up there
    exec(compile(source, f"{BASELINE_COMMIT}:index/quotes.py", "exec"), module.__dict__)
    return module


_BASELINE = _baseline_quotes()


def _old_answer(searcher: Any, build: Any, question: str, result: Any, records: dict[str, PassageRecord],
                started: float) -> Answer:
    from index.desk import Result
    from index.listing import focus_of, names_in_quotes

    results = [Result(record, h, _BASELINE.select_quote(record.text, result.highlight_terms, searcher.analyzer,
                                                        searcher.splitter))
               for h in result.hits if (record := records.get(h.passage_id))]
    focus = focus_of(question) if results else None
    named = tuple(names_in_quotes(focus, ((r.record.id, r.quote.pieces) for r in results), searcher.places,
                                  question)) if focus else ()
    return Answer(result, results, build, time.perf_counter() - started, focus, named)


def prepare(size: str, work: Path, root: Path) -> tuple[Path, Path]:
    """The corpus and a built database for one size, made once under work/size."""
    from index.build import rebuild

    folder = work / size
    corpus, db = folder / "corpus", folder / "newsdesk.db"
    if db.exists() and (folder / "built").exists():
        return corpus, db
    paras = [p for ps in data.load_all(root).values() for p in ps]
    if SIZES[size]:
        paras = data.repeat_to(paras, SIZES[size], distinct_text=True)
    articles, files = data.write_jsonl_corpus(paras, corpus)
    print(f"[{size}] {len(paras):,} paragraphs in {articles:,} articles; building ...", flush=True)
    began = time.perf_counter()
    built = rebuild(db, corpus)
    print(f"[{size}] built {built.report.passages:,} passages in {time.perf_counter() - began:.1f} s", flush=True)
    (folder / "built").write_text(json.dumps(built.report.to_dict()))
    return corpus, db


async def measure(db: Path, corpus: Path, questions: list[str]) -> dict[str, Any]:
    from bot.views import ask_page
    from index.config import Settings

    settings = Settings(db, corpus)
    new = await Newsdesk.open(settings, build_if_missing=False)
    old = await OldPathDesk.open(settings, build_if_missing=False)
    times: dict[str, list[float]] = {f"{d} {p}": [] for d in ("new", "old") for p in ("first", "again")}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    search: list[float] = []
    load = os.getloadavg()[0]
    try:
        for q in questions[:5]:                                  # warm-up: imports, first connections
            await ask_page(new, q, PAGE_K, 0, None)
            await ask_page(old, q, PAGE_K, 0, None)
        differ = 0
        for rep in ("first", "again"):
            for i, q in enumerate(questions):
                order = (new, old) if i % 2 else (old, new)
                pages = {}
                for desk in order:
                    name = f"{'new' if desk is new else 'old'} {rep}"
                    began, began_cpu = time.perf_counter(), time.process_time()
                    page = await ask_page(desk, q, PAGE_K, 0, None)
                    times[name].append(time.perf_counter() - began)
                    cpu[name].append(time.process_time() - began_cpu)
                    pages[desk] = page if isinstance(page, str) else page[0].content
                differ += pages[new] != pages[old]
        searcher = new.searcher
        assert searcher is not None
        for q in questions:
            began = time.perf_counter()
            searcher.search(q, PAGE_K + 1)
            search.append(time.perf_counter() - began)
        passages = new.build.passages if new.build else 0
    finally:
        await new.close()
        await old.close()
    return {"passages": passages, "search": search, "pages_differing": differ, "cpu": cpu,
            "load": (load, os.getloadavg()[0]), **times}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "mean_ms": 1000 * statistics.fmean(ordered)}


def report(size: str, measured: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"size": size, "passages": measured["passages"],
                           "pages_differing": measured["pages_differing"]}
    print(f"\n{size}: {measured['passages']:,} passages, {len(measured['search'])} questions, page of {PAGE_K}; "
          f"pages the two paths rendered differently: {measured['pages_differing']}; "
          f"load average {measured['load'][0]:.1f} -> {measured['load'][1]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'':24s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s} {'CPU p50':>8s}")
    for name in ("new first", "old first", "new again", "old again", "search"):
        s = summary(measured[name])
        if name in measured["cpu"]:
            s["cpu_p50_ms"] = 1000 * statistics.median(measured["cpu"][name])
        out[name] = s
        label = {"search": "search alone"}.get(name, f"whole answer, {name}")
        cpu = f"{s['cpu_p50_ms']:8.3f}" if "cpu_p50_ms" in s else f"{'-':>8s}"
        print(f"  {label:24s} {s['p50_ms']:8.3f} {s['p95_ms']:8.3f} {s['mean_ms']:8.3f} {cpu}")
    for rep in ("first", "again"):
        ratio = out[f"old {rep}"]["p50_ms"] / out[f"new {rep}"]["p50_ms"]
        cpu_ratio = out[f"old {rep}"]["cpu_p50_ms"] / out[f"new {rep}"]["cpu_p50_ms"]
        out[f"speedup {rep}"] = ratio
        print(f"  old / new p50, {rep}: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="118k", help="comma-separated: 118k, 1m")
    ap.add_argument("--questions", type=int, default=500, help="SQuAD questions asked (a fixed sample)")
    ap.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    ap.add_argument("--work", default=None, help="where corpora and databases are built (kept); default: a temp dir")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    root = data.data_root(args.data)
    questions = [q["q"] for q in data.sample_questions(data.load_questions(root), args.questions)]
    temp = None if args.work else tempfile.TemporaryDirectory(prefix="answer-bench-")
    work = Path(args.work or temp.name)  # type: ignore[union-attr]
    results = []
    try:
        for size in args.sizes.split(","):
            corpus, db = prepare(size, work, root)
            results.append(report(size, asyncio.run(measure(db, corpus, questions))))
    finally:
        if temp is not None:
            temp.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
