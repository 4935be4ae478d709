"""Run one command and record its wall time, exit code and peak RSS:

    python bench/peak.py OUT.json [--timeout SECONDS] -- COMMAND ARGS...

Peak RSS is ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read here, after the one child has
been waited for.  Why a wrapper: on Linux a child's ru_maxrss starts at the RSS its *parent* had
when it forked (exec copies the old address space's high-water mark), so children spawned by
bench.run, which holds the token lists, would all report at least bench.run's own size.  This
wrapper is small (its own peak is recorded as ``floor_kb``), so the number it reads is the
command's own.  On timeout the wrapper kills its child (by pid) and records ``timed_out``.
"""

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    out = args.pop(0)
    timeout = None
    if args and args[0] == "--timeout":
        timeout = float(args[1])
        args = args[2:]
    if not args or args[0] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    cmd = args[1:]
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd)
    timed_out = False
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
        timed_out = True
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as fh:
        json.dump({"wall_s": wall, "rc": rc, "timed_out": timed_out, "maxrss_kb": ru.ru_maxrss,
                   "floor_kb": floor, "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, fh)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
