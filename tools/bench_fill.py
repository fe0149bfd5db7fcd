"""Fill one bridge (issue 11, item 11): containers on one user network until
the engine refuses one, then check that the last one admitted reaches its
gateway and resolves a name, and that the refusal says why.

  sudo .venv/bin/python tools/bench.py fill [--max 1023] [--backlog N]

A Linux bridge takes 1023 ports, but a broadcast from one port is copied to
every other one onto the sending CPU's input backlog (the machine's
net.core.netdev_max_backlog, 1000 by default), the gateway's ARP answer
queued last: with more ports than that, a new container's ARP for its
gateway goes unanswered. The engine refuses such a container (drivers/
bridge.py check_room). --backlog N sets the machine's own (global, not per
network namespace) netdev_max_backlog for the run and restores it after,
saying so: that is the only way to see a full 1023-port bridge work.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from benchlib import print_table

from nsbridge.engine.containers import RunSpec
from nsbridge.errors import NsbridgeError
from nsbridge.sandbox import Sandbox

BACKLOG = "/proc/sys/net/core/netdev_max_backlog"


def softnet_drops() -> int:
    """Packets the kernel dropped for a full per-CPU backlog (all CPUs)."""
    with open("/proc/net/softnet_stat") as f:
        return sum(int(line.split()[1], 16) for line in f if line.strip())


def probe(e, name: str, cmd: list[str], tries: int = 3) -> tuple[bool, str]:
    """Run CMD in container NAME until it succeeds (ARP retries are slow)."""
    out = ""
    for _ in range(tries):
        r = e.exec(name, cmd, timeout=10)
        out = (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()
        out = out[-1] if out else ""
        if r.returncode == 0:
            return True, out
    return False, out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py fill")
    ap.add_argument("--max", type=int, default=1100, help="stop after this many runs even if none is refused")
    ap.add_argument("--backlog", type=int, help="set the machine's net.core.netdev_max_backlog for the run (restored)")
    a = ap.parse_args(argv)
    with open(BACKLOG) as f:
        saved = f.read().strip()
    if a.backlog:
        print(f"# NOTE: setting the machine's own net.core.netdev_max_backlog {saved} -> {a.backlog} "
              f"for this run (machine-wide; restored afterwards)")
        with open(BACKLOG, "w") as f:
            f.write(str(a.backlog))
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-fill-"))
    print(f"# nsbridge fill benchmark: one user network, sandbox host {sb.name}, "
          f"netdev_max_backlog {a.backlog or saved}")
    e = sb.engine()
    run_ms: list[float] = []
    refusal = "(none)"
    try:
        e.network_create("fill")
        gw = e.network("fill").ipam.gateway
        for i in range(a.max):
            t = time.perf_counter()
            try:
                e.run(RunSpec(image="alpine", name=f"c{i}", networks=["fill"]))
            except NsbridgeError as err:
                refusal = f"c{i}: {err}"
                break
            run_ms.append((time.perf_counter() - t) * 1000)
        n = len(run_ms)
        last = f"c{n - 1}"
        drops = softnet_drops()
        ping_ok, ping_out = probe(e, last, ["ping", "-c1", "-W2", gw])
        dns_ok, dns_out = probe(e, last, ["nslookup", "c0"])
        drops = softnet_drops() - drops
        first_ok, _ = probe(e, "c0", ["ping", "-c1", "-W2", gw])
        reset = time.perf_counter()
        e.close()
        leaks = sb.destroy()
        reset_s = time.perf_counter() - reset
        print_table(
            f"one bridge filled: {n} containers",
            ["what", "result"],
            [
                ["containers admitted", n],
                ["run, median ms (first 100)", statistics.median(run_ms[:100]) if run_ms else 0.0],
                ["run, median ms (last 100)", statistics.median(run_ms[-100:]) if run_ms else 0.0],
                [f"{last} pings its gateway {gw}", "yes" if ping_ok else f"NO ({ping_out})"],
                [f"{last} resolves c0", "yes" if dns_ok else f"NO ({dns_out})"],
                ["c0 pings its gateway", "yes" if first_ok else "NO"],
                ["backlog drops during the probes", drops],
                ["system reset of the full host, s", reset_s],
            ],
        )
        print(f"\nnext run: {refusal}")
        if leaks:
            print(f"bench: left behind: {leaks}", file=sys.stderr)
        return 0 if ping_ok and dns_ok and first_ok else 1
    finally:
        if a.backlog:
            with open(BACKLOG, "w") as f:
                f.write(saved)
            print(f"# restored net.core.netdev_max_backlog to {saved}")
        e.close()
        if sb.netns_names():
            sb.destroy()
