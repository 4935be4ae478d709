"""The search cluster (2 shards x 2 replicas) against the embedded index, on one corpus, in one run.

    python -m bench.cluster                                   # 1,000,000 passages, 500 questions
    python -m bench.cluster --passages 100000 --out bench/results/cluster_100k.json

Steps, each measured program in a process of its own:

1. generate `--passages` paragraphs of made-up words in .txt articles of 20 (the generator of
   bench/loop_lag.py, copied: fixed seed, so every run writes the same corpus), and the questions: for each,
   a random passage and 3-8 of its words in random order, so every question matches the corpus;
2. embedded build: `newsdesk index build --db A --corpus C --json` under bench/peak.py (wall time, peak RSS
   of the builder by getrusage(RUSAGE_CHILDREN)); the builder's process tree (analysis workers included)
   is also sampled from /proc every 0.2 s and summed;
3. `newsdesk cluster up DIR --shards 2 --replicas 2` on free ports, then the same build with
   `--db B --search sphinx://...` (the local build plus the writes to every mirror), measured the same way;
   the searchd processes' RSS is sampled on the side (it is the cluster's memory, not the builder's);
4. the same questions through both, each in a fresh process: `Newsdesk.open(...)` and `await desk.ask(q, k=5)`
   one at a time (5 warm-up questions first), wall clock per ask; the cluster once per candidate depth in
   `--depths` (the first is the product's, index/remote.py candidate_depth); plus how often both give the same
   top passage and the same top 5, exactly and up to ties: every hit's score is recorded, so a rank holding
   another passage with the same score (a tie settled among a different candidate set) is told apart from one
   holding a lower-scored passage (the better one was not among the cluster's candidates);
5. `newsdesk cluster down DIR`, and then any searchd PID recorded at start-up still alive is killed by that PID:
   always, in `finally` (SIGTERM and SIGINT to this script end up there too).

The machine may be shared: the load average and CPU pressure are recorded at every step.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

WARMUP = 5
SAMPLE_S = 0.2

# -- the corpus (the generator of bench/loop_lag.py, itself tests/synthetic.py's, copied) -----------------

from bench.loop_lag import vocabulary  # noqa: E402  # the same made-up words, one generator


def write_articles(folder: Path, passages: int, first: int = 0, seed: int = 7, per_article: int = 20,
                   words: int = 40, prefix: str = "gen", keep: set[int] | None = None) -> tuple[int, dict[int, str]]:
    """`passages` distinct paragraphs in .txt articles of `per_article`; (bytes written, {number: paragraph}
    for the numbers in `keep`)."""
    rng = random.Random(seed)
    vocab = vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    written, kept = 0, {}  # type: tuple[int, dict[int, str]]
    for number in range(first, first + passages, per_article):
        count = min(per_article, first + passages - number)
        paragraphs = [" ".join(rng.choices(vocab, k=words)).capitalize() + f" (item {number + i})."
                      for i in range(count)]
        if keep:
            kept.update((number + i, p) for i, p in enumerate(paragraphs) if number + i in keep)
        text = f"Generated dispatch {number // per_article}\n\n" + "\n\n".join(paragraphs) + "\n"
        written += (folder / f"{prefix}_{number // per_article:07d}.txt").write_bytes(text.encode())
    return written, kept


def make_questions(passages: int, count: int, seed: int = 13) -> tuple[list[int], Any]:
    """The passages the questions come from, and a function turning those paragraphs into questions."""
    rng = random.Random(seed)
    numbers = rng.sample(range(passages), count)

    def questions(kept: dict[int, str]) -> list[str]:
        out = []
        for n in numbers:
            words = kept[n].rsplit(" (item ", 1)[0].lower().split()
            out.append(" ".join(rng.sample(words, rng.randint(3, 8))))
        return out

    return numbers, questions


# -- small helpers ------------------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _machine() -> dict[str, Any]:
    """Load average and CPU pressure now (the machine may be shared)."""
    out: dict[str, Any] = {"loadavg": list(os.getloadavg()), "t": time.time()}
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        out["cpu_pressure_some_avg10"] = float(some[1].split("=")[1])
        out["cpu_pressure_some_total_us"] = int(some[4].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return out


def _pressure_share(start: dict[str, Any], end: dict[str, Any]) -> float | None:
    """Share of the wall time in which some runnable task waited for a CPU, between two _machine() reads."""
    if "cpu_pressure_some_total_us" not in start or "cpu_pressure_some_total_us" not in end:
        return None
    wall = end["t"] - start["t"]
    return (end["cpu_pressure_some_total_us"] - start["cpu_pressure_some_total_us"]) / 1e6 / wall if wall > 0 else None


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return out


class _Sampler:
    """Peak of the summed RSS of some processes, read from /proc every SAMPLE_S in a thread."""

    def __init__(self, pids: Any) -> None:
        self._pids = pids          # a callable returning the PIDs to sum now
        self.peak_kb = 0
        self.last_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last_kb = sum(_rss_kb(p) for p in self._pids())
            self.peak_kb = max(self.peak_kb, self.last_kb)
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class _ChunkWatch:
    """When each node's RT index gains a disk chunk (its RAM chunk reached rt_mem_limit and was saved), every 1 s."""

    def __init__(self, cluster_dir: Path | None) -> None:
        self._dir = cluster_dir
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.perf_counter()

    def _chunks(self, node: Path) -> int:
        return len({f.name.split(".")[1] for f in (node / "data").glob("news.*.sp*") if f.name.split(".")[1].isdigit()})

    def _run(self) -> None:
        seen: dict[str, int] = {}
        while not self._stop.wait(1.0):
            for node in sorted(self._dir.iterdir()) if self._dir else []:
                if (node / "data").is_dir():
                    n = self._chunks(node)
                    if n != seen.get(node.name, 0):
                        seen[node.name] = n
                        self.events.append({"t_s": round(time.perf_counter() - self._t0, 1), "node": node.name,
                                            "disk_chunks": n})

    def __enter__(self) -> "_ChunkWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class BuildFailed(RuntimeError):
    def __init__(self, message: str, measured: dict[str, Any]) -> None:
        super().__init__(message)
        self.measured = measured


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "index.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NEWSDESK_SEARCH", "NEWSDESK_DB", "NEWSDESK_CORPUS"):
        env.pop(name, None)
    return env


