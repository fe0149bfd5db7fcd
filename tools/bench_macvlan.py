"""The macvlan row of `bench.py core` (issue 12): in the same run, on a LAN
namespace whose veth is the sandbox host's eth0 (nsbridge.sandbox.Lan),

- the engine's cost per container on a macvlan network versus a bridge
  network (library API in one session, create and remove, median of rounds);
- TCP throughput from a container to a LAN machine with iperf3 (Debian's,
  installed by setup.sh): over macvlan (the container is on the LAN) versus
  over a bridge with NAT (veth, bridge, forwarding, masquerade, the host's eth0).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time

from benchlib import print_table

from nsbridge.sandbox import Lan, Sandbox


def _per_container(e, net: str, prefix: str, n: int, rounds: int) -> tuple[float, float]:
    from bench_core import engine_create, engine_remove

    made, gone = [], []
    for r in range(rounds + 1):  # the first round warms up, not counted
        m, g = engine_create(e, net, prefix, n), engine_remove(e, prefix, n)
        time.sleep(0.2)  # the kernel frees removed namespaces in the background
        if r:
            made.append(m)
            gone.append(g)
    return statistics.median(made), statistics.median(gone)


def _iperf(e, ctr: str, server: str, seconds: int) -> float:
    """Gbit/s the LAN machine received from CTR (iperf3 client in the container)."""
    r = e.exec(ctr, ["iperf3", "-c", server, "-t", str(seconds), "-J"], timeout=seconds + 30)
    if r.returncode != 0:
        raise RuntimeError(f"iperf3 in {ctr}: {r.stdout.decode()[-300:]} {r.stderr.decode()[-300:]}")
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def macvlan_rows(sb: Sandbox, n: int = 10, rounds: int = 3, seconds: int = 3) -> None:
    import shutil

    e = sb.engine()
    e.network_ls()  # the sandbox host exists
    with Lan(sb.name, prefix="192.168.78") as lan:
        e.network_create("mvbench", driver="macvlan", subnet=lan.subnet, gateway=lan.machine,
                         ip_range=f"{lan.prefix}.128/25", options={"parent": "eth0"})
        e.network_create("brbench", subnet="10.97.0.0/16")
        rows: list[list[object]] = []
        mv, mv_rm = _per_container(e, "mvbench", "mv", n, rounds)
        br, br_rm = _per_container(e, "brbench", "br", n, rounds)
        label = f"N={n}, median of {rounds}"
        rows.append([f"create, {label}", mv, br, mv / br])
        rows.append([f"remove, {label}", mv_rm, br_rm, mv_rm / br_rm if br_rm else 0.0])
        if shutil.which("iperf3"):
            from nsbridge.engine.containers import RunSpec

            e.run(RunSpec(name="mvperf", networks=["mvbench"]))
            e.run(RunSpec(name="brperf", networks=["brbench"]))
            server = subprocess.Popen(["ip", "netns", "exec", lan.name, "iperf3", "-s"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                tput: dict[str, list[float]] = {"mv": [], "br": []}
                for _ in range(rounds):  # interleaved: both sides see the same machine
                    tput["mv"].append(_iperf(e, "mvperf", lan.machine, seconds))
                    tput["br"].append(_iperf(e, "brperf", lan.machine, seconds))
            finally:
                server.kill()
                server.wait()
            m, b = statistics.median(tput["mv"]), statistics.median(tput["br"])
            rows.append([f"TCP container -> LAN, Gbit/s (iperf3 {seconds} s, median of {rounds})", m, b, m / b])
            e.rm(["mvperf", "brperf"], force=True)
        else:
            rows.append(["TCP container -> LAN: not measured (no iperf3: sudo ./setup.sh bench installs it)", 0.0, 0.0, 0.0])
        e.network_rm(["mvbench", "brbench"])
    print_table("macvlan vs bridge (+NAT), same run: engine ms per container, and throughput to a LAN machine",
                ["operation", "macvlan", "bridge", "ratio"], rows)
