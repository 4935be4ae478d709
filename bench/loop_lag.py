"""How long the event loop stalls while the engine rebuilds, at 200k and 1M passages.

    python -m bench.loop_lag                                   # 200k and 1M: 13-18 min on 2 cores
    python -m bench.loop_lag --sizes 200000                    # one size
    python -m bench.loop_lag --sizes 200000 1000000 --out bench/results/loop_lag.json

For each size, every step in a fresh process of its own, so that peaks and heaps never mix:

1. generate a corpus of `size - new` passages (made-up words in .txt articles of 20 paragraphs, the
   shape of tests/synthetic.py, copied here: deterministic) and build a base index of it with the engine
   (index.build.rebuild) in a child process;
2. write `new` more passages as new articles (5 % of the size, at least 20,000, so that analysis takes
   its parallel path), in this parent process, before the measuring child starts;
3. in one asyncio child: `Newsdesk.open(Settings(db, corpus))`, then a heartbeat task (5 ms sleeps; the
   lag is how late each wake-up comes) and an asker (`desk.ask(...)` with 50 ms between answers) run for
   a baseline of a few seconds, then through `await desk.rebuild()`, then a few seconds after it.

Numbers are compared within one run only (style.md §3, item 15): lag during the rebuild against the
baseline, ask latency during against before. Every heartbeat also re-arms
`faulthandler.dump_traceback_later(0.1)`, so a stall of more than 100 ms dumps the stacks of all threads
into the stall log (default bench/results/loop_lag_stalls.txt, one dump per 100 ms of stall); each stall
is then summarised by the top frame under index/ of the build thread. The build's progress callback
stamps its stages, so every lag is also attributed to the stage that was running.

Whose fault is a stall: over every beat the heartbeat also reads the scheduler counters of the loop thread
and of the build thread (/proc/self/task/<tid>/schedstat). A loop thread that was runnable but had no
CPU for most of a long lag was starved by the machine (other processes, the analysis workers), not held
by the GIL; a loop thread asleep while the build thread ran was waiting for the GIL. CPU steal and
/proc/pressure/cpu are reported per phase for the same reason: the machine may be shared.

Memory: peak RSS of the measuring process (getrusage, VmHWM) and of its process tree (itself plus the
analysis workers), sampled from /proc every 0.2 s; a worker's own VmHWM is read while it lives.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import hashlib
import json
import linecache
import os
import random
import re
import resource
import shutil
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

INDEX_DIR = str(REPO_ROOT / "index") + os.sep
HEARTBEAT_S = 0.005
STALL_MS = 50.0

# -- the corpus (the generator of tests/synthetic.py, which bench/ must not import) ---------------------

_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze", "bar", "den", "fol", "gun", "hal", "jim")


def vocabulary(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(6000)})


def write_articles(folder: Path, passages: int, first: int = 0, seed: int = 7, per_article: int = 20,
                   words: int = 40, prefix: str = "gen") -> int:
    """`passages` distinct paragraphs (numbered from `first`) in .txt articles of `per_article`; returns bytes."""
    rng = random.Random(seed)
    vocab = vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for number in range(first, first + passages, per_article):
        count = min(per_article, first + passages - number)
        paragraphs = [" ".join(rng.choices(vocab, k=words)).capitalize() + f" (item {number + i})."
                      for i in range(count)]
        text = f"Generated dispatch {number // per_article}\n\n" + "\n\n".join(paragraphs) + "\n"
        written += (folder / f"{prefix}_{number // per_article:07d}.txt").write_bytes(text.encode())
    return written


def question_words(count: int = 3, seed: int = 11) -> list[str]:
    return random.Random(seed).sample(vocabulary(), count)


# -- small helpers ------------------------------------------------------------------------------------

def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _summary_ms(values_s: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {"count": len(ms), "p50": _pct(ms, 50), "p95": _pct(ms, 95), "p99": _pct(ms, 99),
            "max": max(ms) if ms else None, "mean": statistics.fmean(ms) if ms else None,
            "over_20ms": sum(v > 20 for v in ms), "over_50ms": sum(v > 50 for v in ms),
            "over_100ms": sum(v > 100 for v in ms)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _status_kb(pid: int | str) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) for a process that is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class SchedStat:
    """A thread's scheduler counters from /proc: time on a CPU and time runnable but waiting for one (ns)."""

    def __init__(self, native_id: int) -> None:
        self.fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)

    def read(self) -> tuple[int, int]:
        try:
            run, wait, _ = os.pread(self.fd, 128, 0).split()
        except (OSError, ValueError):          # the thread ended
            return 0, 0
        return int(run), int(wait)


