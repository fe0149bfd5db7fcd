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
    """One published port's cost on a host publishing 10 ports, `most` ports on
    a few containers, and `most` ports on as many containers; next to the same
    `run` without -p, so that the port's own share shows."""
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-ports-"))
    print(f"\n# published ports: one `run -p` as the host's published ports grow to {most}, sandbox host {sb.name}")
    e = sb.engine()
    nets = [f"pnet{i}" for i in range(4)]  # a bridge takes 1,023 ports: spread the fill
    probe = iter(range(40000, 50000))
    rows = []

    def fill(first: int, last: int) -> None:
        with e.session():
            for i in range(first, last):
                e.run(RunSpec(name=f"p{i}", networks=[nets[i % len(nets)]], publish=[f"{20000 + i}:80"]))

    def measure(label: str) -> None:
        got: dict[str, list[float]] = {k: [] for k in ("run", "run -p", "rm", "rm -p", "cli run -p", "cli rm -p")}
        for _ in range(runs):
            for key, pub in (("", []), (" -p", [f"{next(probe)}:80"])):
                t = time.perf_counter()
                e.run(RunSpec(name="probe", publish=pub))
                got["run" + key].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                e.rm(["probe"], force=True)
                got["rm" + key].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            sb.cli("run", "-d", "--name", "probe", "-p", f"{next(probe)}:80", "alpine", check=True)
            got["cli run -p"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            sb.cli("rm", "-f", "probe", check=True)
            got["cli rm -p"].append((time.perf_counter() - t) * 1000)
        m = {k: statistics.median(v) for k, v in got.items()}
        rows.append([label, m["run"], m["run -p"], m["run -p"] - m["run"], m["rm"], m["rm -p"], m["rm -p"] - m["rm"],
                     m["cli run -p"], m["cli rm -p"]])

    try:
        for net in nets:
            e.network_create(net)
        fill(0, 10)
        measure("10 ports, 10 containers")
        e.run(RunSpec(name="range", networks=[nets[0]], publish=[f"{21000}-{21000 + most - 11}:{21000}-{21000 + most - 11}"]))
        measure(f"{most} ports, 11 containers")
        e.rm(["range"], force=True)
        fill(10, most)
        measure(f"{most} ports, {most} containers")
        print_table(
            f"one container, library API (one session each) and CLI (whole process), ms, median of {runs}; "
            "its port's own share: with -p minus without",
            ["host publishes", "run", "run -p", "port's share", "rm -f", "rm -f (-p)", "port's share",
             "CLI run -p", "CLI rm -f (-p)"],
            rows,
        )
        big = many_ports(sb, most)
        print_table(f"-P with 5,000 exposed ports, on a host already publishing {most}, ms (one run each)",
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
