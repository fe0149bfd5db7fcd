"""Overlay benchmark (issue 13): two containers on different hosts over VXLAN
next to two containers on one bridge, and the cost of `run` on an overlay
network (etcd round trips included) next to `run` on a bridge.

  sudo .venv/bin/python tools/bench.py overlay [--pings 50] [--seconds 5] [--runs 15]

The hosts are sandbox hosts on an underlay bridge with a real etcd in a
namespace of its own (the integration tests' lab, tests/integration/cluster_lab.py;
`./setup.sh bench` installs etcd-server, iperf3 and the test extras it needs).
Ping: `ping -c N -i 0.05` container->container, average RTT. Throughput: iperf3
TCP for --seconds, container->container. `run`: whole-process `nsbridge run -d`
times (Python start included), overlay and bridge interleaved, medians.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time

from benchlib import print_table


def ping_ms(sb, ctr: str, ip: str, n: int) -> float:
    out = sb.cli("exec", ctr, "ping", "-q", "-c", str(n), "-i", "0.05", ip, check=True, timeout=120).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


def iperf_gbits(sb, ctr: str, ip: str, seconds: int) -> float:
    out = sb.cli("exec", ctr, "iperf3", "-c", ip, "-t", str(seconds), "-J", check=True, timeout=seconds + 60).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def ip_of(sb, ctr: str, net: str) -> str:
    return sb.cli("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", ctr,
                  check=True).stdout.strip()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py overlay")
    ap.add_argument("--pings", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        from tests.integration.cluster_lab import Lab
    except ImportError as e:
        print(f"bench overlay: not run: {e} (`./setup.sh bench` installs what it needs)")
        return 1
    import shutil

    if shutil.which("etcd") is None or shutil.which("iperf3") is None:
        print("bench overlay: not run: etcd (Debian's etcd-server) and iperf3 are needed (`./setup.sh bench`)")
        return 1
    lab = Lab(2)
    try:
        h1, h2 = lab.hosts
        for sb in lab.hosts:
            lab.join(sb, ttl=20)
        h1.cli("network", "create", "-d", "overlay", "ov", check=True)
        h1.cli("network", "create", "br", check=True)
        # the same pair twice: across hosts over VXLAN, and on one bridge of one host
        h2.cli("run", "-d", "--name", "srv-ov", "--network", "ov", "--", "iperf3", "-s", check=True)
        h1.cli("run", "-d", "--name", "cli-ov", "--network", "ov", "busybox", check=True)
        h1.cli("run", "-d", "--name", "srv-br", "--network", "br", "--", "iperf3", "-s", check=True)
        h1.cli("run", "-d", "--name", "cli-br", "--network", "br", "busybox", check=True)
        ov_ip, br_ip = ip_of(h2, "srv-ov", "ov"), ip_of(h1, "srv-br", "br")
        time.sleep(1)  # the iperf3 servers listening
        ping_ms(h1, "cli-ov", ov_ip, 3)  # ARP answered, caches warm
        ping_ms(h1, "cli-br", br_ip, 3)
        rows = [
            ["ping RTT avg (ms)", ping_ms(h1, "cli-ov", ov_ip, a.pings), ping_ms(h1, "cli-br", br_ip, a.pings)],
            ["iperf3 TCP (Gbit/s)", iperf_gbits(h1, "cli-ov", ov_ip, a.seconds), iperf_gbits(h1, "cli-br", br_ip, a.seconds)],
        ]
        for r in rows:
            r.append(r[1] / r[2] if r[2] else float("nan"))
        print_table(f"container -> container: two hosts over VXLAN vs one bridge ({a.pings} pings, {a.seconds} s iperf3)",
                    ["measure", "overlay (2 hosts)", "bridge (1 host)", "overlay / bridge"], rows)
        times: dict[str, list[float]] = {"ov": [], "br": []}
        for i in range(a.runs):
            for net in ("ov", "br"):
                t = time.perf_counter()
                h1.cli("run", "-d", "--name", f"r-{net}-{i}", "--network", net, "busybox", check=True)
                times[net].append((time.perf_counter() - t) * 1000)
        ov, br = statistics.median(times["ov"]), statistics.median(times["br"])
        print_table(f"`nsbridge run -d busybox` (whole process, median of {a.runs}, interleaved)",
                    ["network", "ms", "vs bridge"], [["overlay (etcd on the underlay)", ov, ov / br], ["bridge", br, 1.0]])
        print("\noverlay `run` does more: an address claimed in etcd, the endpoint announced under the host's lease, "
              "and a second endpoint on docker_gwbridge; the first one on a host also builds the overlay namespace.")
    finally:
        leaks = lab.destroy()
        if leaks:
            print(f"bench overlay: left behind: {leaks}", file=sys.stderr)
    return 0
