"""Labs benchmark (issue 16): bringing up and taking down a 50-container lab,
and `up` on an unchanged running lab (a no-op), next to the same work done
by other means in the same run.

  sudo .venv/bin/python tools/bench.py lab [--containers 50] [--networks 5] [--rounds 3] [--noop-runs 15]

Each round: `nsbridge lab up DIR` of a generated lab (N busybox services over
M user networks, in a sandbox host of its own), `lab up` again on it unchanged
(`--noop-runs` times: a no-op reads the store and takes no lock), `lab check`
of one reach check per network, then `lab down`. The same topology made with
one `nsbridge network create` / `nsbridge run -d` per object (what a lab's
shell script does) and removed with `rm -f` / `network rm`, in another sandbox
host, is the comparison. Whole-process times (Python start included), medians.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import print_table

from nsbridge.sandbox import Sandbox


def lab_dir(base: str, n: int, nets: int) -> str:
    d = os.path.join(base, "bench")
    os.makedirs(d, exist_ok=True)
    lines = ["services:"]
    for i in range(n):
        lines += [f"  s{i}:", "    image: busybox", f"    networks: [n{i % nets}]"]
    lines.append("networks:")
    lines += [f"  n{j}: {{}}" for j in range(nets)]
    with open(os.path.join(d, "compose.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    checks = ["checks:"] + [f"  - reach: s{j} -> s{j + nets}" for j in range(nets) if j + nets < n]
    with open(os.path.join(d, "checks.yaml"), "w") as f:
        f.write("\n".join(checks) + "\n")
    return d


def timed(sb: Sandbox, *args: str) -> float:
    t = time.perf_counter()
    sb.cli(*args, check=True, timeout=600)
    return (time.perf_counter() - t) * 1000


def script_way(sb: Sandbox, n: int, nets: int) -> tuple[float, float]:
    """The same lab as a shell script of nsbridge commands: (up ms, down ms)."""
    t = time.perf_counter()
    for j in range(nets):
        sb.cli("network", "create", f"bench_n{j}", check=True)
    for i in range(n):
        sb.cli("run", "-d", "--name", f"bench-s{i}-1", "--network", f"bench_n{i % nets}", "busybox", check=True)
    up = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    sb.cli("rm", "-f", *[f"bench-s{i}-1" for i in range(n)], check=True, timeout=600)
    sb.cli("network", "rm", *[f"bench_n{j}" for j in range(nets)], check=True)
    return up, (time.perf_counter() - t) * 1000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py lab")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--networks", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--noop-runs", type=int, default=15)
    a = ap.parse_args(argv)
    n, nets = a.containers, a.networks
    ups, downs, noops, checks, s_ups, s_downs, ps = [], [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as base, Sandbox() as sb, Sandbox() as plain:
        d = lab_dir(base, n, nets)
        sb.cli("network", "ls", check=True)
        plain.cli("network", "ls", check=True)
        for _ in range(a.rounds):
            ups.append(timed(sb, "lab", "up", d))
            for _ in range(a.noop_runs):
                noops.append(timed(sb, "lab", "up", d))
            checks.append(timed(sb, "lab", "check", d))
            ps.append(timed(sb, "ps"))
            downs.append(timed(sb, "lab", "down", d))
            su, sd = script_way(plain, n, nets)
            s_ups.append(su)
            s_downs.append(sd)
        leaks = sb.destroy() + plain.destroy()
    med = statistics.median
    print_table(
        f"lab of {n} containers on {nets} networks, {a.rounds} rounds (medians, ms, whole processes)",
        ["what", "nsbridge lab", "same by other means", "ratio"],
        [
            ["bring up", med(ups), med(s_ups), med(s_ups) / med(ups)],
            ["take down", med(downs), med(s_downs), med(s_downs) / med(downs)],
            ["up, unchanged (no-op)", med(noops), med(ps), med(noops) / med(ps)],
            [f"lab check ({nets - 0} reach checks)", med(checks), "", ""],
        ],
    )
    print("\nother means: bring up / take down = one `nsbridge network create` and `run -d` per object, then\n"
          "`rm -f` of all and `network rm` (a lab as a shell script); no-op = one `nsbridge ps` (a read command).\n"
          "ratio: other / lab for up and down (higher is better); no-op / ps (near 1: a no-op costs a read).")
    if leaks:
        print(f"LEAKS: {leaks}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main(sys.argv[1:]))
