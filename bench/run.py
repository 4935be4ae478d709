"""Issue 10's targets, measured on the product in one run, each beside its anchor or baseline from the same run.

    python -m bench.run                     # 118k and 1M passages: about 10 minutes on 2 cores
    python -m bench.run --quick             # 118k only, fewer questions and repeats: about 2 minutes
    python -m bench.run --readme            # also rewrite README's Benchmarks table from this run
    python -m bench.run --readme --from bench/results/run.json     # the table again from a saved run

Per size, on a corpus folder of .jsonl articles written by bench/data.py (the 118k real paragraphs, or
them repeated to 1M with distinct texts) and a SQLite file, each step a process of its own:

1. `newsdesk index build` from scratch: wall time, passages/s, and the process tree's peak RSS and PSS
   (bench/tree.py: the builder and its analysis workers, /proc sampled every 50 ms and summed per sample);
2. a serving process (`bench.product serve`) opens the desk and answers through the bot's renderer; its
   RSS and PSS, and the index arrays it holds;
3. `--repeats` times, alternating: one new 20-paragraph article is added to the corpus folder and
   `newsdesk index build` run (wall, builder tree peak: the memory the add takes beside the serving
   process; the build's own report says whether it wrote a delta segment and how many passages the delta
   holds), the serving process loads that build (Newsdesk.refresh: it reuses the base it holds and reads
   the delta; time and memory after), then `newsdesk index build` with nothing changed; medians. Then one
   asker in the serving process answers as fast as it can: idle, while `newsdesk index build` adds one
   more article (until the serving process has loaded it), and while the serving process rebuilds itself
   after another (the bot's /reindex), `--repeats` times in turn; answers/s against idle. Then `newsdesk
   index merge` (the delta compiled whole; wall, tree peak) and the serving process loading that whole
   compile; then its memory once the replaced indexes are let go;
4. restart: `newsdesk ask` in a fresh process, spawn to exit, `--repeats` times, median;
5. the whole answer, question to rendered page (bench/answer.py: the product path against the path from
   before issue 10, question by question in one process);
6. BM25 top-k on the product's index (its k1/b, titles included) against bm25s-numba on the same term ids
   (`bench.product topk`).
Then bench/topk.py at 1M (rank-bm25's k1/b on the paragraphs' tokens: ours, ours before issue 10 and
bm25s-numba, interleaved), and Lucene where a JDK 21+ and pyjnius/pyserini are installed (skipped with the
reason otherwise). The machine (CPU, cores, RAM, load at start and end), date and commit are recorded.
Everything is written to `--json` (default bench/results/run.json).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import data  # noqa: E402
from bench.tree import TreeSampler, machine  # noqa: E402

PY = sys.executable
SIZES = {"118k": None, "1m": 1_000_000}
GB = 1024.0                    # MB in a GB, as the targets count
TARGETS = {                    # issue 10, "Targets"
    "add_1m_s": 1.0, "add_mem_mb": 200.0, "unchanged_1m_s": 0.5,
    "build_per_s": 50_000.0, "build_tree_mb": 1.2 * GB,
    "answer_118k_ms": 1.0, "answer_1m_ms": 1.5,
    "topk_p50_ms": 0.5, "topk_p95_ms": 1.2,
    "serving_mb": 600.0, "arrays_mb": 150.0, "restart_s": 0.5, "answers_share": 0.8,
}
README = REPO_ROOT / "README.md"
START = "<!-- bench.run: start (python -m bench.run --readme writes between these lines) -->"
END = "<!-- bench.run: end -->"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


SRC = REPO_ROOT       # where the measured processes import index/ and bot/ from (see snapshot)


def snapshot(rev: str, dest: Path) -> Path:
    """index/ and bot/ as committed at rev, with today's bench/ beside them, in dest.

    Other engineers edit the checkout while a run takes its 10 minutes: measured from a snapshot, every
    process of the run imports the same engine, and the one the table names.
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "index", "bot"], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    shutil.copytree(REPO_ROOT / "bench", dest / "bench", ignore=shutil.ignore_patterns("results", "__pycache__"))
    return dest


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSDESK_SEARCH", "NEWSDESK_DB", "NEWSDESK_CORPUS")}
    env["DISABLE_TQDM"] = "1"
    # The snapshot before the editable install's finder; bench/answer.py's `git show` still finds the repository.
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["GIT_DIR"] = str(REPO_ROOT / ".git")
    return env


def newsdesk(*args: str | Path) -> list[str]:
    """The product's command line (what the installed `newsdesk` script runs), from SRC."""
    return [PY, "-m", "index.cli", *(str(a) for a in args)]