# -- measured steps -----------------------------------------------------------------------------------

def measured_build(label: str, work: Path, cmd: list[str], side_pids: Any = None,
                   cluster_dir: Path | None = None) -> dict[str, Any]:
    """Run one build command under bench/peak.py; wall, peak RSS (getrusage and the sampled tree), report."""
    peak_json, report_json = work / f"{label}.peak.json", work / f"{label}.report.json"
    before = _machine()
    with open(report_json, "wb") as out, open(work / f"{label}.stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "bench" / "peak.py"), str(peak_json), "--", *cmd],
                                cwd=REPO_ROOT, stdout=out, stderr=err, env=_env())
        try:
            t0 = time.perf_counter()
            with _Sampler(lambda: _descendants(proc.pid)) as tree, _Sampler(side_pids or (lambda: [])) as side, \
                    _ChunkWatch(cluster_dir) as chunks:
                rc = proc.wait()
            wall = time.perf_counter() - t0
        except BaseException:               # interrupted: stop the build we started, by its PIDs
            for pid in reversed(_descendants(proc.pid)):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            proc.wait()
            raise
    after = _machine()
    if rc != 0:
        tail = (work / f"{label}.stderr.txt").read_text(errors="replace").strip().splitlines()[-5:]
        raise BuildFailed(f"{label} build failed (exit {rc}) after {wall:.0f} s: " + " / ".join(tail),
                          {"failed_after_s": wall, "exit": rc, "stderr_tail": tail, "disk_chunk_events": chunks.events,
                           "peak_rss_tree_sampled_mb": tree.peak_kb / 1024, "side_peak_rss_mb": side.peak_kb / 1024,
                           "machine_before": before, "machine_after": after})
    peak = json.loads(peak_json.read_text())
    report = json.loads(report_json.read_text())
    return {"wall_s": peak["wall_s"], "peak_rss_mb": peak["maxrss_kb"] / 1024, "wrapper_floor_mb": peak["floor_kb"] / 1024,
            "peak_rss_tree_sampled_mb": tree.peak_kb / 1024, "user_s": peak["user_s"], "sys_s": peak["sys_s"],
            "side_peak_rss_mb": side.peak_kb / 1024 if side_pids else None,
            "side_rss_at_end_mb": side.last_kb / 1024 if side_pids else None,
            "disk_chunk_events": chunks.events, "report": report, "machine_before": before, "machine_after": after,
            "cpu_pressure_share": _pressure_share(before, after)}


