"""Core benchmark (issue 3): the engine's control plane next to the same
kernel work done by `ip -batch` in the same run, and whole-process CLI medians.

  sudo .venv/bin/python tools/bench.py core [--sizes 1,10,100,500] [--runs 15]

Everything runs in a sandbox host of its own, removed at the end.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import median_ms, nsbridge_entry, print_table

from nsbridge.engine.containers import RunSpec
from nsbridge.sandbox import Sandbox


def _ip_batch(ns: str | None, lines: list[str]) -> None:
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    p = subprocess.run(argv, input="\n".join(lines) + "\n", text=True, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")


def ip_batch_create(host: str, bridge: str, prefix: str, n: int, base: str = "10.99") -> float:
    """N containers by ip -batch: per container a netns, a veth with its peer
    in place (named, with its MAC), bridge port up, then inside: address,
    eth0 and lo up, default route. Returns ms per container."""
    t = time.perf_counter()
    # `netns add` under `ip -n` would bind the new name in ip's private mount namespace only
    _ip_batch(None, [f"netns add {prefix}{i}" for i in range(n)])
    host_lines = []
    for i in range(n):
        c = f"{prefix}{i}"
        a, b = divmod(i + 2, 256)
        host_lines += [
            f"link add vb{i} type veth peer name eth0 address 02:42:0a:63:{a:02x}:{b:02x} netns {c}",
            f"link set vb{i} master {bridge} up",
        ]
    _ip_batch(host, host_lines)
    for i in range(n):
        a, b = divmod(i + 2, 256)
        _ip_batch(
            f"{prefix}{i}",
            [
                f"addr add {base}.{a}.{b}/16 dev eth0",
                "link set eth0 up",
                "link set lo up",
                f"route add default via {base}.0.1",
            ],
        )
    return (time.perf_counter() - t) * 1000 / n


def ip_batch_remove(prefix: str, n: int) -> float:
    t = time.perf_counter()
    _ip_batch(None, [f"netns del {prefix}{i}" for i in range(n)])
    return (time.perf_counter() - t) * 1000 / n


def engine_create(e, net: str, prefix: str, n: int) -> float:
    t = time.perf_counter()
    with e.session():
        for i in range(n):
            e.run(RunSpec(name=f"{prefix}{i}", networks=[net]))
    return (time.perf_counter() - t) * 1000 / n


def engine_remove(e, prefix: str, n: int) -> float:
    t = time.perf_counter()
    with e.session():
        for i in range(n):
            e.rm([f"{prefix}{i}"], force=True)
    return (time.perf_counter() - t) * 1000 / n


def reps(n: int) -> int:
    """Rounds for a row of N containers: 15 for one, 5 for ten, 3 from 100 on."""
    return 15 if n == 1 else 5 if n < 100 else 3


def wait_ports_gone(sb: Sandbox, bridge: str, timeout: float = 30) -> None:
    """The kernel frees veths of removed namespaces asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sb.host_run("ip", "-o", "link", "show", "master", bridge).stdout
        if not out.strip():
            return
        time.sleep(0.05)