def measured(cmd: list[str], out: Path, side: int | None = None) -> dict[str, Any]:
    """Run a command to its end: wall time, exit status, its process tree's peak memory and the JSON it printed.

    side: another process (the serving one) whose memory is sampled over the same time.
    """
    load = os.getloadavg()[0]
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=SRC, stdout=stdout, stderr=stderr, env=_env())
        with TreeSampler(proc.pid) as tree, (TreeSampler(side) if side else contextlib.nullcontext()) as other:
            rc = proc.wait()
        wall = time.perf_counter() - began
    r: dict[str, Any] = {"wall_s": wall, "rc": rc, "load_1min": [load, os.getloadavg()[0]], **tree.summary()}
    if other is not None:
        r["serving_peak_rss_mb"] = other.peak_rss_kb / 1024
    if rc != 0:
        r["error"] = out.with_suffix(".err").read_text(errors="replace")[-1500:]
        log(f"    FAILED (exit {rc}): {r['error'][-400:]}")
        return r
    r["report"] = last_json(out.read_text())
    return r


def last_json(text: str) -> dict[str, Any]:
    """The last JSON object a command printed: a whole pretty-printed one, or its last one-line object."""
    text = text.strip()
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else {}
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            continue
    return {}


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ------------------------------------------------------------------------------------------- steps


def write_article(corpus: Path, paras: list[data.Paragraph], round_: int) -> Path:
    """One new 20-paragraph article, texts that are nowhere else in the corpus."""
    start = (round_ * 20 * 997) % (len(paras) - 20)
    texts = [f"{text} (added {round_})" for _, _, text in paras[start:start + 20]]
    path = corpus / f"added-{round_:02d}.jsonl"
    path.write_text(json.dumps({"id": f"added/{round_}", "title": f"Added article {round_}", "paragraphs": texts}) + "\n")
    return path