def measured_queries(label: str, work: Path, db: Path, corpus: Path, search: str, questions: Path,
                     depth: int | None = None) -> dict[str, Any]:
    result = work / f"{label}.queries.json"
    before = _machine()
    subprocess.run([sys.executable, "-m", "bench.cluster", "--child-queries", "--db", str(db), "--corpus", str(corpus),
                    "--search", search, "--questions", str(questions), "--result", str(result)]
                   + (["--depth", str(depth)] if depth else []), cwd=REPO_ROOT, check=True, env=_env())
    after = _machine()
    out = json.loads(result.read_text())
    out.update(machine_before=before, machine_after=after, cpu_pressure_share=_pressure_share(before, after))
    return out


async def _ask_all(db: Path, corpus: Path, search: str, questions: list[str], k: int,
                   depth: int | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    from index.config import Settings
    from index.desk import Newsdesk

    imported = time.perf_counter()
    desk = await Newsdesk.open(Settings(db, corpus, search), build_if_missing=False)
    opened = time.perf_counter()
    if depth is not None:
        from index.remote import ClusterSearcher

        searcher = desk._loaded()[0]
        assert isinstance(searcher, ClusterSearcher), "--depth is the cluster's candidate depth"
        searcher.depth = depth
    rss_open = _rss_kb(os.getpid()) / 1024
    seconds, tops, top5, scores, abstained, partial = [], [], [], [], 0, 0
    async with desk:
        for i, q in enumerate(questions):
            started = time.perf_counter()
            answer = await desk.ask(q, k=k)
            took = time.perf_counter() - started
            if i < WARMUP:
                continue
            hits = answer.search.hits
            seconds.append(took)
            tops.append(hits[0].passage_id if hits else None)
            top5.append([h.passage_id for h in hits[:k]])
            scores.append([h.score for h in hits[:k]])
            abstained += answer.abstained is not None
            partial += bool(answer.search.partial_shards)
    ms = [s * 1000 for s in seconds]
    return {"search": search, "depth": depth, "import_s": imported - t0, "open_s": opened - imported,
            "rss_after_open_mb": rss_open,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "questions": len(ms), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95), "p99_ms": _pct(ms, 99),
            "max_ms": max(ms), "mean_ms": statistics.fmean(ms), "abstained": abstained, "partial": partial,
            "top": tops, "top5": top5, "scores": scores, "ms": ms}


# Two scores are the same when they differ only in the last bits: the cluster's re-scoring sums the same
# terms in another order than the embedded MaxScore loop.
SCORE_TOLERANCE = 1e-9


def _same_score(a: float, b: float) -> bool:
    return abs(a - b) <= SCORE_TOLERANCE * max(1.0, abs(a), abs(b))


