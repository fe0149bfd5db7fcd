"""Stand-ins benchmark (issue 7): what 100 web stand-ins (nginx -> busybox
httpd, the container's main process) cost in memory and start time, next to
the same number of idle containers and to a Python web server per container
(the obvious alternative) in the same run.

  sudo .venv/bin/python tools/bench.py standins [--count 100] [--python-count 10]

Memory is measured two ways: PSS summed over every process in the containers'
namespaces (what they add, shared pages divided among sharers), and the drop
of MemAvailable against the same number of idle containers (everything,
kernel included). The target is at most 200 MB for 100 web stand-ins.
Everything runs in a sandbox host of its own, removed at the end.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchlib import print_table

from nsbridge.engine.containers import RunSpec
from nsbridge.sandbox import Sandbox

BUDGET_MB = 200.0


def mem_available_kb() -> int:
    vals = []
    for _ in range(5):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    vals.append(int(line.split()[1]))
        time.sleep(0.1)
    return int(statistics.median(vals))


def settle() -> int:
    subprocess.run(["sync"], check=False)
    time.sleep(0.5)
    return mem_available_kb()


def pss_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in kB; (0, 0) if gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def kernel_kb(pid: int) -> int:
    """Kernel memory a process costs outside PSS: its page tables (VmPTE) and
    its kernel stack (16 kB on x86-64); task structures are left out."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmPTE:"):
                    return int(line.split()[1]) + 16
    except OSError:
        pass
    return 0


def container_pids(e, names: list[str]) -> dict[str, list[int]]:
    """Every process in each container's network namespace (one /proc scan)."""
    want: dict[tuple[int, int], str] = {}
    for n in names:
        c = e.container(n)
        st = os.stat(f"/run/netns/{c.netns}")
        want[(st.st_dev, st.st_ino)] = n
    out: dict[str, list[int]] = {n: [] for n in names}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        n = want.get((st.st_dev, st.st_ino))
        if n is not None:
            out[n].append(int(d))
    return out


def listening(pids: list[int], port: int) -> bool:
    hexport = f":{port:04X} "
    for pid in pids:
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as f:
                    for line in f.readlines()[1:]:
                        parts = line.split()
                        if hexport in parts[1] + " " and parts[3] == "0A":
                            return True
            except OSError:
                continue
    return False


def start(e, specs: list[RunSpec]) -> list[float]:
    times = []
    with e.session():
        for s in specs:
            t = time.perf_counter()
            e.run(s)
            times.append((time.perf_counter() - t) * 1000)
    return times


def remove(e, names: list[str]) -> None:
    with e.session():
        e.rm(names, force=True)


def wait_all_listening(e, names: list[str], port: int, timeout: float = 60) -> float:
    """Seconds until every container has its listening socket."""
    t = time.perf_counter()
    pending = set(names)
    while pending and time.perf_counter() - t < timeout:
        pids = container_pids(e, sorted(pending))
        pending = {n for n in pending if not listening(pids[n], port)}
        if pending:
            time.sleep(0.05)
    if pending:
        raise RuntimeError(f"{len(pending)} stand-ins not listening after {timeout}s")
    return time.perf_counter() - t


def probe(sb: Sandbox, ips: list[str], port: int, http: bool) -> int:
    """From the sandbox host, every address: GET / (a page naming its
    container) or a TCP connect (a banner naming it). Returns how many answered."""
    code = (
        "import socket, sys, urllib.request\n"
        "ok = 0\n"
        "port, http = int(sys.argv[1]), sys.argv[2] == 'http'\n"
        "for ip in sys.argv[3:]:\n"
        "    try:\n"
        "        if http:\n"
        "            body = urllib.request.urlopen(f'http://{ip}:{port}/', timeout=5).read().decode()\n"
        "        else:\n"
        "            with socket.create_connection((ip, port), timeout=5) as c:\n"
        "                body = c.makefile().readline()\n"
        "        ok += any(w in body for w in ('container', 'Directory listing'))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(ok)\n"
    )
    p = sb.host_run(sys.executable, "-c", code, str(port), "http" if http else "tcp", *ips, timeout=300)
    return int(p.stdout.strip() or 0)