def _steal_and_pressure() -> tuple[float, float]:
    """(CPU steal of the machine in CPU-seconds, time some task waited for a CPU in s: /proc/pressure/cpu)."""
    steal = pressure = 0.0
    try:
        with open("/proc/stat") as fh:
            steal = int(fh.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/pressure/cpu") as fh:
            pressure = int(fh.readline().rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        pass
    return steal, pressure


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class MemorySampler(threading.Thread):
    """RSS of this process and of its descendants, every `period` s, from /proc."""

    def __init__(self, period: float = 0.2) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.period = period
        self.stop = threading.Event()
        self.tree_peak_kb = 0
        self.tree_peak_at = 0.0
        self.children_hwm_kb: dict[int, int] = {}
        self.children_peak = 0

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(self.period):
            rss, _ = _status_kb(me)
            kids = _descendants(me)
            total = rss
            for pid in kids:
                kid_rss, kid_hwm = _status_kb(pid)
                total += kid_rss
                self.children_hwm_kb[pid] = max(self.children_hwm_kb.get(pid, 0), kid_hwm)
            self.children_peak = max(self.children_peak, len(kids))
            if total > self.tree_peak_kb:
                self.tree_peak_kb, self.tree_peak_at = total, time.perf_counter()


# -- stall dumps ---------------------------------------------------------------------------------------

_THREAD = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-f]+) \(most recent call first\):", re.M)
_FRAME = re.compile(r'^  File "(.*)", line (\d+) in (.+)$', re.M)


def _frames(block: str) -> list[tuple[str, int, str]]:
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in _FRAME.finditer(block)]


def _where(frame: tuple[str, int, str] | None) -> str | None:
    if frame is None:
        return None
    path, line, func = frame
    short = os.path.relpath(path, REPO_ROOT) if path.startswith(str(REPO_ROOT)) else path.rsplit("/site-packages/", 1)[-1]
    return f"{short}:{line} {func}"


def _source(frame: tuple[str, int, str] | None) -> str:
    return linecache.getline(frame[0], frame[1]).strip() if frame else ""


def parse_dumps(text: str, main_ident: int, names: dict[int, str]) -> list[dict[str, Any]]:
    """One entry per faulthandler dump: each thread's top frame and top frame under index/."""
    samples = []
    for dump in text.split("Timeout (")[1:]:
        heads = list(_THREAD.finditer(dump))
        threads = []
        for i, head in enumerate(heads):
            block = dump[head.end():heads[i + 1].start() if i + 1 < len(heads) else len(dump)]
            frames = _frames(block)
            ident = int(head.group(1), 16)
            in_index = [f for f in frames if f[0].startswith(INDEX_DIR)]
            role = ("loop" if ident == main_ident else
                    "build" if any(f[0].endswith("index/build.py") and f[2] == "rebuild" for f in frames) else
                    names.get(ident, "other"))
            threads.append({"role": role, "top": _where(frames[0] if frames else None),
                            "top_index": _where(in_index[0] if in_index else None),
                            "top_index_line": _source(in_index[0] if in_index else None),
                            "top_line": _source(frames[0] if frames else None)})
        samples.append({"threads": threads})
    return samples