def agreement(emb: dict[str, Any], clu: dict[str, Any]) -> dict[str, Any]:
    """How often the cluster's top 5 is the embedded one: exactly, and up to ties (the same score at every
    rank, passages that differ being tied with the embedded ones). A differing list is classed at its first
    rank whose score differs: `cluster_lower` means a better passage was not among the cluster's candidates."""
    out: dict[str, Any] = {"questions": len(emb["top"]),
                           "same_top": sum(a == b for a, b in zip(emb["top"], clu["top"])),
                           "same_top5": sum(a == b for a, b in zip(emb["top5"], clu["top5"]))}
    if "scores" not in emb or "scores" not in clu:
        return out                          # a run from before scores were recorded
    same_top_tied = same_tied = lower = higher = 0
    worst = 0.0                             # the largest score difference of one passage between the two paths
    for ids_e, ids_c, sc_e, sc_c in zip(emb["top5"], clu["top5"], emb["scores"], clu["scores"]):
        for pid, score in zip(ids_c, sc_c):
            if pid in ids_e:
                worst = max(worst, abs(score - sc_e[ids_e.index(pid)]))
        same_top_tied += bool(sc_e and sc_c and _same_score(sc_e[0], sc_c[0]))
        if len(sc_e) == len(sc_c) and all(_same_score(a, b) for a, b in zip(sc_e, sc_c)):
            same_tied += 1
            continue
        first = next((i for i, (a, b) in enumerate(zip(sc_e, sc_c)) if not _same_score(a, b)), None)
        if first is None or sc_c[first] < sc_e[first]:
            lower += 1
        else:
            higher += 1
    out.update(same_top_up_to_ties=same_top_tied, same_top5_up_to_ties=same_tied, cluster_lower=lower,
               cluster_higher=higher, max_score_difference_same_passage=worst)
    return out


# -- the cluster ------------------------------------------------------------------------------------