def control_plane(sb: Sandbox, sizes: list[int]) -> None:
    e = sb.engine()
    net = e.network_create("benchnet", subnet="10.98.0.0/16")
    sb.host_run("ip", "link", "add", "brb", "type", "bridge", check=True)
    sb.host_run("ip", "addr", "add", "10.99.0.1/16", "dev", "brb", check=True)
    sb.host_run("ip", "link", "set", "brb", "up", check=True)
    rows = []
    per = {}
    for n in sizes:
        # Each row is the median of several rounds taken back to back (steady
        # state, as a script creating containers sees it). Each side runs its own
        # rounds, so that neither pays for the other's namespaces, which the
        # kernel tears down in the background; small N get a warm-up round, not
        # counted.
        rounds = reps(n)
        samples: dict[str, list[float]] = {"eng": [], "eng_rm": [], "ipb": [], "ipb_rm": []}
        for key, create, remove, bridge in (
            ("eng", lambda: engine_create(e, "benchnet", "c", n), lambda: engine_remove(e, "c", n), net.bridge),
            ("ipb", lambda: ip_batch_create(sb.name, "brb", f"{sb.name}-b", n),
             lambda: ip_batch_remove(f"{sb.name}-b", n), "brb"),
        ):
            for r in range(rounds + (1 if n < 100 else 0)):
                made, gone = create(), remove()
                wait_ports_gone(sb, bridge)
                if n >= 100 or r > 0:
                    samples[key].append(made)
                    samples[key + "_rm"].append(gone)
        eng, eng_rm, ipb, ipb_rm = (statistics.median(samples[k]) for k in ("eng", "eng_rm", "ipb", "ipb_rm"))
        per[n] = eng
        label = f"N={n}" + (f", median of {rounds}" if rounds > 1 else "")
        rows.append([f"create, {label}", eng, ipb, eng / ipb])
        rows.append([f"remove, {label}", eng_rm, ipb_rm, eng_rm / ipb_rm if ipb_rm else 0.0])
        if n == max(sizes):
            rows.append([f"total for N={n} (library API, s)", eng * n / 1000, ipb * n / 1000, eng / ipb])
    if 10 in per and max(sizes) in per:
        rows.append([f"growth: per-container at {max(sizes)} / at 10", per[max(sizes)] / per[10], 0.0, 0.0])
    print_table("control plane, ms per container (engine vs the same kernel work by ip -batch)",
                ["operation", "engine ms", "ip -batch ms", "ratio"], rows)
    # network create + rm, connect/disconnect
    runs = 10
    rows = []

    def net_cycle() -> None:
        e.network_create("tmpnet", subnet="10.97.0.0/24")
        e.network_rm(["tmpnet"])

    rules = "*filter\n-A FORWARD -i brx -o brx -j ACCEPT\n-A FORWARD -i brx ! -o brx -j ACCEPT\nCOMMIT\n"

    def ip_net_cycle() -> None:
        _ip_batch(sb.name, ["link add brx type bridge", "addr add 10.97.1.1/24 dev brx", "link set brx up"])
        sb_restore(sb, rules)
        sb_restore(sb, rules.replace("-A FORWARD", "-D FORWARD"))
        _ip_batch(sb.name, ["link del brx"])

    a, b = median_ms(net_cycle, runs), median_ms(ip_net_cycle, runs)
    rows.append(["network create + rm", a, b, a / b])
    with e.session():
        e.run(RunSpec(name="conn1"))
    e.network_create("othernet", subnet="10.96.0.0/24")

    def conn_cycle() -> None:
        e.connect("othernet", "conn1")
        e.disconnect("othernet", "conn1")

    cns = e.container("conn1").netns

    def ip_conn_cycle() -> None:
        _ip_batch(sb.name, [f"link add vcx type veth peer name eth1 netns {cns}", f"link set vcx master {net.bridge} up"])
        _ip_batch(cns, ["addr add 10.98.200.1/16 dev eth1", "link set eth1 up", "link del eth1"])

    a, b = median_ms(conn_cycle, runs), median_ms(ip_conn_cycle, runs)
    rows.append(["connect + disconnect", a, b, a / b])
    e.rm(["conn1"], force=True)
    e.network_rm(["othernet", "benchnet"])
    e.close()
    print_table("network operations, ms (median of 10)", ["operation", "engine ms", "ip -batch ms", "ratio"], rows)


def sb_restore(sb: Sandbox, batch: str) -> None:
    subprocess.run(["ip", "netns", "exec", sb.name, "iptables-restore", "--noflush"], input=batch, text=True, check=True)


def whole_process(sb: Sandbox, runs: int) -> None:
    argv0 = [nsbridge_entry()[0]]
    env = sb.env
    subprocess.run(argv0 + ["run", "-d", "--name", "probe", "alpine"], env=env, check=True, capture_output=True)

    def t(args: list[str]) -> float:
        return median_ms(lambda: subprocess.run(argv0 + args, env=env, capture_output=True), runs)

    counter = iter(range(10**6))

    def run_rm() -> tuple[float, float]:
        runs_ms, rm_ms = [], []
        for _ in range(runs):
            name = f"r{next(counter)}"
            s = time.perf_counter()
            subprocess.run(argv0 + ["run", "-d", "--name", name, "alpine"], env=env, capture_output=True, check=True)
            runs_ms.append((time.perf_counter() - s) * 1000)
            s = time.perf_counter()
            subprocess.run(argv0 + ["rm", "-f", name], env=env, capture_output=True, check=True)
            rm_ms.append((time.perf_counter() - s) * 1000)
        runs_ms.sort()
        rm_ms.sort()
        return runs_ms[len(runs_ms) // 2], rm_ms[len(rm_ms) // 2]

    run_ms, rm_ms = run_rm()
    rows = [
        ["network ls", t(["network", "ls"]), 40.0, 34.0],
        ["ps -a", t(["ps", "-a"]), 40.0, 29.0],
        ["inspect", t(["inspect", "probe"]), 40.0, 25.0],
        ["exec NAME true", t(["exec", "probe", "true"]), 30.0, 104.0],
        ["run -d", run_ms, 200.0, 453.0],
        ["rm -f", rm_ms, 100.0, 173.0],
    ]
    print_table(
        f"whole-process CLI medians, ms ({runs} runs; {argv0[0]})",
        ["command", "nsbridge ms", "target ms", "docker (reference README) ms"],
        rows,
    )
    print("\n(Docker on the same machine, side by side: tools/bench.py docker)")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py core")
    ap.add_argument("--sizes", default="1,10,100,500")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument(
        "--state-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where the sandbox's state root goes (default /dev/shm, a tmpfs: on these VMs the disk is "
             "rate-limited and creating a file costs 0.02 to 4 ms depending on the moment; give /tmp to see it)",
    )
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",")]
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-bench-", dir=a.state_dir))
    print(f"# nsbridge core benchmark, sandbox host {sb.name}, state root {sb.root}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    try:
        control_plane(sb, sizes)
        whole_process(sb, a.runs)
    finally:
        for n in sizes:
            subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {sb.name}-b{i}\n" for i in range(n)),
                           text=True, capture_output=True)
        leaks = sb.destroy()
        if leaks:
            print(f"bench: left behind: {leaks}", file=sys.stderr)
    return 0