def run_set(sb: Sandbox, e, specs: list[RunSpec], port: int | None, http: bool = True) -> dict:
    """Start SPECS, wait for their sockets, measure, probe, remove."""
    names = [s.name for s in specs]
    before = settle()
    times = start(e, specs)
    up = wait_all_listening(e, names, port) if port else 0.0
    after = settle()
    pids = container_pids(e, names)
    pss = rss = kern = nproc = 0
    for ps in pids.values():
        nproc += len(ps)
        for pid in ps:
            a, b = pss_kb(pid)
            pss += a
            rss += b
            kern += kernel_kb(pid)
    answered = ""
    if port:
        ips = [e.store.endpoints_of(e.container(n).id)[0].ip for n in names]
        answered = f"{probe(sb, ips, port, http)}/{len(names)}"
    remove(e, names)
    return {"n": len(specs), "nproc": nproc, "run_ms": statistics.median(times), "up": up, "pss": pss, "rss": rss,
            "kern": kern, "drop": before - after, "answered": answered}


def row(label: str, runs: list[dict], idle_drops: list[float]) -> list[object]:
    """One table row from several rounds: medians; `added` is the MemAvailable
    drop beyond the same number of idle containers in the same round."""
    n = runs[0]["n"]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    added = statistics.median(r["drop"] - idle_drops[i] * r["n"] for i, r in enumerate(runs)) if idle_drops else 0.0
    total = (med("pss") + med("kern")) / 1024
    return [
        label, n, runs[0]["nproc"], med("run_ms"), med("up"),
        med("pss") / 1024, med("kern") / 1024, total, total * 100 / n, med("rss") / 1024 / n,
        med("drop") / 1024, added / 1024 * 100 / n, runs[-1]["answered"],
    ]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py standins")
    ap.add_argument("--count", type=int, default=100, help="web/service stand-ins (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, medians reported (default 3)")
    ap.add_argument("--python-count", type=int, default=10, help="Python web servers for comparison (default 10)")
    a = ap.parse_args(argv)
    n = a.count
    idle_runs, web_runs, svc_runs, py_runs = [], [], [], []
    with Sandbox() as sb:
        e = sb.engine()
        try:
            e.ensure_ready()
            for _ in range(a.rounds):
                idle_runs.append(run_set(sb, e, [RunSpec(image="busybox", name=f"idle{i}") for i in range(n)], None))
                web_runs.append(run_set(sb, e, [RunSpec(image="nginx", name=f"web{i}") for i in range(n)], 80))
                svc_runs.append(run_set(sb, e, [RunSpec(image="redis", name=f"db{i}") for i in range(n)], 6379, http=False))
                if a.python_count:
                    py = [RunSpec(name=f"py{i}", cmd=["python3", "-m", "http.server", "80"]) for i in range(a.python_count)]
                    py_runs.append(run_set(sb, e, py, 80))
        finally:
            e.close()
    idle_per = [r["drop"] / r["n"] for r in idle_runs]
    rows = [
        row("idle (busybox, no process)", idle_runs, []),
        row("web: nginx -> busybox httpd", web_runs, idle_per),
        row("service: redis -> busybox nc", svc_runs, idle_per),
    ]
    if py_runs:
        rows.append(row("python3 -m http.server (alternative)", py_runs, idle_per))
    print_table(
        f"Stand-ins: memory and start time ({n} containers, median of {a.rounds} rounds; "
        f"budget {BUDGET_MB:.0f} MB per 100 web stand-ins)",
        ["what", "containers", "processes", "run ms (median)", "all listening s after last run", "PSS MB",
         "page tables+stacks MB", "total MB", "total per 100 MB", "RSS MB/container", "MemAvailable drop MB",
         "MemAvailable beyond idle, per 100 MB", "answered"],
        rows,
    )
    print("\ntotal = PSS of every process in the containers (shared busybox pages divided among them) + their "
          "page tables and kernel stacks.\nMemAvailable: the whole machine, kernel included; noisy when other work "
          "runs on it (context only).")
    web = rows[1]
    added = float(web[8])
    verdict = "within" if added <= BUDGET_MB else "OVER"
    print(f"100 web stand-ins add {added:.1f} MB: {verdict} the {BUDGET_MB:.0f} MB budget")
    if py_runs:
        ratio = float(rows[3][7]) / a.python_count / max(float(web[7]) / n, 1e-9)
        print(f"a Python web server per container costs {ratio:.0f}x a busybox stand-in")
    return 0 if added <= BUDGET_MB else 1