def _searchd_pids(cluster_dir: Path) -> list[int]:
    """Every searchd server PID of the cluster (from its pid_file) and its watchdog (the server's parent)."""
    pids = []
    for pid_file in sorted(cluster_dir.glob("*/searchd.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            if Path(f"/proc/{ppid}/comm").read_text().strip() == "searchd":
                pids.append(ppid)
        except (OSError, ValueError, IndexError):
            pass
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cluster_down(cluster_dir: Path, pids: list[int]) -> dict[str, Any]:
    """`newsdesk cluster down DIR`, then SIGKILL, by PID, to any recorded searchd still alive."""
    done = subprocess.run(_cli("cluster", "down", str(cluster_dir)), cwd=REPO_ROOT, capture_output=True, text=True,
                          env=_env(), timeout=60)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = []
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return {"down": done.stdout.strip() or done.stderr.strip(), "killed_after": killed,
            "alive_after": [p for p in pids if _alive(p)]}


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- the run ------------------------------------------------------------------------------------------

def _engine_digest() -> str:
    h = hashlib.sha256()
    for path in sorted((REPO_ROOT / "index").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def _git() -> dict[str, Any]:
    def run(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()

    return {"head": run("rev-parse", "--short", "HEAD"),
            "index_dirty": bool(run("status", "--porcelain", "--", "index"))}


def _stop_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)          # so that `finally` stops the cluster


def _searchd_log(cluster_dir: Path, keep: int = 60) -> dict[str, list[str]]:
    """Each node's searchd.log: its RT flushes (RAM chunk saved to disk), warnings and errors, the last `keep`."""
    out = {}
    for log in sorted(cluster_dir.glob("*/searchd.log")):
        lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines()
                 if any(w in line for w in ("rt:", "WARNING", "FATAL", "ERROR", "crash", "exited", "restart"))]
        out[log.parent.name] = lines[-keep:]
    return out


def run(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _stop_on_signal)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    work = Path(tempfile.mkdtemp(prefix=f"bench-cluster-{args.passages}-", dir=args.tmp))
    corpus, db_a, db_b, cluster_dir = work / "corpus", work / "embedded.db", work / "cluster.db", work / "cluster"
    out.update({"meta": {"started": started, "passages": args.passages, "queries": args.queries, "k": args.k,
                         "depths": args.depths,
                         "shards": 2, "replicas": 2, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                         "index_sha256_12": _engine_digest(), **_git(), "work": str(work),
                         "searchd": shutil.which("searchd")},
                "machine_start": _machine()})
    pids: list[int] = []
    try:
        t0 = time.perf_counter()
        numbers, to_questions = make_questions(args.passages, args.queries + WARMUP)
        size, kept = write_articles(corpus, args.passages, keep=set(numbers))
        questions = to_questions(kept)
        (work / "questions.json").write_text(json.dumps(questions))
        out["generate"] = {"seconds": time.perf_counter() - t0, "corpus_mb": size / 2**20,
                           "question_words": statistics.fmean(len(q.split()) for q in questions)}
        print(f"[{args.passages:,}] generated {size / 2**20:.0f} MiB and {len(questions)} questions in "
              f"{out['generate']['seconds']:.1f} s; load {os.getloadavg()[0]:.2f}", flush=True)

        out["embedded_build"] = measured_build("embedded", work, _cli("index", "build", "--db", str(db_a),
                                                                        "--corpus", str(corpus), "--json"))
        out["embedded_build"]["db_mb"] = sum(p.stat().st_size for p in work.glob("embedded.db*")) / 2**20
        b = out["embedded_build"]
        print(f"[{args.passages:,}] embedded build: {b['report']['passages']:,} passages, {b['wall_s']:.1f} s, "
              f"peak {b['peak_rss_mb']:.0f} MB (tree {b['peak_rss_tree_sampled_mb']:.0f} MB); "
              f"load {os.getloadavg()[0]:.2f}", flush=True)

        up = subprocess.run(_cli("cluster", "up", str(cluster_dir), "--shards", "2", "--replicas", "2"),
                            cwd=REPO_ROOT, capture_output=True, text=True, env=_env(), timeout=120)
        pids = _searchd_pids(cluster_dir)
        if up.returncode != 0:
            raise RuntimeError(f"cluster up failed: {up.stderr.strip() or up.stdout.strip()}")
        url = next(line.split("=", 1)[1] for line in up.stdout.splitlines() if line.startswith("NEWSDESK_SEARCH="))
        out["meta"]["search_url"] = url
        out["meta"]["searchd_pids"] = pids
        servers = [int(p.read_text()) for p in sorted(cluster_dir.glob("*/searchd.pid"))]
        print(f"[{args.passages:,}] cluster up at {url} (searchd PIDs {pids})", flush=True)

        try:
            out["cluster_build"] = measured_build("cluster", work, _cli("index", "build", "--db", str(db_b), "--corpus",
                                                                          str(corpus), "--search", url, "--json"),
                                                  side_pids=lambda: servers, cluster_dir=cluster_dir)
        except BuildFailed as e:
            out["cluster_build_failed"] = e.measured
            out["cluster_status_at_failure"] = subprocess.run(
                _cli("cluster", "status", str(cluster_dir)), cwd=REPO_ROOT, capture_output=True, text=True,
                env=_env(), timeout=120).stdout.splitlines()
            raise
        status = subprocess.run(_cli("cluster", "status", str(cluster_dir), "--json"), cwd=REPO_ROOT,
                                capture_output=True, text=True, env=_env(), timeout=120)
        c = out["cluster_build"]
        c["nodes"] = json.loads(status.stdout) if status.returncode == 0 else status.stderr.strip()
        c["cluster_data_mb"] = _dir_mb(cluster_dir)
        c["searchd_rss_mb"] = {f.parent.name: _rss_kb(int(f.read_text())) / 1024
                               for f in sorted(cluster_dir.glob("*/searchd.pid"))}
        print(f"[{args.passages:,}] cluster build: {c['wall_s']:.1f} s, peak {c['peak_rss_mb']:.0f} MB (tree "
              f"{c['peak_rss_tree_sampled_mb']:.0f} MB); searchd total {c['side_peak_rss_mb']:.0f} MB; "
              f"rows {[n.get('rows') for n in c['nodes']] if isinstance(c['nodes'], list) else c['nodes']}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)

        qfile = work / "questions.json"
        out["embedded_queries"] = measured_queries("embedded", work, db_a, corpus, "embedded", qfile)
        print(f"[{args.passages:,}] embedded queries: p50 {out['embedded_queries']['p50_ms']:.1f} ms, p95 "
              f"{out['embedded_queries']['p95_ms']:.1f} ms; load {os.getloadavg()[0]:.2f}", flush=True)
        out["cluster_depths"] = {}
        from index.remote import candidate_depth

        for depth in args.depths or [candidate_depth(args.passages)]:
            queries = measured_queries(f"cluster_d{depth}", work, db_b, corpus, url, qfile, depth)
            agreed = agreement(out["embedded_queries"], queries)
            out["cluster_depths"][str(depth)] = {"agreement": agreed, **{key: queries[key] for key in (
                "p50_ms", "p95_ms", "max_ms", "partial", "abstained")}}
            if "cluster_queries" not in out:
                out["cluster_queries"], out["agreement"] = queries, agreed
                out["searchd_rss_after_queries_mb"] = sum(_rss_kb(p) for p in servers) / 1024
            print(f"[{args.passages:,}] cluster queries at depth {depth}: p50 {queries['p50_ms']:.1f} ms, p95 "
                  f"{queries['p95_ms']:.1f} ms; same top 5 {agreed['same_top5']}, up to ties "
                  f"{agreed.get('same_top5_up_to_ties')}, a better passage missed {agreed.get('cluster_lower')} "
                  f"/ {agreed['questions']}; load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        if cluster_dir.exists():
            pids = sorted(set(pids) | set(_searchd_pids(cluster_dir)))
            out["cluster_down"] = cluster_down(cluster_dir, pids)
            print(f"cluster down: {out['cluster_down']['down']}"
                  + (f"; killed by PID: {out['cluster_down']['killed_after']}" if out['cluster_down']['killed_after'] else ""),
                  flush=True)
            out["searchd_log"] = _searchd_log(cluster_dir)
        out["machine_end"] = _machine()
        if args.keep_tmp:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _f(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _x(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}x"


def table(r: dict[str, Any]) -> str:
    eb, cb, eq, cq, ag = r["embedded_build"], r["cluster_build"], r["embedded_queries"], r["cluster_queries"], r["agreement"]
    rows = [
        ("build wall (s)", _f(eb["wall_s"]), _f(cb["wall_s"]), _x(cb["wall_s"], eb["wall_s"])),
        ("  of which the local build (the report's seconds) / the rest (s)",
         _f(eb["report"]["seconds"]), f"{_f(cb['report']['seconds'])} / {_f(cb['wall_s'] - cb['report']['seconds'])}", ""),
        ("builder peak RSS, getrusage (MB)", _f(eb["peak_rss_mb"], 0), _f(cb["peak_rss_mb"], 0),
         _x(cb["peak_rss_mb"], eb["peak_rss_mb"])),
        ("builder peak RSS, process tree sampled (MB)", _f(eb["peak_rss_tree_sampled_mb"], 0),
         _f(cb["peak_rss_tree_sampled_mb"], 0), _x(cb["peak_rss_tree_sampled_mb"], eb["peak_rss_tree_sampled_mb"])),
        ("searchd RSS, 5 processes: peak during build / after queries (MB)", "–",
         f"{_f(cb['side_peak_rss_mb'], 0)} / {_f(r['searchd_rss_after_queries_mb'], 0)}", ""),
        ("index on disk: SQLite / cluster data (MB)", _f(eb["db_mb"], 0), _f(cb["cluster_data_mb"], 0), ""),
        ("query p50 (ms)", _f(eq["p50_ms"], 2), _f(cq["p50_ms"], 2), _x(cq["p50_ms"], eq["p50_ms"])),
        ("query p95 (ms)", _f(eq["p95_ms"], 2), _f(cq["p95_ms"], 2), _x(cq["p95_ms"], eq["p95_ms"])),
        ("query max (ms)", _f(eq["max_ms"], 1), _f(cq["max_ms"], 1), _x(cq["max_ms"], eq["max_ms"])),
        ("reader: open (s) / RSS after open (MB)", f"{_f(eq['open_s'], 2)} / {_f(eq['rss_after_open_mb'], 0)}",
         f"{_f(cq['open_s'], 2)} / {_f(cq['rss_after_open_mb'], 0)}", ""),
        ("abstained / partial answers", f"{eq['abstained']} / {eq['partial']}", f"{cq['abstained']} / {cq['partial']}", ""),
        ("same top passage as embedded", "", f"{ag['same_top']} / {ag['questions']}", f"{ag['same_top'] / ag['questions']:.1%}"),
        ("same top 5 (in order) as embedded", "", f"{ag['same_top5']} / {ag['questions']}", f"{ag['same_top5'] / ag['questions']:.1%}"),
    ]
    if "same_top5_up_to_ties" in ag:
        rows.append(("same top 5 up to ties (the same score at every rank)", "",
                     f"{ag['same_top5_up_to_ties']} / {ag['questions']}", f"{ag['same_top5_up_to_ties'] / ag['questions']:.1%}"))
    for depth, d in list(r.get("cluster_depths", {}).items())[1:]:
        a = d["agreement"]
        rows.append((f"at depth {depth}: p50 / p95 (ms); same top 5, up to ties", "",
                     f"{_f(d['p50_ms'], 2)} / {_f(d['p95_ms'], 2)}; {a['same_top5']}, {a.get('same_top5_up_to_ties', '–')} "
                     f"/ {a['questions']}", ""))
    rows += [
        ("load average (1 min), build / queries", f"{eb['machine_after']['loadavg'][0]:.2f} / {eq['machine_after']['loadavg'][0]:.2f}",
         f"{cb['machine_after']['loadavg'][0]:.2f} / {cq['machine_after']['loadavg'][0]:.2f}", ""),
        ("CPU pressure (share of time a task waited), build / queries",
         f"{_f(100 * (eb['cpu_pressure_share'] or 0), 0)} % / {_f(100 * (eq['cpu_pressure_share'] or 0), 0)} %",
         f"{_f(100 * (cb['cpu_pressure_share'] or 0), 0)} % / {_f(100 * (cq['cpu_pressure_share'] or 0), 0)} %", ""),
    ]
    lines = [f"| {r['meta']['passages']:,} passages, {eq['questions']} questions, k={r['meta']['k']} | embedded | "
             f"cluster 2 x 2 | cluster / embedded |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500, help="timed questions (after 5 warm-up ones)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--depths", type=lambda v: [int(d) for d in v.split(",")], default=None,
                    help="candidate depths the cluster is asked at, comma-separated; the first is reported in the "
                         "main rows (default: the product's, index/remote.py candidate_depth)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "cluster.json")
    ap.add_argument("--tmp", type=Path, default=None, help="where the corpus, databases and cluster go (default $TMPDIR)")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--table", type=Path, metavar="JSON", help="print the table of an earlier run's JSON and exit")
    ap.add_argument("--child-queries", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--search", help=argparse.SUPPRESS)
    ap.add_argument("--questions", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_queries:
        questions = json.loads(args.questions.read_text())
        measured = asyncio.run(_ask_all(args.db, args.corpus, args.search, questions, args.k, args.depth))
        args.result.write_text(json.dumps(measured))
        return 0

    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if shutil.which("searchd") is None:
        print("searchd is not installed (apt-get install sphinxsearch); nothing to compare.", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    try:
        run(args, result)
    except BaseException as e:
        result["error"] = f"{type(e).__name__}: {e}"
        args.out.write_text(json.dumps(result, indent=1))
        print(f"\nFailed: {result['error']}\nWhat was measured, and the searchd logs' flushes and warnings: {args.out}",
              file=sys.stderr)
        raise
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nSearch cluster (2 shards x 2 replicas, Sphinx) against the embedded index; run of "
          f"{result['meta']['started']}, {os.cpu_count()} CPUs, index/*.py {result['meta']['index_sha256_12']}"
          f"{' (uncommitted changes in index/)' if result['meta']['index_dirty'] else ''}\n")
    print(table(result))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
