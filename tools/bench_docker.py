"""nsbridge next to a real Docker daemon (issue 15): the same CLI verbs, interleaved, whole-process
wall time of each invocation, medians and the ratio nsbridge / Docker against the issue's targets
(mutating verbs <= 0.5x, reading verbs <= 1.0x), with Python's bare start as the floor, then what
each nsbridge verb's time is made of (`python3 -X importtime`).

  sudo .venv/bin/python tools/bench.py docker [--rounds 12] [--start-docker] [--state-dir DIR]

Docker: the daemon at DOCKER_HOST, or with --start-docker one that this benchmark starts in network
namespaces of its own (tools/docker_netns.py) and stops afterwards. The default socket is never used
on its own: a daemon there lives in this machine's namespace, and the benchmark would add bridges and
rules to it. No daemon: Docker's column says "not measured", nsbridge is measured alone.
nsbridge: its installed entry point (the one next to this Python), against a sandbox host whose
state root is on the filesystem of nsbridge's default /var/lib/nsbridge, as a user has it.
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import importcost
from benchlib import nsbridge_entry, print_table
from docker_netns import DockerUnavailable, NetnsDocker, docker_cli, docker_env, ensure_image, server_version

from nsbridge.record import field, record
from nsbridge.sandbox import Sandbox

DOCKER_IMAGE = "nsbridge-bench/busybox"  # imported from the host's busybox when the daemon lacks it
READ, MUTATE = "read", "mutating"
TARGET = {READ: 1.0, MUTATE: 0.5}


@record
class Verb:
    label: str
    kind: str
    args: Callable[[str, int], list[str]]  # (name prefix, round) -> CLI arguments, the same on both sides


# In the order; round r's run -d .. rm -f act on container Pc<r>, network create/rm on Pn<r>.
VERBS = (
    Verb("network ls", READ, lambda p, r: ["network", "ls"]),
    Verb("ps -a", READ, lambda p, r: ["ps", "-a"]),
    Verb("inspect CTR", READ, lambda p, r: ["inspect", f"{p}probe"]),
    Verb("network create", MUTATE, lambda p, r: ["network", "create", f"{p}n{r}"]),
    Verb("network rm", MUTATE, lambda p, r: ["network", "rm", f"{p}n{r}"]),
    Verb("run -d", MUTATE, lambda p, r: ["run", "-d", "--name", f"{p}c{r}", "--network", f"{p}net", "IMAGE", "sleep", "1d"]),
    Verb("network connect", MUTATE, lambda p, r: ["network", "connect", f"{p}net2", f"{p}c{r}"]),
    Verb("network disconnect", MUTATE, lambda p, r: ["network", "disconnect", f"{p}net2", f"{p}c{r}"]),
    Verb("exec NAME true", READ, lambda p, r: ["exec", f"{p}probe", "true"]),
    Verb("rm -f", MUTATE, lambda p, r: ["rm", "-f", f"{p}c{r}"]),
)


@record
class Side:
    """One CLI with what it needs to reach its engine; each call is timed as a whole process."""
    label: str
    argv0: list[str]
    env: dict[str, str]
    image: str
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def call(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        argv = self.argv0 + [self.image if a == "IMAGE" else a for a in args]
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.label} {' '.join(args)}: {p.stderr.strip()[-300:]}")
        return p

    def timed(self, key: str, args: list[str]) -> None:
        t = time.perf_counter()
        p = self.call(args, check=False)
        ms = (time.perf_counter() - t) * 1000
        if p.returncode != 0:
            self.errors.setdefault(key, (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:120])
        else:
            self.times.setdefault(key, []).append(ms)

    def median(self, key: str) -> float | None:
        return statistics.median(self.times[key]) if key not in self.errors and self.times.get(key) else None

    def count(self, what: str) -> int:
        return len(self.call([what, "ls", "-aq"] if what == "container" else [what, "ls", "-q"]).stdout.split())


def fs_of(path: str) -> str:
    """The filesystem type under PATH (findmnt names ext4 where `stat -f` says ext2/ext3)."""
    for argv in (["findmnt", "-no", "FSTYPE", "-T", path], ["stat", "-f", "-c", "%T", path]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout.split()
        except FileNotFoundError:
            continue
        if out:
            return out[-1]  # stacked mounts: the last is the one in view
    return "?"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def connect_docker(a: argparse.Namespace, started: list[NetnsDocker]) -> tuple[str, str]:
    """(DOCKER_HOST, "") when a daemon answers, else ("", why Docker is not measured)."""
    if a.start_docker:
        d = NetnsDocker(a.docker_name)
        try:
            if d.start():
                started.append(d)
        except DockerUnavailable as e:
            return "", f"no daemon reachable at {d.sock}: {e}"
        return d.sock, ""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return "", ("no daemon reachable at DOCKER_HOST: it is unset, and the default socket is not used, since "
                    "its daemon works in this machine's own network; pass --start-docker or set DOCKER_HOST")
    if not docker_cli():
        return "", f"no daemon reachable at {host}: no docker CLI on PATH"
    if not server_version(host):
        return "", f"no daemon reachable at {host}"
    return host, ""


def prepare(sides: list[Side], p: str) -> str:
    """Two user networks and an idle container on each side, then the same number of networks and
    containers on both (the side with fewer gets idle extras). Returns what is present."""
    for s in sides:
        s.call(["network", "create", f"{p}net"])
        s.call(["network", "create", f"{p}net2"])
        s.call(["run", "-d", "--name", f"{p}probe", "--network", f"{p}net", "IMAGE", "sleep", "1d"])
    for what, make in (("network", lambda i: ["network", "create", f"{p}pad{i}"]),
                       ("container", lambda i: ["run", "-d", "--name", f"{p}pad{i}", "IMAGE", "sleep", "1d"])):
        counts = [s.count(what) for s in sides]
        for s, n in zip(sides, counts):
            for i in range(max(counts) - n):
                s.call(make(i))
    counts = [(s.count("network"), s.count("container")) for s in sides]
    assert len(set(counts)) == 1, f"unequal footing: {counts}"
    return f"{counts[0][0]} networks and {counts[0][1]} container(s) on each side ({counts[0][1] + 1} from run -d to rm -f)"


def rounds(sides: list[Side], p: str, n: int, floors: list[tuple[Side, list[str]]]) -> None:
    """Round r: each verb on both sides, back to back; round by round, which side goes first alternates."""
    for r in range(n):
        order = sides if r % 2 == 0 else sides[::-1]
        for v in VERBS:
            for s in order:
                s.timed(v.label, v.args(p, r))
        for s, argv in (floors if r % 2 == 0 else floors[::-1]):
            t = time.perf_counter()
            subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
            s.times.setdefault("floor", []).append((time.perf_counter() - t) * 1000)


def cleanup_docker(s: Side, p: str) -> None:
    """Remove what this run made on the daemon (names start with the run's own prefix)."""
    names = s.call(["ps", "-a", "--filter", f"name={p}", "--format", "{{.Names}}"], check=False).stdout.split()
    if names:
        s.call(["rm", "-f", *names], check=False)
    nets = s.call(["network", "ls", "--filter", f"name={p}", "--format", "{{.Name}}"], check=False).stdout.split()
    if nets:
        s.call(["network", "rm", *nets], check=False)


def fmt(ms: float | None, why: str = "") -> str:
    return f"{ms:.1f}" if ms is not None else why


def verb_table(dock: Side | None, nsb: Side, why_not: str, floor_names: tuple[str, str]) -> None:
    rows, met = [], 0
    for v in VERBS:
        n = nsb.median(v.label)
        d = dock.median(v.label) if dock else None
        ratio = n / d if n is not None and d else None
        ok = ratio is not None and ratio <= TARGET[v.kind]
        met += ok
        rows.append([v.label, v.kind, fmt(d, "error" if dock else "not measured"), fmt(n, "error"),
                     f"{ratio:.2f}x" if ratio is not None else "-",
                     f"<= {TARGET[v.kind]:.1f}x", ("yes" if ok else "NO") if ratio is not None else "-"])
    d_floor = dock.median("floor") if dock else None
    n_floor = nsb.median("floor")
    rows.append([f"floor: {floor_names[1]} / {floor_names[0]}", "start", fmt(d_floor, "not measured"), fmt(n_floor),
                 f"{n_floor / d_floor:.2f}x" if d_floor and n_floor else "-", "-", "-"])
    runs = len(nsb.times.get("floor", []))
    print_table(f"whole-process CLI wall time, medians of {runs} interleaved rounds, ms",
                ["verb", "kind", "docker ms", "nsbridge ms", "nsbridge/docker", "target", "met"], rows)
    if dock:
        print(f"\ntargets met on {met} of {len(VERBS)} verbs")
    else:
        print(f"\ndocker: not measured ({why_not})")
    for s in (dock, nsb):
        for k, e in (s.errors.items() if s else ()):
            print(f"{s.label} {k}: failed (not counted): {e}")


def import_table(nsb: Side, python: str, entry: str, p: str, runs: int) -> None:
    """Each verb again under `-X importtime` (median of RUNS): what its imports cost beyond Python's own
    start-up imports (site, encodings, .pth hooks: those are in the floor), and the rest."""
    startup = {i.name for i in importcost.parse(
        subprocess.run([python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True).stderr)}
    probe = Side("nsbridge -X importtime", [python, "-X", "importtime", entry], nsb.env, nsb.image)
    found: dict[str, list[list[float]]] = {}
    per_pkg: dict[str, list[dict[str, float]]] = {}
    for i in range(runs):
        for v in VERBS:
            imps = importcost.parse(probe.call(v.args(p, 1000 + i)).stderr)
            found.setdefault(v.label, []).append([
                importcost.total_ms([x for x in imps if x.name not in startup]),
                importcost.pulled_in_ms(imps, lambda n: n == "nsbridge.cli.main"),
                importcost.pulled_in_ms(imps, lambda n: n.split(".")[0] == "pyroute2"),
            ])
            per_pkg.setdefault(v.label, []).append(dict(importcost.heaviest(
                imps, 50, lambda n: n in startup or n.split(".")[0] == "pyroute2")))
    floor = nsb.median("floor") or 0.0
    rows = []
    for v in VERBS:
        total, cli_main, pyroute2 = (statistics.median(col) for col in zip(*found[v.label]))
        pkgs = {k for d in per_pkg[v.label] for k in d}
        heavy = sorted(((k, statistics.median(d.get(k, 0.0) for d in per_pkg[v.label])) for k in pkgs),
                       key=lambda kv: -kv[1])[:4]
        wall = nsb.median(v.label)
        rows.append([v.label, fmt(wall, "-"), fmt(floor), fmt(total), fmt(cli_main), fmt(pyroute2),
                     fmt(wall - floor - total if wall is not None else None, "-"),
                     ", ".join(f"{k} {ms:.1f}" for k, ms in heavy)])
    print_table(f"where nsbridge's time goes, ms (imports: python -X importtime, median of {runs} runs)",
                ["verb", "wall", "python start", "imports", "nsbridge.cli.main", "pyroute2 (wherever)",
                 "rest: the verb's work", "own import time by package (pyroute2's left out)"], rows)
    print("\nwall: median of the rounds above; python start: the floor above (python -c pass); imports: all but "
          "Python's own start-up imports (-X importtime's bookkeeping inflates them a little); nsbridge.cli.main "
          "and pyroute2: each with all it imported (pyroute2 is in nsbridge.cli.main's figure too when it comes "
          "in through it); rest = wall - python start - imports: the verb's own work and exit.")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py docker")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--start-docker", action="store_true",
                    help="start Debian's dockerd in network namespaces of its own for this run, stop it afterwards")
    ap.add_argument("--docker-name", default="nsbridge-bench-docker", help="names of that daemon's namespaces, socket, dirs")
    ap.add_argument("--state-dir", default="/var/lib",
                    help="where the sandbox's state root goes (default /var/lib: the filesystem of nsbridge's default "
                         "state root /var/lib/nsbridge, and of Docker's /var/lib/docker; /dev/shm: a tmpfs)")
    ap.add_argument("--import-runs", type=int, default=3, help="runs of each verb under -X importtime (0: none)")
    a = ap.parse_args(argv)
    entry, python = nsbridge_entry()
    started: list[NetnsDocker] = []
    p = f"nsbb{secrets.token_hex(2)}-"
    sb = Sandbox(root=tempfile.mkdtemp(prefix="nsbridge-bench-", dir=a.state_dir))
    nsb = Side("nsbridge", [entry], sb.env, "busybox")
    dock: Side | None = None
    try:
        host, why_not = connect_docker(a, started)
        cli = docker_cli()
        if host:
            try:
                ensure_image(host, DOCKER_IMAGE)
                dock = Side("docker", [cli], docker_env(host), DOCKER_IMAGE)
            except DockerUnavailable as e:
                why_not = f"the daemon at {host} has no image to run: {e}"
        print(f"# nsbridge vs Docker, CLI verbs, {os.cpu_count()} CPUs, load average {load()} at start, "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
        print(f"# nsbridge: {entry} (Python {python}), sandbox host {sb.name}, state root {sb.root} "
              f"({fs_of(sb.root)}; nsbridge's default root /var/lib/nsbridge is on {fs_of('/var/lib')})")
        if dock:
            client, server = dock.call(["version", "--format", "{{.Client.Version}} {{.Server.Version}}"]).stdout.split()
            where = (f"started by this benchmark in namespaces {started[0].host_ns}, {started[0].lan_ns}"
                     if started else "already running")
            root = dock.call(["info", "--format", "{{.DockerRootDir}}"]).stdout.strip()
            print(f"# docker: CLI {cli} {client}, daemon {server} at {host} ({where}), data root {root} "
                  f"({fs_of(root) if os.path.isdir(root) else '?'})")
        sides = [dock, nsb] if dock else [nsb]
        print(f"# present: {prepare(sides, p)}")
        floors = ([(dock, [cli, "--version"])] if dock else []) + [(nsb, [python, "-c", "pass"])]
        rounds(sides, p, a.rounds, floors)
        verb_table(dock, nsb, why_not, (f"{os.path.basename(python)} -c pass", "docker --version"))
        if a.import_runs:
            import_table(nsb, python, entry, p, a.import_runs)
        print(f"\nload average {load()} at the end")
    finally:
        if dock:
            cleanup_docker(dock, p)
        for d in started:
            for x in d.stop():
                print(f"bench docker: left behind: {x}", file=sys.stderr)
        leaks = sb.destroy()
        if leaks:
            print(f"bench docker: left behind: {leaks}", file=sys.stderr)
    return 0
