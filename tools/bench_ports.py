"""Ports benchmark (issue 5): the data plane of published ports, next to the
direct paths and to a user-space proxy doing the same job, in one run.

  sudo .venv/bin/python tools/bench.py ports [--seconds 3] [--runs 5] [--conns 3000] [--conn-seconds 4]

In a sandbox host of its own, with a "LAN client" namespace wired to it by a
veth (192.0.2.0/24, documentation addresses, only inside these namespaces):

- TCP throughput, one iperf3 stream (Debian's iperf3): container -> container
  on one bridge; host -> container direct (the baseline); LAN client ->
  container routed through the host (no NAT); LAN client -> the published
  port (DNAT); host -> 127.0.0.1 published port (DNAT + route_localnet +
  masquerade); and, for context, LAN client -> a user-space asyncio proxy.
- Connection rate: connect, read one byte, close, from the LAN client, a
  bounded count within a bounded time: through the published port, through an
  asyncio proxy on the host forwarding to the container (what docker-proxy
  does), and routed direct.

Targets: published-port throughput >= 90% of the direct path from the same
place (LAN client: routed to the container; host: to the container's address);
connection rate >= 2x the proxy's. Client, server and proxy share the machine's cores, so figures
are CPU-bound and vary by ~5% between runs; compare within one run.
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

from benchlib import print_table

from nsbridge.sandbox import Sandbox

LAN_HOST, LAN_CLIENT = "192.0.2.1", "192.0.2.10"
IPERF_PORT, RR_PORT, PROXY_PORT = 5201, 7000, 7100

RR_SERVER = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(1024)\n"
    "while True:\n c,_=s.accept(); c.sendall(b'x'); c.close()"
)

RR_CLIENT = r"""
import socket, sys, time
host, port, n, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
done = failed = 0
t0 = time.perf_counter()
deadline = t0 + limit
while done < n and time.perf_counter() < deadline:
    try:
        s = socket.create_connection((host, port), timeout=2)
        if s.recv(1) != b'x':
            failed += 1
        s.close()
        done += 1
    except OSError:
        failed += 1
print(done / (time.perf_counter() - t0), failed)
"""

# A user-space TCP proxy as docker-proxy is one: asyncio Protocols (the faster of the
# asyncio designs measured: 14 Gbit/s vs 9.9 for asyncio streams), each side pausing the other when its buffer fills.
PROXY = r"""
import asyncio, sys
lip, lport, dip, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

class Side(asyncio.Protocol):
    def __init__(self):
        self.t = None; self.peer = None; self.pending = []
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        if self.peer is None:
            self.pending.append(d)
        else:
            self.peer.t.write(d)
    def eof_received(self):
        if self.peer is not None and self.peer.t.can_write_eof():
            self.peer.t.write_eof()
        return True
    def connection_lost(self, exc):
        if self.peer is not None:
            self.peer.t.close()
    def pause_writing(self):
        if self.peer is not None:
            self.peer.t.pause_reading()
    def resume_writing(self):
        if self.peer is not None:
            self.peer.t.resume_reading()

class Client(Side):
    def connection_made(self, t):
        super().connection_made(t)
        asyncio.get_running_loop().create_task(self.connect())
    async def connect(self):
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(Side, dip, dport)
        except OSError:
            self.t.close(); return
        up.peer, self.peer = self, up
        for d in self.pending:
            up.t.write(d)
        self.pending = []

async def main():
    srv = await asyncio.get_running_loop().create_server(Client, lip, lport, backlog=1024, reuse_address=True)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