# -- the measuring child -------------------------------------------------------------------------------

async def measure(db: Path, corpus: Path, label: str, baseline_s: float, after_s: float, ask_every: float,
                  stall_log: Path, dump_after: float) -> dict[str, Any]:
    started_import = time.perf_counter()
    from index.config import Settings
    from index.desk import Newsdesk

    imported = time.perf_counter()
    desk = await Newsdesk.open(Settings(db, corpus), build_if_missing=False)
    opened = time.perf_counter()
    if desk.build is None or desk.build.corpus != str(corpus.resolve()):
        raise SystemExit(f"the base index does not hold {corpus}: the rebuild would not be incremental")
    before_build = desk.build
    rss_after_open = _status_kb(os.getpid())[0]
    question = "What did the dispatch say about {} and {} near {}?".format(*question_words())
    first = await desk.ask(question)
    if not first.results:
        raise SystemExit(f"the question {question!r} finds nothing: pick other words")

    sampler = MemorySampler()
    sampler.start()
    log = open(stall_log, "a", encoding="utf-8")
    log.write(f"\n===== {label}: {before_build.passages:,} passages before the rebuild; question {question!r}\n")
    log.flush()
    known_size = os.fstat(log.fileno()).st_size
    main_ident = threading.main_thread().ident or 0
    stalls: list[dict[str, Any]] = []
    # (wake time, lag, then in ms over the beat: loop thread runnable-but-waiting, loop on CPU, build thread on CPU)
    beats: list[tuple[float, float, float, float, float]] = []
    asks: list[tuple[float, float, int]] = []   # (start, end, results)
    stages: list[tuple[float, str]] = []
    build_thread: list[int] = []
    errors: list[str] = []
    stop = asyncio.Event()

    def progress(stage: str, done: int, total: int) -> None:     # the build thread: record only
        if not stages or stages[-1][1] != stage:
            stages.append((time.perf_counter(), stage))
        if not build_thread:
            build_thread.append(threading.get_native_id())

    def stage_at(t: float) -> str:
        if t >= rebuild_ended:
            return "after rebuild() returned"
        current = "before"
        for at, stage in stages:
            if at > t:
                break
            current = stage
        return current

    async def heartbeat() -> None:
        nonlocal known_size
        loop_thread = SchedStat(threading.get_native_id())
        build: SchedStat | None = None
        while not stop.is_set():
            if build is None and build_thread:
                build = SchedStat(build_thread[0])
            run0, wait0 = loop_thread.read()
            build0 = build.read()[0] if build else 0
            if dump_after > 0:
                faulthandler.dump_traceback_later(dump_after, repeat=True, file=log)
            went = time.perf_counter()
            await asyncio.sleep(HEARTBEAT_S)
            woke = time.perf_counter()
            if dump_after > 0:
                faulthandler.cancel_dump_traceback_later()      # waits for a dump being written to end
            run1, wait1 = loop_thread.read()
            build1 = build.read()[0] if build else 0
            lag = woke - went - HEARTBEAT_S
            beats.append((woke, lag, (wait1 - wait0) / 1e6, (run1 - run0) / 1e6, max(0, build1 - build0) / 1e6))
            if dump_after > 0:
                size = os.fstat(log.fileno()).st_size
                if size != known_size:      # a dump was written during this stall
                    stalls.append({"offset": known_size, "end": size, "woke": woke, "lag_ms": lag * 1000,
                                   "loop_runnable_ms": beats[-1][2], "build_on_cpu_ms": beats[-1][4]})
                    log.write(f"----- {label}: the dump(s) above: a stall of {lag * 1000:.0f} ms, "
                              f"t = {woke - rebuild_started:+.2f} s from the rebuild's start, "
                              f"stage {stage_at(woke - lag)!r}\n\n")
                    log.flush()
                    known_size = os.fstat(log.fileno()).st_size
        faulthandler.cancel_dump_traceback_later()

    async def asker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                answer = await desk.ask(question)
                found = len(answer.results)
            except Exception as e:      # reported, never fatal: an ask failing mid-swap is a finding
                errors.append(f"{type(e).__name__}: {e}")
                found = -1
            asks.append((t0, time.perf_counter(), found))
            await asyncio.sleep(ask_every)

    rebuild_started = rebuild_ended = float("inf")
    load_start = os.getloadavg()
    cpu_marks = [_steal_and_pressure()]
    tasks = [asyncio.create_task(heartbeat()), asyncio.create_task(asker())]
    base0 = time.perf_counter()
    await asyncio.sleep(baseline_s)
    rebuild_started = time.perf_counter()
    cpu_marks.append(_steal_and_pressure())
    report = await desk.rebuild(progress)
    rebuild_ended = time.perf_counter()
    cpu_marks.append(_steal_and_pressure())
    await asyncio.sleep(after_s)
    after_end = time.perf_counter()
    cpu_marks.append(_steal_and_pressure())
    stop.set()
    await asyncio.gather(*tasks)
    load_end = os.getloadavg()
    sampler.stop.set()
    sampler.join()
    log.close()
    after_build = desk.build
    await desk.close()

    phases = {"baseline": (base0, rebuild_started), "rebuild": (rebuild_started, rebuild_ended),
              "after": (rebuild_ended, after_end)}
    out: dict[str, Any] = {"label": label, "question": question}
    for i, (name, (a, b)) in enumerate(phases.items()):
        lags = [lag for woke, lag, *_ in beats if a <= woke - lag < b]
        answered = [(t0, t1, n) for t0, t1, n in asks if a <= t0 < b]
        out[name] = {"seconds": b - a, "heartbeat_lag_ms": _summary_ms(lags),
                     "ask_ms": _summary_ms([t1 - t0 for t0, t1, _ in answered]),
                     "answers_per_s": len(answered) / (b - a) if b > a else None,
                     "asks_without_results": sum(n == 0 for *_, n in answered),
                     "steal_cpu_s": cpu_marks[i + 1][0] - cpu_marks[i][0],
                     "cpu_pressure_some_share": (cpu_marks[i + 1][1] - cpu_marks[i][1]) / (b - a) if b > a else None}
    # The build's stages: how long each ran and what the loop suffered meanwhile.
    marks = [(rebuild_started, "starting")] + [(t, s) for t, s in stages] + [(rebuild_ended, "end")]
    if stages and stages[-1][1] == "done":
        marks[-2] = (stages[-1][0], "swap (after the build thread)")
    out["stages"] = []
    for (a, stage), (b, _) in zip(marks, marks[1:]):
        lags = [lag * 1000 for woke, lag, *_ in beats if a <= woke - lag < b]
        out["stages"].append({"stage": stage, "start_s": a - rebuild_started, "seconds": b - a, "beats": len(lags),
                              "max_lag_ms": max(lags) if lags else None,
                              "over_50ms": sum(v > STALL_MS for v in lags)})
    # Over each long lag: was the loop thread runnable but without a CPU (the machine is overloaded), or
    # asleep waiting for the GIL while the build thread ran (the engine held the GIL)?
    out["long_lags"] = [{"t_s": woke - lag - rebuild_started, "lag_ms": lag * 1000, "stage": stage_at(woke - lag),
                         "loop_runnable_ms": waited, "loop_on_cpu_ms": ran, "build_on_cpu_ms": built}
                        for woke, lag, waited, ran, built in beats if lag * 1000 > STALL_MS]
    # The dumps, parsed: one entry per stall longer than the dump threshold.
    text = stall_log.read_bytes()
    names = {t.ident or 0: t.name for t in threading.enumerate()}
    for stall in stalls:
        stall["samples"] = parse_dumps(text[stall.pop("offset"):stall.pop("end")].decode(errors="replace"),
                                       main_ident, names)
        stall["t_s"] = stall["woke"] - stall["lag_ms"] / 1000 - rebuild_started
        stall["stage"] = stage_at(stall.pop("woke") - stall["lag_ms"] / 1000)
    out["stalls"] = stalls
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.update({
        "import_s": imported - started_import, "open_s": opened - imported,
        "rebuild_s": rebuild_ended - rebuild_started, "report": report.to_dict(),
        "passages_before": before_build.passages, "passages_after": after_build.passages if after_build else None,
        "rss_after_open_mb": rss_after_open / 1024, "peak_rss_self_mb": usage.ru_maxrss / 1024,
        "vmhwm_self_mb": _status_kb(os.getpid())[1] / 1024,
        "peak_rss_tree_sampled_mb": sampler.tree_peak_kb / 1024,
        "peak_rss_tree_at_s": sampler.tree_peak_at - rebuild_started if sampler.tree_peak_kb else None,
        "children_seen": len(sampler.children_hwm_kb),
        "children_vmhwm_mb": sorted((v / 1024 for v in sampler.children_hwm_kb.values()), reverse=True),
        "loadavg_start": load_start, "loadavg_end": load_end, "ask_errors": errors[:10],
        "ask_error_count": len(errors), "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime,
    })
    return out


