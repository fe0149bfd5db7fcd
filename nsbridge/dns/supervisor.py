"""Start, stop and check the resolver process of one network, for the engine.

The calling thread is already in the host network namespace, so the process
spawned here lives there. The resolver is identified by (pid, start time) so a
reused pid is never signalled. Nothing here writes the store: the engine records
the returned ResolverInfo itself. Must not import pyroute2 or dnslib (the engine
imports this on every call that may restart a resolver).
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from nsbridge import procs
from nsbridge.errors import KernelError
from nsbridge.record import record

READY_TIMEOUT = 3.0
STOP_TIMEOUT = 2.0

# The directory holding the nsbridge package, so `-m nsbridge.dns.server` imports
# the same code when the engine runs from a source tree rather than an install.
_ROOT = str(Path(__file__).resolve().parents[2])

# Popen objects of resolvers this process started, kept so they are reaped when
# stopped here (and no "still running" warning fires when they are collected).
_children: dict[int, subprocess.Popen] = {}


@record
class ResolverInfo:
    """What the engine records in the store's resolvers table."""

    pid: int
    pid_start: int
    address: str  # the listen address (the bridge's gateway); the port is 53 outside tests
    log: str


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def start(db_path: str, network_id: str, listen: str, upstream_file: str, log_dir: str,
          port: int = 53) -> ResolverInfo:
    """Spawn the resolver detached and wait until its sockets are bound."""
    os.makedirs(log_dir, exist_ok=True)
    log = os.path.join(log_dir, f"{network_id[:12]}.log")
    cmd = [sys.executable, "-m", "nsbridge.dns.server", "--db", db_path, "--network-id", network_id,
           "--listen", listen, "--port", str(port), "--upstream-file", upstream_file]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
    r, w = os.pipe()
    try:
        with open(log, "ab") as logf:
            p = subprocess.Popen(cmd + ["--ready-fd", str(w)], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=logf, pass_fds=(w,), start_new_session=True, cwd="/", env=env)
        os.close(w)
        w = -1
        _children[p.pid] = p
        info = ResolverInfo(p.pid, procs.start_time(p.pid), listen, log)
        ready = False
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                break
            # EOF here means the process closed the pipe without saying ready: it died.
            ready = os.read(r, 1) == b"1"
            if not ready:
                break
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if ready and info.pid_start:
        return info
    _kill(p)
    why = _last_line(log) or "no output"
    raise KernelError(
        f"DNS resolver for network {network_id[:12]} on {listen}:{port} did not start: {why}")


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, 9)
    except OSError:
        pass
    p.wait()
    _children.pop(p.pid, None)


def stop(info_or_pid_and_start: ResolverInfo | tuple[int, int]) -> None:
    """SIGTERM, then SIGKILL, only while (pid, start time) is still our resolver."""
    if isinstance(info_or_pid_and_start, ResolverInfo):
        pid, start_ = info_or_pid_and_start.pid, info_or_pid_and_start.pid_start
    else:
        pid, start_ = info_or_pid_and_start
    procs.terminate(pid, start_, STOP_TIMEOUT)
    p = _children.get(pid)
    if p is not None and not procs.alive(pid, start_):
        _children.pop(pid, None)
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


def is_alive(pid: int, pid_start: int) -> bool:
    return procs.alive(pid, pid_start)
