"""Flat to 10,000 containers (issue 15): `tools/bench.py scale --part flat`.

  sudo .venv/bin/python tools/bench.py scale --part flat [--containers 10000] [--networks 12]
                                                         [--profile FILE] [--phases]

One library session creates the containers over the user networks. Printed:
the ms per container around 100, 1,000, 5,000 and 10,000 containers (each
median of the last tenth before the mark) and its ratio to the cost at 100
(target at 5,000: at most 1.3x); the API total (target for 10,000: < 60 s);
a DNS query from the last container made, for the first one's name; `ps -a`
and `network ls` through the CLI on the full host next to the same host before
its first container (target: at most 1.5x); `system reset -f` of the full host
(target: < 30 s). --profile writes a cProfile of the creation loop (read it
with `python3 -m pstats FILE`); --phases times the main steps of each `run`
(namespace, veth, address, files, record) at the same marks.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator

from benchlib import median_ms, nsbridge_entry, print_table

from nsbridge.engine.containers import RunSpec
from nsbridge.sandbox import Sandbox

MARKS = (100, 1000, 5000, 10000)


def around(values: list[float], mark: int) -> float:
    """Median of the last tenth (at least 10) before MARK: the cost with about MARK present."""
    lo = max(0, mark - max(10, mark // 10))
    return statistics.median(values[lo:mark])


#: Engine methods timed besides the Plan's steps (--phases)
TIMED = ("_validate_spec", "_new_container", "_dns_handover")


@contextlib.contextmanager
def phase_timer(into: dict[str, list[float]]) -> Iterator[None]:
    """Time the named steps of every Plan (engine/plan.py), and the Engine
    methods of TIMED, while the block runs."""
    from nsbridge.engine import plan
    from nsbridge.engine.core import Engine

    def timed(name: str, fn):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                into.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return wrapper

    orig_step = plan.Plan.step
    orig = {m: getattr(Engine, m) for m in TIMED}
    plan.Plan.step = lambda self, name, do, undo=None: timed(name, orig_step)(self, name, do, undo)
    for m, fn in orig.items():
        setattr(Engine, m, timed(m, fn))
    try:
        yield
    finally:
        plan.Plan.step = orig_step
        for m, fn in orig.items():
            setattr(Engine, m, fn)


def cli_ms(sb: Sandbox, args: list[str], runs: int) -> float:
    cli, _ = nsbridge_entry()
    return median_ms(lambda: subprocess.run([cli, *args], env=sb.env, capture_output=True, check=True), runs)


def flat(n: int, nets: int, profile: str | None, phases: bool, runs: int = 7) -> int:
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-flat-"))
    print(f"# flat to {n} containers over {nets} networks, one library session, sandbox host {sb.name}")
    e = sb.engine()
    marks = [m for m in MARKS if m <= n] + ([] if n in MARKS else [n])
    reset_s = None
    try:
        for i in range(nets):
            e.network_create(f"fnet{i}")
        empty = {v: cli_ms(sb, v.split(), runs) for v in ("ps -a", "network ls")}
        run_ms: list[float] = []
        cpu_ms: list[float] = []  # this process's CPU time: less swayed by a shared machine than wall time
        steps: dict[str, list[float]] = {}
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
        t0 = time.perf_counter()
        with e.session(), (phase_timer(steps) if phases else contextlib.nullcontext()):
            if prof:
                prof.enable()
            for i in range(n):
                s, sc = time.perf_counter(), time.process_time()
                e.run(RunSpec(name=f"f{i}", networks=[f"fnet{i % nets}"]))
                run_ms.append((time.perf_counter() - s) * 1000)
                cpu_ms.append((time.process_time() - sc) * 1000)
            if prof:
                prof.disable()
        total = time.perf_counter() - t0
        if prof:
            prof.dump_stats(profile)
        base = around(run_ms, marks[0])
        cbase = around(cpu_ms, marks[0])
        rows = [[f"{m} containers", around(run_ms, m), around(run_ms, m) / base, around(cpu_ms, m),
                 around(cpu_ms, m) / cbase] for m in marks]
        print_table("ms per container (library API, one session), median of the last tenth before each mark",
                    ["host holds", "ms per run", f"x the cost at {marks[0]}", "CPU ms (this process)", "x"], rows)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        if phases:
            names = sorted(k for k in steps if len(steps[k]) == n)
            print_table("main steps of a run, ms (same marks)", ["step", *[str(m) for m in marks]],
                        [[k, *[around(steps[k], m) for m in marks]] for k in names])
        # the last container asks its resolver for the first one's name (both on a user network)
        last, first = f"f{n - 1}", f"f{(n - 1) % nets}"
        t = time.perf_counter()
        dns = sb.cli("exec", last, "dig", "+short", "+time=2", "+tries=1", first, timeout=30)
        dns_ms = (time.perf_counter() - t) * 1000
        full = {v: cli_ms(sb, v.split(), runs) for v in empty}
        cpu_s, rss_mb = resolver_use(e)
        e.close()
        t = time.perf_counter()
        sb.cli("system", "reset", "-f", check=True, timeout=900)
        reset_s = time.perf_counter() - t
        rows = [
            [f"API: {n} containers, one session (s)", total, "< 60" if n >= 10000 else ""],
            [f"DNS from {last} for {first}: {dns.stdout.strip() or dns.stderr.strip()[:40] or 'no answer'}"
             f" (whole `exec dig`, ms)", dns_ms, "answers"],
            *[[f"CLI `{v}`: empty host -> {n} containers (ms, x)", f"{empty[v]:.1f} -> {full[v]:.1f}",
               f"{full[v] / empty[v]:.2f}x (<= 1.5x)"] for v in empty],
            [f"resolvers: CPU seconds (all {nets}) / largest RSS (MB)", f"{cpu_s:.1f} / {rss_mb:.1f}", ""],
            [f"`system reset -f` of the {n}-container host (s)", reset_s, "< 30"],
        ]
        print_table("totals (the machine may be shared: figures are indicative)", ["what", "figure", "target"], rows)
    finally:
        e.close()
        leaks = sb.destroy() if reset_s is None else _leaks(sb)
        if leaks:
            print(f"bench: left behind: {leaks}")
    return 0


def resolver_use(e) -> tuple[float, float]:
    """CPU time the resolvers used so far (all of them) and the largest one's RSS."""

    tick = os.sysconf("SC_CLK_TCK")
    cpu, rss = 0.0, 0.0
    for pid, *_ in e.store.resolvers().values():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss = max(rss, kb / 1024)
    return cpu, rss


def _leaks(sb: Sandbox) -> list[str]:
    """After the timed reset: what is still there (nothing, if reset did its work)."""
    import shutil

    leaks = [f"netns {x}" for x in sb.netns_names()] + [f"process {p}" for p in sb.processes()]
    if os.path.exists(sb.root):
        leaks.append(f"state root {sb.root}")
        shutil.rmtree(sb.root, ignore_errors=True)
    return leaks
