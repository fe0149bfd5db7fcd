#!/usr/bin/env python3
"""Resolvers under load (issue 11, item 12): many containers, many queries and
concurrent commands in one sandbox host, watching every resolver for the whole
run. Prints each resolver that died or was replaced, with how it ended (exit
status or signal, from waitpid: this process is the child subreaper of every
engine it starts, so orphaned resolvers are its children) and the last lines of
its log, and each query client's count of answers, failures and timeouts.
Exits 1 when a resolver was replaced or a query went unanswered.

  sudo .venv/bin/python tools/load_dns.py [--networks 3] [--containers 60] [--clients 6]
      [--workers 3] [--seconds 60] [--logs DIR]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nsbridge.sandbox import Sandbox  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36

# Queries the nameserver of its own resolv.conf (the embedded resolver on a user network)
# for container names and for a name it must forward (SERVFAIL: the sandbox has no upstream).
CLIENT = r"""
import json, os, random, socket, struct, sys, time
seconds, names = float(sys.argv[1]), sys.argv[2:]
server = next(l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver"))
def query(name):
    out = os.urandom(2) + struct.pack(">HHHHH", 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack(">HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
stats = {"sent": 0, "answered": 0, "timeout": 0, "error": 0, "tcp": 0}
end = time.monotonic() + seconds
while time.monotonic() < end:
    q = query(random.choice(names + ["nothing.example"]))
    stats["sent"] += 1
    try:
        if random.random() < 0.02:
            t = socket.create_connection((server, 53), timeout=2)
            t.sendall(len(q).to_bytes(2, "big") + q)
            r = t.recv(4096)[2:]
            t.close()
            stats["tcp"] += 1
        else:
            u.sendto(q, (server, 53))
            while True:
                r = u.recv(4096)
                if r[:2] == q[:2]:
                    break
        stats["answered"] += 1
    except socket.timeout:
        stats["timeout"] += 1
    except OSError:
        stats["error"] += 1
        time.sleep(0.01)
print(json.dumps(stats))
"""


class Watch:
    """The resolvers table, read every 0.2 s; every pid that leaves it is reaped."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.seen: dict[str, list[int]] = {}  # network id -> pids in order
        self.ended: dict[int, str] = {}  # pid -> how it ended
        self.logs: dict[str, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def rows(self) -> list[tuple]:
        try:
            db = sqlite3.connect(f"file:{self.sb.root}/state.db?mode=ro", uri=True, timeout=5)
            try:
                return db.execute("SELECT network_id, pid, log FROM resolvers").fetchall()
            finally:
                db.close()
        except sqlite3.Error:
            return []

    def reap(self) -> None:
        for pids in self.seen.values():
            for pid in pids:
                if pid in self.ended:
                    continue
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    if not os.path.exists(f"/proc/{pid}"):
                        self.ended[pid] = "gone (not our child: status unknown)"
                    continue
                if got:
                    self.ended[pid] = (f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
                                       if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}")

    def run(self) -> None:
        while not self.stop.is_set():
            for nid, pid, log in self.rows():
                pids = self.seen.setdefault(nid, [])
                if not pids or pids[-1] != pid:
                    pids.append(pid)
                self.logs[nid] = log
            self.reap()
            time.sleep(0.2)

    def report(self, names: dict[str, str]) -> list[str]:
        out = []
        for nid, pids in self.seen.items():
            if len(pids) < 2 and pids and pids[0] not in self.ended:
                continue
            out.append(f"resolver of {names.get(nid, nid[:12])}: pids {pids}")
            for pid in pids:
                if pid in self.ended:
                    out.append(f"  pid {pid}: {self.ended[pid]}")
            try:
                with open(self.logs[nid], errors="replace") as f:
                    tail = f.read().splitlines()[-8:]
            except OSError:
                tail = ["(log unreadable)"]
            out += [f"  | {line}" for line in tail]
        return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="load_dns.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", type=int, default=3)
    ap.add_argument("--containers", type=int, default=60, help="containers per network at the start")
    ap.add_argument("--clients", type=int, default=6, help="containers sending queries all the time")
    ap.add_argument("--workers", type=int, default=3, help="threads running commands all the time")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--logs", help="copy the resolvers' logs here before the sandbox goes")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("load_dns: run as root (it makes its own sandbox host)", file=sys.stderr)
        return 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sb = Sandbox()
    watch = Watch(sb)
    failures: list[str] = []
    rc = 0
    try:
        from nsbridge.engine.containers import RunSpec

        nets = [f"load{i}" for i in range(a.networks)]
        with sb.engine() as e, e.session():
            for n in nets:
                e.network_create(n)
            for i in range(a.containers * a.networks):
                e.run(RunSpec(name=f"c{i}", image="alpine", networks=[nets[i % a.networks]]))
        names = {json.loads(sb.cli("network", "inspect", n, check=True).stdout)[0]["Id"]: n for n in nets}
        watch.thread.start()
        print(f"load_dns: sandbox {sb.name}, {a.networks} networks x {a.containers} containers, "
              f"{a.clients} query clients, {a.workers} command workers, {a.seconds:g} s")
        ctr_names = [f"c{i}" for i in range(a.containers * a.networks)]
        clients = []
        for k in range(a.clients):
            me = ctr_names[k]
            same = [n for i, n in enumerate(ctr_names) if i % a.networks == k % a.networks][:50]
            clients.append(subprocess.Popen(sb.argv("exec", me, "python3", "-c", CLIENT, str(a.seconds), *same),
                                            env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        end = time.monotonic() + a.seconds
        counts: dict[str, int] = {}
        lock = threading.Lock()

        def worker(w: int) -> None:
            rnd = random.Random(w)
            extra: list[str] = []
            i = 0
            while time.monotonic() < end:
                op = rnd.choice(["run", "run", "rm", "connect", "disconnect", "restart", "ps", "inspect", "info",
                                 "exec"])
                i += 1
                name = f"w{w}x{i}"
                if op == "run":
                    args = ["run", "-d", "--name", name, "--network", rnd.choice(nets), "alpine"]
                elif op == "rm" and extra:
                    args = ["rm", "-f", extra.pop(rnd.randrange(len(extra)))]
                elif op == "connect" and extra:
                    args = ["network", "connect", rnd.choice(nets), rnd.choice(extra)]
                elif op == "disconnect" and extra:
                    args = ["network", "disconnect", rnd.choice(nets), rnd.choice(extra)]
                elif op == "restart" and extra:
                    args = ["restart", "-t", "0", rnd.choice(extra)]
                elif op == "inspect":
                    args = ["network", "inspect", rnd.choice(nets)]
                elif op == "info":
                    args = ["system", "info"]
                elif op == "exec":
                    args = ["exec", rnd.choice(ctr_names), "getent", "hosts", rnd.choice(ctr_names)]
                else:
                    args = ["ps"]
                p = sb.cli(*args, timeout=120)
                with lock:
                    counts[f"{op} {'ok' if p.returncode == 0 else 'failed'}"] = \
                        counts.get(f"{op} {'ok' if p.returncode == 0 else 'failed'}", 0) + 1
                    if p.returncode != 0 and op in ("run", "rm", "restart", "info", "ps", "inspect"):
                        failures.append(f"{' '.join(args)}: {p.stderr.strip()[-300:]}")
                if op == "run" and p.returncode == 0:
                    extra.append(name)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(a.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        totals = {"sent": 0, "answered": 0, "timeout": 0, "error": 0, "tcp": 0}
        for p in clients:
            out, err = p.communicate(timeout=a.seconds + 60)
            if p.returncode != 0:
                failures.append(f"query client: exit {p.returncode}: {err.strip()[-300:]}")
                continue
            for k, v in json.loads(out.strip().splitlines()[-1]).items():
                totals[k] += v
        time.sleep(0.5)
        watch.stop.set()
        watch.thread.join()
        watch.reap()
        print("commands: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print("queries: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
        lines = watch.report(names)
        print("\n".join(lines) if lines else "resolvers: each the same process from start to end")
        for f in failures[:20]:
            print(f"failed: {f}")
        if lines or totals["timeout"] or totals["error"]:
            rc = 1
        if a.logs:
            os.makedirs(a.logs, exist_ok=True)
            for nid, log in watch.logs.items():
                if os.path.exists(log):
                    shutil.copy(log, os.path.join(a.logs, f"{names.get(nid, nid[:12])}.log"))
    finally:
        watch.stop.set()
        leaks = sb.destroy()
        if leaks:
            print(f"load_dns: left behind: {leaks}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
