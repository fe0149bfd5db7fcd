"""Scale benchmark (issue 6): 500 containers over 20 networks, then removed.

  sudo .venv/bin/python tools/bench.py scale [--containers 500] [--networks 20]

Prints per-operation medians (each operation its own session, as separate
commands would be) when the host holds about 10, 100 and 500 containers, and
the time `system reconcile` takes on that intact host (target: < 2 s at 500).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from benchlib import print_table

from nsbridge.engine.containers import RunSpec
from nsbridge.sandbox import Sandbox


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py scale")
    ap.add_argument("--containers", type=int, default=500)
    ap.add_argument("--networks", type=int, default=20)
    a = ap.parse_args(argv)
    n, nets = a.containers, a.networks
    marks = [m for m in (10, 100, 500) if m <= n] or [n]
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-scale-"))
    print(f"# nsbridge scale benchmark: {n} containers over {nets} networks, sandbox host {sb.name}")
    e = sb.engine()
    try:
        t = time.perf_counter()
        for i in range(nets):
            e.network_create(f"net{i}")
        net_ms = (time.perf_counter() - t) * 1000 / nets
        run_ms: list[float] = []
        reconcile: dict[int, float] = {}
        for i in range(n):
            s = time.perf_counter()
            e.run(RunSpec(name=f"c{i}", networks=[f"net{i % nets}"]))
            run_ms.append((time.perf_counter() - s) * 1000)
            if i + 1 in marks:
                s = time.perf_counter()
                report = e.reconcile()
                reconcile[i + 1] = (time.perf_counter() - s) * 1000
                assert report == ["nothing to do: the store and the kernel agree"], report
        rm_ms: list[float] = []
        for i in reversed(range(n)):
            s = time.perf_counter()
            e.rm([f"c{i}"], force=True)
            rm_ms.append((time.perf_counter() - s) * 1000)
        rm_ms.reverse()  # rm_ms[i]: removing with i+1 containers present

        def around(values: list[float], mark: int) -> float:
            lo = max(0, mark - max(3, mark // 10))
            return statistics.median(values[lo:mark])

        rows = [[f"{m} containers", around(run_ms, m), around(rm_ms, m), reconcile[m]] for m in marks]
        print_table(
            f"per-operation medians, ms (each its own session); network create: {net_ms:.1f} ms",
            ["host holds", "run", "rm -f", "system reconcile (intact)"],
            rows,
        )
        worst = max(reconcile.values())
        print(f"\nreconcile of an intact {max(marks)}-container host: {reconcile[max(marks)] / 1000:.2f} s "
              f"(target < 2 s: {'met' if worst < 2000 else 'MISSED'})")
        for i in range(nets):
            e.network_rm([f"net{i}"])
    finally:
        e.close()
        leaks = sb.destroy()
        if leaks:
            print(f"bench: left behind: {leaks}", file=sys.stderr)
    return 0
