"""A process tree's memory, sampled from /proc: every process's RSS and PSS summed per sample, the peak kept.

    with TreeSampler(proc.pid) as tree:
        proc.wait()
    tree.peak_rss_kb, tree.peak_pss_kb, tree.largest_hwm_kb

Why PSS beside RSS: the build's analysis workers are spawned children that share pages (libraries, the
interpreter) with each other; summing their RSS counts those pages once per process, PSS divides each
shared page among its sharers, so the PSS sum is what the tree really takes from the machine. Sampling
misses a peak shorter than the period (50 ms between samples, plus the sample's own time: ~125 ms in all
beside a 3 GB builder); each process's own high-water mark (VmHWM, kept by the kernel) is read too, so
the largest single process is exact.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.cluster import _descendants as descendants  # pid and every process below it, now

PERIOD_S = 0.05


def memory_kb(pid: int) -> dict[str, int]:
    """A process's Rss and Pss (smaps_rollup) and VmHWM (status), in kB; {} once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith((b"Rss:", b"Pss:")):
                    out[line[:3].decode().lower()] = int(line.split()[1])
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    out["hwm"] = int(line.split()[1])
    except (OSError, ValueError):
        return {}
    return out


class TreeSampler:
    """Peak summed RSS and PSS of a process tree (the root and every descendant), sampled in a thread."""

    def __init__(self, root: int, period: float = PERIOD_S, include_root: bool = True) -> None:
        self.root = root
        self.period = period
        self.include_root = include_root
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0          # processes in the tree at its PSS peak
        self.hwm_kb: dict[int, int] = {}  # each process's own high-water RSS, as last read
        self.samples = 0
        self.sampled_at: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def sample(self) -> None:
        pids = descendants(self.root)
        if not self.include_root:
            pids = pids[1:]
        rss = pss = alive = 0
        for pid in pids:
            m = memory_kb(pid)
            if not m:
                continue
            alive += 1
            rss += m.get("rss", 0)
            pss += m.get("pss", 0)
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), m.get("hwm", 0))
        self.samples += 1
        self.sampled_at.append(time.perf_counter())
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        if pss > self.peak_pss_kb:
            self.peak_pss_kb, self.peak_processes = pss, alive

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def largest_hwm_kb(self) -> int:
        return max(self.hwm_kb.values(), default=0)

    def summary(self) -> dict[str, Any]:
        return {"tree_peak_rss_mb": self.peak_rss_kb / 1024, "tree_peak_pss_mb": self.peak_pss_kb / 1024,
                "processes_at_peak": self.peak_processes, "processes_seen": len(self.hwm_kb),
                "largest_process_hwm_mb": self.largest_hwm_kb / 1024, "samples": self.samples,
                "period_s": self.period, "mean_period_s": self.mean_period_s}

    @property
    def mean_period_s(self) -> float | None:
        """The wait plus the sample's own time: reading smaps_rollup of a 3 GB process takes tens of ms."""
        at = self.sampled_at
        return (at[-1] - at[0]) / (len(at) - 1) if len(at) > 1 else None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, RAM, and the load now."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "ram_gb": ram_kb / 1024 / 1024, "loadavg": list(os.getloadavg()),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