def build_base(db: Path, corpus: Path) -> dict[str, Any]:
    from index.build import rebuild

    t0 = time.perf_counter()
    built = rebuild(db, corpus)
    return {"seconds": time.perf_counter() - t0, "passages": built.report.passages,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# -- the orchestrator ----------------------------------------------------------------------------------

def _child(args: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as fh:
        result_path = fh.name
    try:
        subprocess.run([sys.executable, "-m", "bench.loop_lag", *args, "--result", result_path],
                       cwd=REPO_ROOT, check=True)
        return json.loads(Path(result_path).read_text())
    finally:
        os.unlink(result_path)


def _engine_digest() -> str:
    h = hashlib.sha256()
    for path in sorted((REPO_ROOT / "index").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def run_size(size: int, args: argparse.Namespace, tmp_root: Path) -> dict[str, Any]:
    new = max(args.min_new, round(size * args.new_share))
    base = size - new
    work = Path(tempfile.mkdtemp(prefix=f"loop_lag-{size}-", dir=tmp_root))
    corpus, db = work / "corpus", work / "newsdesk.db"
    try:
        t0 = time.perf_counter()
        size_bytes = write_articles(corpus / "base", base, first=0, seed=7)
        generated = time.perf_counter() - t0
        print(f"[{size:,}] generated {base:,} passages ({size_bytes / 2**20:.0f} MiB) in {generated:.1f} s; "
              f"building the base index...", flush=True)
        built = _child(["--child", "build", "--db", str(db), "--corpus", str(corpus)])
        print(f"[{size:,}] base index: {built['passages']:,} passages in {built['seconds']:.1f} s, "
              f"peak {built['peak_rss_mb']:.0f} MB; writing {new:,} new passages...", flush=True)
        write_articles(corpus / "new", new, first=base, seed=8, prefix="new")
        result = _child(["--child", "measure", "--db", str(db), "--corpus", str(corpus), "--label", f"{size:,}",
                         "--baseline", str(args.baseline), "--after", str(args.after),
                         "--ask-every", str(args.ask_every), "--stall-log", str(args.stall_log),
                         "--dump-after", str(args.dump_after)])
        result.update({"size": size, "new_passages_written": new, "base_passages_written": base,
                       "generate_s": generated, "base_build": built,
                       "db_mb": sum(p.stat().st_size for p in work.glob("newsdesk.db*")) / 2**20})
        print(f"[{size:,}] rebuild {result['rebuild_s']:.1f} s; worst lag {result['rebuild']['heartbeat_lag_ms']['max']:.0f} ms",
              flush=True)
        return result
    finally:
        if args.keep_tmp:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def table(results: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, fn: Any) -> None:
        rows.append((name, [fn(r) for r in results]))

    def lag(phase: str, key: str) -> Any:
        return lambda r: _f(r[phase]["heartbeat_lag_ms"][key], 2 if key == "p50" else 1)

    def ask(phase: str) -> Any:
        return lambda r: " / ".join(_f(r[phase]["ask_ms"][k]) for k in ("p50", "p95", "max"))

    row("passages: base + new -> after", lambda r: f"{r['passages_before']:,} + {r['new_passages_written']:,} -> {r['passages_after']:,}")
    row("base build, child (s)", lambda r: _f(r["base_build"]["seconds"]))
    row("open, with imports (s)", lambda r: _f(r["open_s"] + r["import_s"], 2))
    row("**rebuild wall (s)**", lambda r: _f(r["rebuild_s"]))
    row("heartbeats: baseline / rebuild", lambda r: f"{r['baseline']['heartbeat_lag_ms']['count']:,} / {r['rebuild']['heartbeat_lag_ms']['count']:,}")
    for key in ("p50", "p99", "max"):
        row(f"lag {key}, baseline (ms)", lag("baseline", key))
        row(f"lag {key}, rebuild (ms)", lag("rebuild", key))
    row("**lag max: rebuild / baseline**", lambda r: _x(_ratio(r["rebuild"]["heartbeat_lag_ms"]["max"], r["baseline"]["heartbeat_lag_ms"]["max"])))
    row("lag p99: rebuild / baseline", lambda r: _x(_ratio(r["rebuild"]["heartbeat_lag_ms"]["p99"], r["baseline"]["heartbeat_lag_ms"]["p99"])))
    row("lags > 50 ms / > 100 ms, rebuild", lambda r: f"{r['rebuild']['heartbeat_lag_ms']['over_50ms']} / {r['rebuild']['heartbeat_lag_ms']['over_100ms']}")
    row("  those > 50 ms: GIL held by the build / loop starved of CPU / other", lambda r: " / ".join(
        str(sum(_cause(l) == c for l in r["long_lags"])) for c in ("build", "cpu", "other")))
    row("lag max, after the rebuild (ms)", lag("after", "max"))
    row("ask p50 / p95 / max, before (ms)", ask("baseline"))
    row("ask p50 / p95 / max, rebuild (ms)", ask("rebuild"))
    row("ask p50 / p95 / max, after (ms)", ask("after"))
    row("**ask p50: rebuild / before**", lambda r: _x(_ratio(r["rebuild"]["ask_ms"]["p50"], r["baseline"]["ask_ms"]["p50"])))
    row("ask max: rebuild / before", lambda r: _x(_ratio(r["rebuild"]["ask_ms"]["max"], r["baseline"]["ask_ms"]["max"])))
    row("answers/s: before / rebuild", lambda r: f"{_f(r['baseline']['answers_per_s'])} / {_f(r['rebuild']['answers_per_s'])}")
    row("ask errors", lambda r: str(r["ask_error_count"]))
    row("RSS after open (MB)", lambda r: _f(r["rss_after_open_mb"], 0))
    row("peak RSS, process (MB)", lambda r: _f(r["peak_rss_self_mb"], 0))
    row("peak RSS, process tree, sampled (MB)", lambda r: _f(r["peak_rss_tree_sampled_mb"], 0))
    row("analysis workers: peak RSS each (MB)", lambda r: ", ".join(f"{v:.0f}" for v in r["children_vmhwm_mb"][:4]) or "–")
    row("load average, start / end", lambda r: f"{r['loadavg_start'][0]:.2f} / {r['loadavg_end'][0]:.2f}")
    row("CPU pressure (share of time some task waited), baseline / rebuild", lambda r: " / ".join(
        _f(100 * (r[p].get("cpu_pressure_some_share") or 0), 0) + " %" for p in ("baseline", "rebuild")))
    row("CPU steal, rebuild (CPU-s)", lambda r: _f(r["rebuild"].get("steal_cpu_s"), 2))
    head = "| metric | " + " | ".join(f"{r['size']:,}" for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return "\n".join(lines)


def _cause(lag: dict[str, Any]) -> str:
    """cpu: the loop thread was runnable, without a CPU, for half the lag or more (the machine is busy);
    build: else the build thread was on a CPU for half of it (it held the GIL); other: neither (say, the
    GIL's holder was itself descheduled, or the loop thread ran something long)."""
    if lag.get("loop_runnable_ms") is None:
        return "unknown"
    if lag["loop_runnable_ms"] >= lag["lag_ms"] / 2:
        return "cpu"
    return "build" if lag["build_on_cpu_ms"] >= lag["lag_ms"] / 2 else "other"


def stage_table(result: dict[str, Any]) -> str:
    lines = [f"Stages at {result['size']:,}:", "| stage | start (s) | seconds | max lag (ms) | lags > 50 ms |", "|---|---|---|---|---|"]
    for s in result["stages"]:
        lines.append(f"| {s['stage']} | {s['start_s']:.2f} | {s['seconds']:.2f} | {_f(s['max_lag_ms'])} | {s['over_50ms']} |")
    return "\n".join(lines)


def stall_summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Stall sources: the build thread's top frame under index/, per dump sample (one per 100 ms)."""
    sources: dict[str, dict[str, Any]] = {}
    for stall in result["stalls"]:
        seen = set()
        for sample in stall["samples"]:
            key, thread = _culprit(sample["threads"])
            entry = sources.setdefault(key, {"source": key, "line": thread["top_index_line"] or thread["top_line"],
                                             "top": thread["top"], "samples": 0, "stalls": 0, "max_stall_ms": 0.0,
                                             "stages": set(), "loop_tops": set(), "busy": set(), "stall_list": []})
            entry["samples"] += 1
            entry["loop_tops"].update(t["top"] for t in sample["threads"] if t["role"] == "loop")
            entry["busy"].update(f"{t['role']}: {t['top']}" for t in sample["threads"] if _busy(t))
            if key not in seen:
                seen.add(key)
                entry["stalls"] += 1
                entry["max_stall_ms"] = max(entry["max_stall_ms"], stall["lag_ms"])
                entry["stall_list"].append({k: round(stall.get(k) or 0, 1) for k in
                                            ("lag_ms", "loop_runnable_ms", "build_on_cpu_ms", "t_s")})
                entry["stages"].add(stall["stage"])
    ranked = sorted(sources.values(), key=lambda e: (-e["max_stall_ms"], -e["samples"]))
    for e in ranked:
        e["stages"], e["loop_tops"], e["busy"] = sorted(e["stages"]), sorted(e["loop_tops"]), sorted(e["busy"])
    return ranked


# A thread whose top line is one of these waits (for work, a lock, a socket) holds no GIL.
_IDLE = re.compile(r"work_queue\.get\(|waiter\.acquire\(|\btx\.get\(|_selector\.poll\(|\.wait\(|_recv|_poll\(|\.get\(")


def _busy(thread: dict[str, Any]) -> bool:
    return bool(thread["top"]) and not _IDLE.search(thread["top_line"])


def _culprit(threads: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """What a dump blames: the build thread's top frame under index/, else a busy thread's."""
    build = [t for t in threads if t["role"] == "build"]
    if build and build[0]["top_index"]:
        return build[0]["top_index"], build[0]
    loop = [t for t in threads if t["role"] == "loop"]
    ranked = build + loop + [t for t in threads if t["role"] not in ("build", "loop")]
    for t in ranked:
        if t["top_index"] and _busy(t):
            return f"{t['role']} thread: {t['top_index']}", t
    for t in ranked:
        if _busy(t):
            return f"{t['role']} thread: {t['top']}", t
    return "(every thread idle)", {"top": None, "top_index_line": "", "top_line": ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loop_lag", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example: python -m bench.loop_lag --sizes 200000 1000000")
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000], help="passages after the rebuild")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "loop_lag.json")
    ap.add_argument("--stall-log", type=Path, default=REPO_ROOT / "bench" / "results" / "loop_lag_stalls.txt")
    ap.add_argument("--new-share", type=float, default=0.05, help="share of the size added before the rebuild")
    ap.add_argument("--min-new", type=int, default=20_000, help="at least this many new passages (parallel analysis)")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of load before the rebuild")
    ap.add_argument("--after", type=float, default=3.0, help="seconds of load after the rebuild")
    ap.add_argument("--ask-every", type=float, default=0.05, help="pause between one answer and the next ask")
    ap.add_argument("--dump-after", type=float, default=0.1, help="stall (s) that dumps all stacks; 0: none")
    ap.add_argument("--tmp", type=Path, default=None, help="where the corpora and databases go (default: $TMPDIR)")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--child", choices=("build", "measure"), help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        if args.child == "build":
            result = build_base(args.db, args.corpus)
        else:
            result = asyncio.run(measure(args.db, args.corpus, args.label, args.baseline, args.after,
                                         args.ask_every, args.stall_log, args.dump_after))
        args.result.write_text(json.dumps(result))
        return 0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.stall_log.parent.mkdir(parents=True, exist_ok=True)
    digest = _engine_digest()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    args.stall_log.write_text(f"faulthandler dumps of loop stalls over {args.dump_after * 1000:.0f} ms; run of "
                              f"{started}, index/*.py {digest}\n", encoding="utf-8")
    results = []
    for size in args.sizes:
        results.append(run_size(size, args, args.tmp or Path(tempfile.gettempdir())))
        for r in results:
            r["sources"] = stall_summary(r)
        meta = {"started": started, "index_sha256_12": digest, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                "heartbeat_ms": HEARTBEAT_S * 1000, "ask_every_s": args.ask_every, "baseline_s": args.baseline,
                "dump_after_s": args.dump_after, "stall_log": str(args.stall_log)}
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=list))

    print(f"\nLoop lag while the engine rebuilds (run of {started}, {os.cpu_count()} CPUs, index/*.py {digest})\n")
    print(table(results))
    for r in results:
        print()
        print(stage_table(r))
        print(f"\nStall sources at {r['size']:,} (stalls > {args.dump_after * 1000:.0f} ms; build thread's top frame in index/):")
        if not r["sources"]:
            print("  none")
        for s in r["sources"]:
            each = ", ".join(f"{x['lag_ms']:.0f} ms (loop runnable {x['loop_runnable_ms']:.0f}, build on CPU "
                             f"{x['build_on_cpu_ms']:.0f})" for x in s["stall_list"])
            print(f"  {s['source']}: {s['stalls']} stall(s), worst {s['max_stall_ms']:.0f} ms, {s['samples']} sample(s), "
                  f"stage {', '.join(s['stages'])}\n      stalls: {each}\n      `{s['line']}`  (top frame: {s['top']}; loop thread at: "
                  f"{'; '.join(t for t in s['loop_tops'] if t)})\n      busy threads: {'; '.join(s['busy']) or '–'}")
        if r["long_lags"]:
            print(f"Lags > {STALL_MS:.0f} ms at {r['size']:,}: " + ", ".join(
                f"{l['lag_ms']:.0f} ms ({l['stage']}, t={l['t_s']:.1f} s, loop runnable {l['loop_runnable_ms']:.0f} ms, "
                f"loop on CPU {l['loop_on_cpu_ms']:.0f} ms, build on CPU {l['build_on_cpu_ms']:.0f} ms: {_cause(l)})"
                for l in r["long_lags"][:40]))
    print(f"\nJSON: {args.out}\nstall dumps: {args.stall_log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