class Serving:
    """The serving process (bench.product serve --hold), spoken to by lines on its stdin and stdout."""

    def __init__(self, db: Path, corpus: Path, questions: Path, answers: int) -> None:
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen([PY, "-m", "bench.product", "serve", "--db", str(db), "--corpus", str(corpus),
                                      "--questions", str(questions), "--answers", str(answers), "--hold"],
                                     cwd=SRC, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), text=True)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the serving process ended (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.say("quit")
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def after_adds(out: dict[str, Any], serving: Serving, corpus: Path, db: Path, paras: list[data.Paragraph],
               folder: Path, repeats: int) -> None:
    out.update(answers_while_adding(serving, corpus, db, paras, repeats, folder, out["add"], repeats))
    log("  `newsdesk index merge`: the delta compiled whole into the base; the serving process loads it ...")
    m = out["merge"] = measured(newsdesk("index", "merge", "--corpus", corpus, "--db", db, "--json"),
                                folder / "merge.out", side=serving.proc.pid)
    serving.say("refresh")
    loaded = out["serving_after_merge"] = serving.read()
    log(f"    merge {m['wall_s']:.2f} s (tree PSS {m['tree_peak_pss_mb']:,.0f} MB); serving loads it in "
        f"{loaded['refresh_s']:.2f} s, RSS after {loaded['rss_mb']:,.0f} MB")
    log("  serving process: memory once the replaced indexes are let go ...")
    serving.say("settle")
    out["serving_settled"] = serving.read()


def answers_while_adding(serving: Serving, corpus: Path, db: Path, paras: list[data.Paragraph], first: int,
                         folder: Path, adds: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Answers/s of one asker in the serving process: idle, while `newsdesk index build` adds an article
    (another process, as an admin runs it), and while the serving process itself rebuilds (the bot's /reindex).

    `rounds` times, each an idle window, an add and a /reindex in turn, so that a change in the machine's other
    load falls on all three; an add's window lasts about a second, so one alone says little. The idle window
    lasts as long as a measured add took (at least 3 s).
    """
    idle_s = max(3.0, median([r["wall_s"] for r in adds if "error" not in r]) or 0.0)
    log(f"  answers/s x {rounds}: idle for {idle_s:.1f} s; while `newsdesk index build` adds an article; while "
        "the serving process rebuilds (/reindex) after another ...")
    idle, during, reindex = [], [], []
    for r in range(rounds):
        serving.say("refresh")        # the builds with nothing changed since the last add: not in the idle window
        serving.read()
        serving.say("load")
        time.sleep(idle_s)
        serving.say("stop")
        idle.append(serving.read())
        write_article(corpus, paras, first + 2 * r)
        serving.say("load")
        build = measured(newsdesk("index", "build", "--corpus", corpus, "--db", db, "--json"),
                         folder / f"add-answering-{r}.out", side=serving.proc.pid)
        serving.say("stop")
        during.append({**serving.read(), "build_wall_s": build["wall_s"], "build_report": build.get("report")})
        write_article(corpus, paras, first + 2 * r + 1)
        serving.say("reindex")
        reindex.append(serving.read())
        log(f"    idle {idle[-1]['answers_per_s']:.0f}/s; during `index build` {during[-1]['answers_per_s']:.0f}/s "
            f"(worst {during[-1]['answer_max_ms']:.0f} ms); during /reindex {reindex[-1]['answers_per_s']:.0f}/s "
            f"(worst {reindex[-1]['answer_max_ms']:.0f} ms, rebuild {reindex[-1]['report']['seconds']:.2f} s, "
            f"compiled {reindex[-1]['report']['compiled']})")
    return {"answers_idle": idle, "answers_during_add": during, "answers_during_reindex": reindex}


def answers_per_s(windows: list[dict[str, Any]]) -> float | None:
    """All the windows' answers over all their time: a short window weighs as little as it lasted."""
    seconds = sum(w["window_s"] for w in windows)
    return sum(w["answers"] for w in windows) / seconds if seconds else None


def child_json(cmd: list[str], out: Path) -> dict[str, Any]:
    """Run a bench script, keep its output beside the results, and return what it printed last as JSON."""
    with open(out, "wb") as stdout:
        p = subprocess.run(cmd, cwd=SRC, stdout=stdout, stderr=subprocess.PIPE, env=_env())
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")[-1500:]
        log(f"    FAILED (exit {p.returncode}): {err[-400:]}")
        return {"error": err}
    return last_json(out.read_text())


def run_size(size: str, paras: list[data.Paragraph], work: Path, a: argparse.Namespace) -> dict[str, Any]:
    folder = work / size
    corpus, db = folder / "corpus", folder / "newsdesk.db"
    out: dict[str, Any] = {"size": size, "machine_at_start": machine()}
    if a.reuse and (folder / "built").exists():
        log(f"{size}: reusing {db} (--reuse: no build from scratch measured)")
        out["scratch"] = {"reused": str(db)}
        for added in corpus.glob("added-*.jsonl"):     # back to the corpus as built, unmeasured
            added.unlink()
        subprocess.run(newsdesk("index", "build", "--corpus", corpus, "--db", db), cwd=SRC, env=_env(),
                       stdout=subprocess.DEVNULL, check=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        n = SIZES[size]
        rows = paras if n is None else data.repeat_to(paras, n, distinct_text=True)
        articles, files = data.write_jsonl_corpus(rows, corpus)
        out["corpus"] = {"paragraphs": len(rows), "articles": articles, "files": files}
        del rows
        log(f"{size}: {out['corpus']['paragraphs']:,} paragraphs in {articles:,} articles; `newsdesk index build` "
            "from scratch ...")
        s = out["scratch"] = measured(newsdesk("index", "build", "--corpus", corpus, "--db", db, "--json"),
                                      folder / "scratch.out")
        if "error" in s:
            return out
        s["passages"] = s["report"].get("passages")
        s["per_s"] = s["passages"] / s["wall_s"]
        (folder / "built").write_text(json.dumps(s["report"]))      # bench/answer.py reuses a marked database
        log(f"  {s['passages']:,} passages in {s['wall_s']:.1f} s = {s['per_s']:,.0f}/s; tree peak RSS "
            f"{s['tree_peak_rss_mb']:,.0f} MB, PSS {s['tree_peak_pss_mb']:,.0f} MB")

    questions = folder / "questions.json"
    questions.write_text(json.dumps(a.question_texts))
    log(f"{size}: serving process: open, answer {a.answers} questions ...")
    serving = Serving(db, corpus, questions, a.answers)
    try:
        first = serving.read()
        out["serving_start"] = {**first, "spawn_to_first_answer_s": first["first_answer_monotonic"] - serving.spawned}
        out["serving"] = serving.read()
        log(f"  RSS {out['serving']['rss_mb']:,.0f} MB, PSS {out['serving']['pss_mb']:,.0f} MB, index arrays "
            f"{out['serving']['index_arrays_mb']:,.1f} MB")
        adds, unchanged, refreshed = [], [], []
        for r in range(a.repeats):
            write_article(corpus, paras, r)
            log(f"  round {r + 1}/{a.repeats}: add one 20-paragraph article, build; serving process loads it; "
                "build with nothing changed ...")
            adds.append(measured(newsdesk("index", "build", "--corpus", corpus, "--db", db, "--json"),
                                 folder / f"add-{r}.out", side=serving.proc.pid))
            serving.say("refresh")
            refreshed.append(serving.read())
            unchanged.append(measured(newsdesk("index", "build", "--corpus", corpus, "--db", db, "--json"),
                                      folder / f"unchanged-{r}.out"))
            own = adds[-1].get("report", {})
            log(f"    add {adds[-1]['wall_s']:.2f} s (own {own.get('seconds', 0):.2f} s, compiled {own.get('compiled')}, "
                f"delta {own.get('delta_passages')} passages; tree PSS {adds[-1]['tree_peak_pss_mb']:,.0f} MB), "
                f"serving loads it in {refreshed[-1]['refresh_s']:.3f} s, RSS after {refreshed[-1]['rss_mb']:,.0f} MB; "
                f"unchanged {unchanged[-1]['wall_s']:.2f} s")
        out["add"], out["unchanged"], out["serving_after_add"] = adds, unchanged, refreshed
        try:
            after_adds(out, serving, corpus, db, paras, folder, a.repeats)
        except Exception as e:          # restart, whole answer and top-k are still worth their minutes
            log(f"  FAILED after the adds: {e!r}")
            out["after_adds_error"] = repr(e)
    finally:
        serving.close()

    log(f"{size}: restart: `newsdesk ask` in a fresh process x {a.repeats} ...")
    restarts = []
    for r in range(a.repeats):
        cmd = newsdesk("ask", a.question_texts[r], "--db", db, "--corpus", corpus, "--json")
        began = time.perf_counter()
        p = subprocess.run(cmd, cwd=SRC, capture_output=True, env=_env())
        restarts.append({"wall_s": time.perf_counter() - began, "rc": p.returncode,
                         "answered": bool(last_json(p.stdout.decode(errors="replace")).get("results"))})
    out["restart"] = restarts

    log(f"{size}: whole answer, bench/answer.py, {a.answer_questions} questions ...")
    res = child_json([PY, "-m", "bench.answer", "--sizes", size, "--work", str(work), "--questions",
                      str(a.answer_questions), "--data", str(a.root), "--json", str(folder / "answer.json")],
                     folder / "answer.out")
    out["answer"] = res if "error" in res else json.loads((folder / "answer.json").read_text())[0]

    log(f"{size}: BM25 top-k on the product's index against bm25s-numba on the same term ids ...")
    out["product_topk"] = child_json([PY, "-m", "bench.product", "topk", "--db", str(db), "--corpus", str(corpus),
                                      "--questions", str(questions), "--rounds", str(a.rounds)],
                                     folder / "product_topk.out")
    out["machine_at_end"] = machine()
    return out


def lucene() -> dict[str, Any]:
    """Run the Lucene anchor only where it can run; otherwise say why not."""
    reasons = []
    try:
        p = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        m = re.search(r'version "(\d+)', p.stderr + p.stdout)
        major = int(m.group(1)) if m else 0
        if major < 21:
            reasons.append(f"java -version reports {major or 'no version'}, below 21")
    except (OSError, subprocess.TimeoutExpired):
        reasons.append("no java on PATH")
    missing = [name for name in ("jnius", "pyserini") if importlib.util.find_spec(name) is None]
    if missing:
        reasons.append(f"{' and '.join(missing)} not installed")
    if reasons:
        return {"skipped": "Lucene anchor skipped: " + "; ".join(reasons) + "."}
    return {"skipped": "Lucene anchor skipped: a JDK 21+ and pyserini are present, but this harness has no "
                       "Lucene runner yet."}


def commit(rev: str) -> dict[str, Any]:
    """What the run measures: a commit (from a snapshot), or the checkout as it is, uncommitted edits listed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()

    head = "HEAD" if rev == "worktree" else rev
    return {"commit": git("rev-parse", "--short", head), "subject": git("log", "-1", "--format=%s", head),
            "uncommitted_engine_files": git("status", "--porcelain", "--", "index", "bot").splitlines()
            if rev == "worktree" else []}


# ------------------------------------------------------------------------------------------- report


def figures(rep: dict[str, Any]) -> dict[str, Any]:
    """The numbers the table shows, per size: medians over the repeats."""
    out: dict[str, Any] = {}
    for s in rep["sizes"]:
        f: dict[str, Any] = {}
        sc = s.get("scratch", {})
        if "per_s" in sc:
            f.update(build_per_s=sc["per_s"], build_wall_s=sc["wall_s"], build_rss_mb=sc["tree_peak_rss_mb"],
                     build_pss_mb=sc["tree_peak_pss_mb"], passages=sc["passages"],
                     build_largest_mb=sc["largest_process_hwm_mb"])
        ok_adds = [r for r in s.get("add", []) if "error" not in r]
        if ok_adds:
            f["add_s"] = median([r["wall_s"] for r in ok_adds])
            f["add_report_s"] = median([r["report"].get("seconds", 0.0) for r in ok_adds])
            f["add_pss_mb"] = median([r["tree_peak_pss_mb"] for r in ok_adds])
            f["add_rss_mb"] = median([r["tree_peak_rss_mb"] for r in ok_adds])
            f["add_compiled"] = "/".join(sorted({str(r["report"].get("compiled")) for r in ok_adds}))
            f["add_delta_passages"] = [r["report"].get("delta_passages") for r in ok_adds]
        mg = s.get("merge", {})
        if "report" in mg:
            f.update(merge_s=mg["wall_s"], merge_report_s=mg["report"].get("seconds"), merge_compiled=mg["report"].get(
                "compiled"), merge_rss_mb=mg["tree_peak_rss_mb"], merge_pss_mb=mg["tree_peak_pss_mb"])
        loads = [r for r in s.get("serving_after_add", []) if r.get("refreshed")]
        if loads:
            f.update(load_add_s=median([r["refresh_s"] for r in loads]), load_add_rss_mb=max(r["rss_mb"] for r in loads),
                     load_add_pss_mb=max(r["pss_mb"] for r in loads), load_add_index=loads[-1].get("index"))
        merged = s.get("serving_after_merge", {})
        if merged.get("refreshed"):
            f.update(load_merge_s=merged["refresh_s"], load_merge_rss_mb=merged["rss_mb"],
                     load_merge_pss_mb=merged["pss_mb"], load_merge_index=merged.get("index"))
        idle = answers_per_s(s.get("answers_idle", []))
        for key, name in (("answers_during_add", "add"), ("answers_during_reindex", "reindex")):
            busy = answers_per_s(s.get(key, []))
            if idle and busy:
                f.update({f"answers_{name}_share": busy / idle, f"answers_{name}_per_s": busy,
                          f"answers_{name}_max_ms": max(w["answer_max_ms"] for w in s[key])})
        if idle:
            f["answers_idle_per_s"] = idle
        ok_same = [r for r in s.get("unchanged", []) if "error" not in r]
        if ok_same:
            f["unchanged_s"] = median([r["wall_s"] for r in ok_same])
            f["unchanged_report_s"] = median([r["report"].get("seconds", 0.0) for r in ok_same])
        if "serving_start" in s:
            f.update(start_imports_s=s["serving_start"]["imports_s"], start_open_s=s["serving_start"]["open_s"])
        if "serving" in s:
            f.update(serving_rss_mb=s["serving"]["rss_mb"], serving_pss_mb=s["serving"]["pss_mb"],
                     arrays_mb=s["serving"]["index_arrays_mb"], article_mb=s["serving"].get("article_evidence_mb"))
            f.setdefault("passages", s["serving"]["passages"])
        if "serving_settled" in s:
            f["serving_settled_rss_mb"] = s["serving_settled"]["rss_mb"]
        ok_restarts = [r["wall_s"] for r in s.get("restart", []) if r["rc"] == 0 and r["answered"]]
        if ok_restarts:
            f["restart_s"] = median(ok_restarts)
        ans = s.get("answer", {})
        if "new first" in ans:
            f.update(answer_p50_ms=ans["new first"]["p50_ms"], answer_p95_ms=ans["new first"]["p95_ms"],
                     answer_old_p50_ms=ans["old first"]["p50_ms"], answer_again_p50_ms=ans["new again"]["p50_ms"],
                     answer_pages_differing=ans["pages_differing"])
        pt = s.get("product_topk", {})
        if "engines" in pt:
            f.update(ptopk=pt["engines"]["ours"], ptopk_numba=pt["engines"]["bm25s_numba"],
                     ptopk_numba_build_s=pt["bm25s_numba_build_s"], ptopk_same=pt["same_top1"],
                     ptopk_questions=pt["questions"], ptopk_params=pt["params"])
        tk = rep.get("topk", {}).get("sizes", {}).get(s["size"])
        if tk:
            f.update(topk=tk["engines"]["ours"], topk_before=tk["engines"].get("ours_before"),
                     topk_numba=tk["engines"].get("bm25s_numba"), topk_numba_build_s=tk["build_s"].get("bm25s_numba"),
                     topk_ours_build_s=tk["build_s"].get("ours"))
        out[s["size"]] = f
    return out


def _num(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _verdict(value: float | None, target: float, larger_better: bool = False) -> str:
    if value is None:
        return "–"
    return "met" if (value >= target if larger_better else value <= target) else "**not met**"


def readme_table(rep: dict[str, Any]) -> str:
    """The Benchmarks table, from one run's report: one row per target, both sizes, the verdict at 1M."""
    f = figures(rep)
    small, big = f.get("118k", {}), f.get("1m", {})

    def cells(key: str, spec: str) -> tuple[str, str]:
        return _num(small.get(key), spec), _num(big.get(key), spec)

    def sizes(text: Any) -> str:
        """text(figures) for each size that has them, '118k: …; 1M: …'."""
        parts = [(name, text(x)) for name, x in (("118k", small), ("1M", big)) if x]
        return "; ".join(f"{name} {t}" for name, t in parts if t)

    def pair(e: dict[str, float] | None) -> str:
        return f"{e['p50_ms']:.3f} / {e['p95_ms']:.3f}" if e else "–"

    rows = [
        ("add one 20-paragraph article, `newsdesk index build`: wall s", *cells("add_s", ".2f"), "≤ 1 s",
         _verdict(big.get("add_s"), TARGETS["add_1m_s"]),
         "the build's own report: " + sizes(lambda x: f"{_num(x.get('add_report_s'))} s, compiled "
                                                      f"{x.get('add_compiled', '–')} (delta passages "
                                                      f"{', '.join(map(str, x.get('add_delta_passages', [])))})")
         + " (the rest: interpreter and imports)"),
        ("… its process tree's peak PSS beside the serving process, MB", *cells("add_pss_mb", ",.0f"), "≤ 200 MB",
         _verdict(big.get("add_pss_mb"), TARGETS["add_mem_mb"]),
         "RSS " + sizes(lambda x: f"{_num(x.get('add_rss_mb'), ',.0f')}")),
        ("nothing changed, `newsdesk index build`: wall s", *cells("unchanged_s", ".2f"), "≤ 0.5 s",
         _verdict(big.get("unchanged_s"), TARGETS["unchanged_1m_s"]),
         "own report: " + sizes(lambda x: f"{_num(x.get('unchanged_report_s'))} s")),
        ("merge, `newsdesk index merge` (the delta compiled whole into the base): wall s", *cells("merge_s", ".2f"),
         "–", "–", "own report: " + sizes(lambda x: f"{_num(x.get('merge_report_s'))} s") + "; its process tree's "
         "peak RSS (PSS): " + sizes(lambda x: f"{_num(x.get('merge_rss_mb'), ',.0f')} ({_num(x.get('merge_pss_mb'), ',.0f')}) MB")),
        ("serving process loads the new build (`Newsdesk.refresh`): after an add / after a merge, s",
         *(f"{_num(x.get('load_add_s'), '.3f')} / {_num(x.get('load_merge_s'), '.2f')}" for x in (small, big)),
         "–", "–", "RSS (PSS) right after, the replaced index still held for its grace period: after an add "
         + sizes(lambda x: f"{_num(x.get('load_add_rss_mb'), ',.0f')} ({_num(x.get('load_add_pss_mb'), ',.0f')}) MB")
         + "; after a merge " + sizes(lambda x: f"{_num(x.get('load_merge_rss_mb'), ',.0f')} "
                                                f"({_num(x.get('load_merge_pss_mb'), ',.0f')}) MB")
         + "; RSS once the replaced ones are let go: " + sizes(lambda x: f"{_num(x.get('serving_settled_rss_mb'), ',.0f')} MB")),
        ("answers/s of one asker in the serving process while an article is added, share of idle: "
         "`newsdesk index build` / `/reindex` (`Newsdesk.rebuild`) in the serving process",
         *(f"{_pct(x.get('answers_add_share'))} / {_pct(x.get('answers_reindex_share'))}" for x in (small, big)),
         "≥ 80%", _verdict(big.get("answers_add_share"), TARGETS["answers_share"], larger_better=True) + " / "
         + _verdict(big.get("answers_reindex_share"), TARGETS["answers_share"], larger_better=True),
         "idle: " + sizes(lambda x: f"{_num(x.get('answers_idle_per_s'), ',.0f')}/s") + "; slowest answer during "
         "`index build` / `/reindex`: " + sizes(lambda x: f"{_num(x.get('answers_add_max_ms'), ',.0f')} / "
                                                          f"{_num(x.get('answers_reindex_max_ms'), ',.0f')} ms")),
        ("build from scratch, `newsdesk index build`: passages/s", *cells("build_per_s", ",.0f"), "≥ 50,000/s",
         _verdict(big.get("build_per_s"), TARGETS["build_per_s"], larger_better=True),
         "wall " + sizes(lambda x: f"{_num(x.get('build_wall_s'), '.1f')} s") + "; bm25s-numba indexes the same "
         "documents' term ids (no analysis, no SQLite) in " + sizes(lambda x: f"{_num(x.get('ptopk_numba_build_s'), '.1f')} s")),
        ("… its process tree's peak RSS (PSS), MB",
         *(f"{_num(x.get('build_rss_mb'), ',.0f')} ({_num(x.get('build_pss_mb'), ',.0f')})" for x in (small, big)),
         "≤ 1.2 GB", _verdict(big.get("build_rss_mb"), TARGETS["build_tree_mb"]),
         "largest process alone: " + sizes(lambda x: f"{_num(x.get('build_largest_mb'), ',.0f')} MB")),
        ("whole answer, question to rendered page (`ask_page`): p50 ms", *cells("answer_p50_ms", ".2f"),
         "≤ 1 (118k), ≤ 1.5 ms", _verdict(big.get("answer_p50_ms"), TARGETS["answer_1m_ms"])
         + f" (118k: {_verdict(small.get('answer_p50_ms'), TARGETS['answer_118k_ms'])})",
         "the path before issue 10: " + sizes(lambda x: f"{_num(x.get('answer_old_p50_ms'))} ms")
         + "; pages that differ: " + sizes(lambda x: f"{x.get('answer_pages_differing', '–')}")),
    ]
    if small.get("ptopk") or big.get("ptopk"):
        same = ", ".join(f"{x['ptopk_same']}/{x['ptopk_questions']}" for x in (small, big) if "ptopk_same" in x)
        y = big.get("ptopk")
        rows.append(("BM25 top-k on the product's index (k1 0.6, b 0.9, titles): p50 / p95 ms",
                     pair(small.get("ptopk")), pair(y), "≤ 0.5 / 1.2 ms",
                     (_verdict(y["p50_ms"], TARGETS["topk_p50_ms"]) + " / " + _verdict(y["p95_ms"], TARGETS["topk_p95_ms"])
                      if y else "–"),
                     "bm25s-numba on the same term ids: " + sizes(lambda x: pair(x.get("ptopk_numba")) + " ms")
                     + f"; same top 1 on {same} questions"))
    if small.get("topk") or big.get("topk"):
        y = big.get("topk")
        rows.append(("BM25 top-k, `bench/topk.py` (k1 1.2, b 0.75, paragraphs): p50 / p95 ms",
                     pair(small.get("topk")), pair(y), "≤ 0.5 / 1.2 ms",
                     (_verdict(y["p50_ms"], TARGETS["topk_p50_ms"]) + " / " + _verdict(y["p95_ms"], TARGETS["topk_p95_ms"])
                      if y else "–"),
                     "bm25s-numba: " + sizes(lambda x: pair(x.get("topk_numba")) + " ms" if x.get("topk") else "")
                     + "; ours before issue 10: "
                     + sizes(lambda x: pair(x.get("topk_before")) + " ms" if x.get("topk") else "")))
    rows += [
        ("index arrays in memory (passages and article evidence), MB", *cells("arrays_mb", ",.0f"), "≤ 150 MB",
         _verdict(big.get("arrays_mb"), TARGETS["arrays_mb"]),
         "of which article evidence: " + sizes(lambda x: f"{_num(x.get('article_mb'), ',.0f')} MB")
         + "; bm25s-numba, the passages: " + sizes(lambda x: f"{_num((x.get('ptopk_numba') or {}).get('arrays_mb'), ',.0f')} MB")),
        ("serving process resident, RSS (PSS), MB",
         *(f"{_num(x.get('serving_rss_mb'), ',.0f')} ({_num(x.get('serving_pss_mb'), ',.0f')})" for x in (small, big)),
         "≤ 600 MB", _verdict(big.get("serving_rss_mb"), TARGETS["serving_mb"]),
         f"opened the desk, answered {rep['settings']['answers']} questions through the bot's renderer"),
        ("restart to first answer, `newsdesk ask` in a fresh process: s", *cells("restart_s", ".2f"), "≤ 0.5 s",
         _verdict(big.get("restart_s"), TARGETS["restart_s"]),
         "spawn to exit; in the serving process: " + sizes(lambda x: f"imports {_num(x.get('start_imports_s'))} s, "
                                                           f"open {_num(x.get('start_open_s'))} s")),
    ]
    m, c = rep["machine"], rep["commit"]
    end = rep.get("machine_end", m)
    uncommitted = c["uncommitted_engine_files"]
    head = (f"Measured by `python -m bench.run` on {m['date'][:10]}, commit `{c['commit']}`"
            + (f" with uncommitted {', '.join(x.split()[-1] for x in uncommitted)}" if uncommitted else "")
            + f"; {m['cpu']}, {m['cores']} cores, {m['ram_gb']:.0f} GB RAM, shared with other jobs (load average "
            f"{m['loadavg'][0]:.1f} at the start, {end['loadavg'][0]:.1f} at the end). Passages: "
            + sizes(lambda x: f"{x['passages']:,}" if "passages" in x else "?")
            + f". Medians of {rep['settings']['repeats']} where repeated. {rep.get('lucene', {}).get('skipped', '')}")
    cols = ("what", "118k", "1M", "target (issue 10)", "at 1M", "anchor or baseline, same run")
    lines = [head.strip(), "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def replace_marked(text: str, block: str) -> str:
    """text with what lies between the START and END marker lines replaced by block; the rest byte for byte."""
    head, found, rest = text.partition(START)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"README.md has no {START!r} ... {END!r} lines to write between.")
    return f"{head}{START}\n{block}\n{END}{tail}"


def print_summary(rep: dict[str, Any]) -> None:
    print()
    print(readme_table(rep))
    print()


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="shared data root (default: ../shared/data from the repo root)")
    ap.add_argument("--quick", action="store_true", help="118k only, 200 questions, 2 repeats (a few minutes)")
    ap.add_argument("--sizes", default="118k,1m", help="comma list from " + ",".join(SIZES))
    ap.add_argument("--repeats", type=int, default=3, help="adds, unchanged builds and restarts per size")
    ap.add_argument("--answers", type=int, default=200, help="questions the serving process answers")
    ap.add_argument("--answer-questions", type=int, default=500, help="questions bench/answer.py times")
    ap.add_argument("--rounds", type=int, default=5, help="top-k: times each question is asked of each engine")
    ap.add_argument("--topk-queries", type=int, default=1000, help="questions bench/topk.py times")
    ap.add_argument("--work", help="where corpora and databases go (kept); default: a temp dir, removed")
    ap.add_argument("--engine", default="HEAD", help="the commit whose index/ and bot/ are measured (from a "
                    "snapshot), or `worktree`: the checkout as it is")
    ap.add_argument("--reuse", action="store_true", help="with --work: keep a database built before (no scratch build)")
    ap.add_argument("--json", help="write every number here (default: bench/results/run.json; with --quick, a temp file)")
    ap.add_argument("--readme", action="store_true", help="rewrite README's Benchmarks table from this run")
    ap.add_argument("--from", dest="from_json", help="with --readme: take the run from this JSON instead of running")
    a = ap.parse_args(argv)

    if a.from_json:
        rep = json.loads(Path(a.from_json).read_text())
    else:
        if a.quick:
            a.sizes, a.repeats, a.answers, a.answer_questions, a.rounds, a.topk_queries = "118k", 2, 100, 200, 2, 300
        a.json = a.json or (Path(tempfile.gettempdir()) / "newsdesk-bench-run-quick.json" if a.quick
                            else REPO_ROOT / "bench" / "results" / "run.json")
        rep = measure(a)
        log(f"wrote {a.json}")
    print_summary(rep)
    if a.readme:
        README.write_text(replace_marked(README.read_text(), readme_table(rep)))
        log(f"rewrote the table in {README}")
    return 0


def measure(a: argparse.Namespace) -> dict[str, Any]:
    sizes = [s.strip().lower() for s in a.sizes.split(",") if s.strip()]
    root = a.root = data.data_root(a.data)
    paras = [p for ps in data.load_all(root).values() for p in ps]
    wanted = max(a.answers, a.topk_queries, a.repeats)
    a.question_texts = [q["q"] for q in data.sample_questions(data.load_questions(root), wanted, seed=1)]
    rep: dict[str, Any] = {"machine": machine(), "commit": commit(a.engine), "python": sys.version.split()[0],
                           "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()
                                        if k != "question_texts"}, "sizes": []}
    log(f"machine {rep['machine']}; commit {rep['commit']['commit']}"
        + (f", uncommitted: {rep['commit']['uncommitted_engine_files']}" if rep["commit"]["uncommitted_engine_files"]
           else ""))
    temp = None if a.work else tempfile.TemporaryDirectory(prefix="newsdesk-bench-")
    work = Path(a.work or temp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    global SRC
    SRC = REPO_ROOT if a.engine == "worktree" else snapshot(a.engine, work / "src")
    try:
        for size in sizes:
            try:
                rep["sizes"].append(run_size(size, paras, work, a))
            except Exception as e:     # the other size and the anchors are still worth their minutes
                log(f"{size}: FAILED: {e!r}")
                rep["sizes"].append({"size": size, "error": repr(e)})
            save(rep, a.json)
        topk_sizes = "1m" if "1m" in sizes else sizes[-1]
        log(f"bench/topk.py --sizes {topk_sizes}: ours, ours before issue 10, bm25s-numba ...")
        res = child_json([PY, "-m", "bench.topk", "--sizes", topk_sizes, "--queries", str(a.topk_queries),
                          "--rounds", str(a.rounds), "--data", str(a.root), "--json", str(work / "topk.json")],
                         work / "topk.out")
        rep["topk"] = res if "error" in res else json.loads((work / "topk.json").read_text())
        rep["lucene"] = lucene()
        log(rep["lucene"].get("skipped", "Lucene ran"))
    finally:
        if temp is not None:
            temp.cleanup()
    rep["machine_end"] = machine()
    save(rep, a.json)
    return rep


def save(rep: dict[str, Any], path: str | Path) -> None:
    """Written after every size, so that a run cut short keeps what it measured."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(rep, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