"""


class Bench:
    def __init__(self, seconds: int, runs: int, conns: int, conn_seconds: float) -> None:
        self.seconds, self.runs, self.conns, self.conn_seconds = seconds, runs, conns, conn_seconds
        self.sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-bench-"))
        self.lan = f"{self.sb.name}-lan"
        self.procs: list[subprocess.Popen] = []

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        sb = self.sb
        sb.cli("network", "ls", check=True)  # creates the sandbox host
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True)  # noqa: E731
        run("ip", "netns", "add", self.lan)
        run("ip", "-n", self.lan, "link", "set", "lo", "up")
        run("ip", "-n", sb.name, "link", "add", "vlan", "type", "veth", "peer", "name", "eth0", "netns", self.lan)
        run("ip", "-n", sb.name, "addr", "add", f"{LAN_HOST}/24", "dev", "vlan")
        run("ip", "-n", sb.name, "link", "set", "vlan", "up")
        run("ip", "-n", self.lan, "addr", "add", f"{LAN_CLIENT}/24", "dev", "eth0")
        run("ip", "-n", self.lan, "link", "set", "eth0", "up")
        # the routed baseline: the LAN client reaches the containers through the host
        run("ip", "-n", self.lan, "route", "add", "172.17.0.0/16", "via", LAN_HOST)
        sb.cli("run", "-d", "--name", "srv", "-p", f"{IPERF_PORT}:{IPERF_PORT}", "--", "iperf3", "-s", "-p",
               str(IPERF_PORT), check=True)
        sb.cli("run", "-d", "--name", "rr", "-p", f"{RR_PORT}:{RR_PORT}", "--", "python3", "-c", RR_SERVER,
               str(RR_PORT), check=True)
        sb.cli("run", "-d", "--name", "cli", "alpine", check=True)
        self.srv_ip = self.ip_of("srv")
        self.rr_ip = self.ip_of("rr")
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", sb.name, "python3", "-c", PROXY, LAN_HOST, str(PROXY_PORT), self.rr_ip, str(RR_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", sb.name, "python3", "-c", PROXY, LAN_HOST, str(PROXY_PORT + 1), self.srv_ip,
             str(IPERF_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_port("srv", IPERF_PORT)
        self.wait_port("rr", RR_PORT)
        deadline = time.monotonic() + 5
        while len(sb.host_run("ss", "-ltnH", f"sport >= :{PROXY_PORT} and sport <= :{PROXY_PORT + 1}")
                  .stdout.strip().splitlines()) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the proxies did not start")
            time.sleep(0.05)

    def ip_of(self, name: str) -> str:
        return self.sb.cli("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name, check=True).stdout.strip()

    def wait_port(self, name: str, port: int) -> None:
        deadline = time.monotonic() + 10
        while not self.sb.cli("exec", name, "ss", "-ltnH", f"sport = :{port}").stdout.strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} is not listening on {port}")
            time.sleep(0.05)

    def close(self) -> list[str]:
        for p in self.procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "del", self.lan], capture_output=True)
        return self.sb.destroy()

    # -- measuring --------------------------------------------------------------------------------
    def where(self, place: str) -> list[str]:
        """argv prefix to run a command from PLACE: host, lan, or a container name."""
        if place == "host":
            return ["ip", "netns", "exec", self.sb.name]
        if place == "lan":
            return ["ip", "netns", "exec", self.lan]
        return self.sb.argv("exec", place)

    def iperf(self, place: str, ip: str, port: int) -> float:
        """Gbit/s received by one iperf3 run."""
        # -O 1: the first second (slow start) is not counted
        p = subprocess.run(self.where(place) + ["iperf3", "-c", ip, "-p", str(port), "-t", str(self.seconds), "-O", "1",
                                                "-J"],
                           env=self.sb.env, capture_output=True, text=True, timeout=self.seconds + 30)
        doc = json.loads(p.stdout or "{}")
        if "error" in doc or p.returncode != 0:
            raise RuntimeError(f"iperf3 from {place} to {ip}:{port}: {doc.get('error') or p.stderr.strip()}")
        time.sleep(0.3)
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9

    def conn_rate(self, ip: str, port: int) -> tuple[float, int]:
        """(connects/s, failures) of one run from the LAN client."""
        p = subprocess.run(self.where("lan") + ["python3", "-c", RR_CLIENT, ip, str(port), str(self.conns),
                                                str(self.conn_seconds)],
                           capture_output=True, text=True, timeout=self.conn_seconds + 30)
        if p.returncode != 0:
            raise RuntimeError(f"connection client to {ip}:{port}: {p.stderr.strip()}")
        rate, fails = p.stdout.split()
        time.sleep(0.5)
        return float(rate), int(fails)

    def interleaved(self, measure, paths: dict) -> dict:
        """Each path once per round, RUNS rounds (drift hits every path alike): medians."""
        got: dict = {name: [] for name in paths}
        for _ in range(self.runs):
            for name, args in paths.items():
                got[name].append(measure(*args))
        return got

    def run(self) -> int:
        self.setup()
        s = self.srv_ip
        # warm-up (ARP, conntrack, page cache of iperf3)
        subprocess.run(self.where("host") + ["iperf3", "-c", s, "-p", str(IPERF_PORT), "-t", "1"], capture_output=True)
        paths = {
            "container -> container, same bridge": ("cli", s, IPERF_PORT),
            "host -> container, direct (baseline)": ("host", s, IPERF_PORT),
            "LAN client -> container, routed, no NAT": ("lan", s, IPERF_PORT),
            "LAN client -> published port (DNAT)": ("lan", LAN_HOST, IPERF_PORT),
            "host -> 127.0.0.1 published port (DNAT)": ("host", "127.0.0.1", IPERF_PORT),
            "LAN client -> asyncio proxy (user space)": ("lan", LAN_HOST, PROXY_PORT + 1),
        }
        every = self.interleaved(self.iperf, paths)
        got = {name: statistics.median(v) for name, v in every.items()}
        base = got["host -> container, direct (baseline)"]
        routed = got["LAN client -> container, routed, no NAT"]
        rows = [[name, g, f"{min(every[name]):.1f}-{max(every[name]):.1f}", g / base,
                 g / routed if name.startswith("LAN") else ""] for name, g in got.items()]
        print_table(
            f"TCP throughput, one iperf3 stream, {self.seconds} s, median of {self.runs} (interleaved)",
            ["path", "Gbit/s", "[min-max]", "ratio to host->container direct", "ratio to LAN routed"],
            rows,
        )
        runs = self.interleaved(self.conn_rate, {
            "LAN client -> published port (DNAT)": (LAN_HOST, RR_PORT),
            "LAN client -> asyncio proxy (user space)": (LAN_HOST, PROXY_PORT),
            "LAN client -> container, routed, no NAT": (self.rr_ip, RR_PORT),
        })
        rates = {name: (statistics.median(r for r, _ in v), sum(f for _, f in v)) for name, v in runs.items()}
        proxy = rates["LAN client -> asyncio proxy (user space)"][0]
        print_table(
            f"connection rate: connect + 1-byte reply + close, up to {self.conns} connections or "
            f"{self.conn_seconds:g} s, median of {self.runs} (interleaved)",
            ["path", "connects/s", "[min-max]", "ratio to the proxy", "failed"],
            [[name, r, f"{min(x for x, _ in runs[name]):.0f}-{max(x for x, _ in runs[name]):.0f}", r / proxy, f]
             for name, (r, f) in rates.items()],
        )
        lan_pub = got["LAN client -> published port (DNAT)"]
        loop_pub = got["host -> 127.0.0.1 published port (DNAT)"]
        dnat_rate = rates["LAN client -> published port (DNAT)"][0]
        # each published path against the direct path from the same place
        checks = [
            ["LAN client: published port >= 90% of routed direct", f"{lan_pub / routed:.0%} "
             f"({lan_pub / base:.0%} of host direct)", "yes" if lan_pub / routed >= 0.9 else "NO"],
            ["host: 127.0.0.1 published port >= 90% of direct", f"{loop_pub / base:.0%}",
             "yes" if loop_pub / base >= 0.9 else "NO"],
            ["connection rate >= 2x the proxy's", f"{dnat_rate / proxy:.2f}x", "yes" if dnat_rate >= 2 * proxy else "NO"],
        ]
        print_table("targets", ["target", "measured", "met"], checks)
        return 0 if all(c[2] == "yes" for c in checks) else 1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py ports")
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 duration per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=3000, help="connections per connection-rate run (at most)")
    ap.add_argument("--conn-seconds", type=float, default=4.0, help="time limit per connection-rate run")
    a = ap.parse_args(argv)
    b = Bench(a.seconds, a.runs, a.conns, a.conn_seconds)
    print(f"# nsbridge ports benchmark, sandbox host {b.sb.name}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}")
    try:
        return b.run()
    finally:
        leaks = b.close()
        if leaks:
            print(f"bench: left behind: {leaks}", file=sys.stderr)
