"""See and break the network (issue 14): `show` on a host of many containers,
and the throughput of a `--rate 10mbit` link.

  sudo .venv/bin/python tools/bench.py explain [--containers 200] [--networks 10] [--runs 5] [--seconds 5]

show: whole `nsbridge show` processes (text and html), median of RUNS, next
to reading the same kernel objects by hand the way a script would (one `ip
-j addr` and one `ip -j route` per container namespace, one `ip -j -d link`
and one `iptables-save -c` in the host).

rate: iperf3 (TCP, SECONDS long) from a container whose endpoint is impaired
with `--rate 10mbit`, to another container on the same network; the figure
is iperf3's received throughput against the 10 Mbit/s asked for (target:
within 10 %), with the unshaped link beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import median_ms, print_table, whole_process_ms

from nsbridge.engine.containers import RunSpec
from nsbridge.sandbox import Sandbox


def _by_hand(sb: Sandbox, names: list[str]) -> None:
    for n in names:
        ns = f"{sb.name}-{n}"
        subprocess.run(["ip", "-n", ns, "-j", "addr"], capture_output=True, check=True)
        subprocess.run(["ip", "-n", ns, "-j", "route"], capture_output=True, check=True)
    subprocess.run(["ip", "-n", sb.name, "-j", "-d", "link"], capture_output=True, check=True)
    sb.host_run("iptables-save", "-c", check=True)


def bench_show(sb: Sandbox, n: int, nets: int, runs: int) -> None:
    e = sb.engine()
    try:
        t = time.perf_counter()
        for i in range(nets):
            e.network_create(f"net{i}")
        with e.session():
            for i in range(n):
                e.run(RunSpec(name=f"c{i}", networks=[f"net{i % nets}"]))
        setup_s = time.perf_counter() - t
    finally:
        e.close()
    print(f"({n} containers over {nets} networks made in {setup_s:.1f} s)")
    text_ms = whole_process_ms(sb.argv("show"), runs, sb.env)
    html_ms = whole_process_ms(sb.argv("show", "--format", "html"), runs, sb.env)
    json_ms = whole_process_ms(sb.argv("show", "--format", "json"), runs, sb.env)
    hand_ms = median_ms(lambda: _by_hand(sb, [f"c{i}" for i in range(n)]), max(1, runs // 2))
    size = len(sb.cli("show", "--format", "html", check=True).stdout)
    problems = sb.cli("show", check=True).stdout.rstrip().splitlines()[-1]
    print_table(
        f"`nsbridge show` on a {n}-container host, whole process, median of {runs}, ms",
        ["what", "ms", "vs by hand"],
        [["show (text)", text_ms, f"{hand_ms / text_ms:.1f}x faster"],
         ["show --format html", html_ms, f"{hand_ms / html_ms:.1f}x faster"],
         ["show --format json", json_ms, f"{hand_ms / json_ms:.1f}x faster"],
         [f"by hand: {2 * n + 2} ip/iptables-save processes", hand_ms, "1.0x"]],
    )
    print(f"\nhtml page: {size / 1024:.0f} KiB; {problems}")


def _iperf(sb: Sandbox, client: str, server_ip: str, seconds: int) -> float:
    p = sb.cli("exec", client, "iperf3", "-c", server_ip, "-t", str(seconds), "-J", timeout=seconds + 30)
    data = json.loads(p.stdout)
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    return data["end"]["sum_received"]["bits_per_second"]


def bench_rate(sb: Sandbox, seconds: int) -> None:
    sb.cli("network", "create", "shaped", check=True)
    sb.cli("run", "-d", "--name", "srv", "--network", "shaped", "--", "iperf3", "-s", check=True)
    sb.cli("run", "-d", "--name", "cli", "--network", "shaped", "alpine", check=True)
    ip = sb.cli("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "srv",
                check=True).stdout.strip()
    deadline = time.monotonic() + 5
    while not sb.cli("exec", "srv", "ss", "-ltnH", "sport = :5201").stdout.strip():
        if time.monotonic() > deadline:
            raise RuntimeError("iperf3 server did not start")
        time.sleep(0.1)
    free = _iperf(sb, "cli", ip, seconds)
    sb.cli("impair", "cli", "shaped", "--rate", "10mbit", check=True)
    shaped = [_iperf(sb, "cli", ip, seconds) for _ in range(3)]
    got = statistics.median(shaped)
    off = (got - 10e6) / 10e6 * 100
    print_table(
        f"iperf3 TCP {seconds} s, container to container on one bridge, received Mbit/s",
        ["link", "Mbit/s", "vs 10 Mbit/s"],
        [["unshaped", free / 1e6, f"{free / 10e6:.0f}x"],
         ["impair --rate 10mbit (tbf), median of 3", got / 1e6, f"{off:+.1f} %"],
         ["  the 3 runs", " / ".join(f"{x / 1e6:.2f}" for x in shaped), ""]],
    )
    print(f"\n--rate 10mbit within 10 %: {'met' if abs(off) <= 10 else 'MISSED'} ({got / 1e6:.2f} Mbit/s)")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py explain")
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--networks", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args(argv)
    print(f"# nsbridge explain benchmark (machine: {os.cpu_count()} cpus)")
    for part in ("show", "rate"):
        sb = Sandbox(root=tempfile.mkdtemp(prefix=f"nsbridge-bench-{part}-"))
        try:
            if part == "show":
                bench_show(sb, a.containers, a.networks, a.runs)
            else:
                bench_rate(sb, a.seconds)
        finally:
            leaks = sb.destroy()
            if leaks:
                print(f"bench: left behind: {leaks}", file=sys.stderr)
    return 0
