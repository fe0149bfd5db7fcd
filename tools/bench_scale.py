"""Scale benchmark (issue 6): 500 containers over 20 networks, then removed.

  sudo .venv/bin/python tools/bench.py scale [--containers 500] [--networks 20]

Prints per-operation medians (each operation its own session, as separate
commands would be) when the host holds about 10, 100 and 500 containers, and
the time `system reconcile` takes on that intact host (target: < 2 s at 500).

Then published ports (issue 11): the cost of one `run -p` (and its `rm -f`)
when the host publishes 10 and 1,000 ports (one per container, over four user
networks), through the library API and through the CLI, which should not
grow; and `run -P --expose 1-5000` (5,000 ports picked: well under a second).

  sudo .venv/bin/python tools/bench.py scale [--part containers|ports|all] [--published 1000] [--runs 7]
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
    ap.add_argument("--part", choices=("containers", "ports", "all"), default="all")
    ap.add_argument("--published", type=int, default=1000, help="published ports on the host at the last mark")
    ap.add_argument("--runs", type=int, default=7, help="runs per figure of the ports part (median)")
    a = ap.parse_args(argv)
    rc = containers(a.containers, a.networks) if a.part in ("containers", "all") else 0
    if a.part in ("ports", "all"):
        rc = published_ports(a.published, a.runs) or rc
    return rc


def containers(n: int, nets: int) -> int:
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
        close(e, sb)
    return 0


def close(e, sb: Sandbox) -> None:
    e.close()
    leaks = sb.destroy()
    if leaks:
        print(f"bench: left behind: {leaks}", file=sys.stderr)


def published_ports(most: int, runs: int) -> int:
    marks = [m for m in (10, most) if m <= most]
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-ports-"))
    print(f"\n# published ports: one `run -p` at {' and '.join(map(str, marks))} published ports, sandbox host {sb.name}")
    e = sb.engine()
    nets = [f"pnet{i}" for i in range(4)]  # a bridge takes 1,023 ports: spread the fill
    rows = []
    try:
        for net in nets:
            e.network_create(net)
        have = 0
        probe = iter(range(40000, 50000))
        for m in marks:
            with e.session():
                while have < m:
                    e.run(RunSpec(name=f"p{have}", networks=[nets[have % len(nets)]], publish=[f"{20000 + have}:80"]))
                    have += 1
            api_run, api_rm, cli_run, cli_rm = [], [], [], []
            for _ in range(runs):
                port = next(probe)
                t = time.perf_counter()
                e.run(RunSpec(name="probe", publish=[f"{port}:80"]))
                api_run.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                e.rm(["probe"], force=True)
                api_rm.append((time.perf_counter() - t) * 1000)
            for _ in range(runs):
                port = next(probe)
                t = time.perf_counter()
                sb.cli("run", "-d", "--name", "probe", "-p", f"{port}:80", "alpine", check=True)
                cli_run.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                sb.cli("rm", "-f", "probe", check=True)
                cli_rm.append((time.perf_counter() - t) * 1000)
            rows.append([f"{m} published ports", *(statistics.median(x) for x in (api_run, api_rm, cli_run, cli_rm))])
        if len(rows) == 2:
            rows.append([f"ratio {marks[1]} / {marks[0]}", *(b / a for a, b in zip(rows[0][1:], rows[1][1:]))])
        print_table(
            f"one published port, ms, median of {runs} (library API: one session each; CLI: whole process)",
            ["host publishes", "run -p (API)", "rm -f (API)", "run -p (CLI)", "rm -f (CLI)"],
            rows,
        )
        big = many_ports(sb, have)
        print_table(f"-P with 5,000 exposed ports, on a host already publishing {have}, ms (one run each)",
                    ["step", "ms"], big)
    finally:
        close(e, sb)
    return 0


def many_ports(sb: Sandbox, have: int) -> list[list[object]]:
    """run -P --expose 1-5000 and what reads it, each through the CLI once."""
    from nsbridge import ports

    specs = ports.publish_all_specs([], ports.parse_all([], ["1-5000"])[1])
    t = time.perf_counter()
    ports.allocate(specs, "", [ports.Held("tcp", "", 32768 + 2 * i) for i in range(have)], [])
    rows: list[list[object]] = [["allocate(): 5,000 picks beside the held ports (pure)", (time.perf_counter() - t) * 1000]]
    for label, args in (
        ("run -d -P --expose 1-5000", ["run", "-d", "--name", "many", "-P", "--expose", "1-5000", "alpine"]),
        ("ps (5,000 mappings in PORTS)", ["ps"]),
        ("port many", ["port", "many"]),
        ("inspect many", ["inspect", "many"]),
        ("run -d -p (beside them)", ["run", "-d", "--name", "one", "-p", "80", "alpine"]),
        ("rm -f many one", ["rm", "-f", "many", "one"]),
    ):
        t = time.perf_counter()
        sb.cli(*args, check=True, timeout=600)
        rows.append([label, (time.perf_counter() - t) * 1000])
    return rows
