"""Start and stop a long-lived helper process of the engine (the cluster
watcher and the DNS resolvers, through dns/supervisor.py): detached in its own session, output to a log file, ready
when it writes "1" to a pipe it is handed as `--ready-fd N`, identified by
(pid, start time) so that a reused pid is never signalled, its last words (the
log's last line) quoted when it dies before it is ready.

Spawned from the calling thread, so the process lives in the network namespace
the thread is in (the engine's host namespace). No pyroute2 here.
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

# The directory holding the nsbridge package, so `-m nsbridge...` imports the
# same code when the engine runs from a source tree rather than an install.
_ROOT = str(Path(__file__).resolve().parents[1])

# Popen objects of children started by this process, kept so they are reaped
# when stopped here (and no "still running" warning fires when collected).
_children: dict[int, subprocess.Popen] = {}


@record
class Child:
    pid: int
    start: int
    log: str


def last_line(path: str) -> str:
    """The last non-blank line of a log: a process's last words."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def spawn(module: str, args: list[str], log: str, what: str, ready_timeout: float = 3.0) -> Child:
    """`python -m MODULE ARGS --ready-fd N`, detached; wait until it says ready.
    Raises KernelError quoting its last words if it does not."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
    r, w = os.pipe()
    ready = False
    try:
        with open(log, "ab") as logf:
            p = subprocess.Popen([sys.executable, "-m", module, *args, "--ready-fd", str(w)],
                                 stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=(w,),
                                 start_new_session=True, cwd="/", env=env)
        os.close(w)
        w = -1
        _children[p.pid] = p
        child = Child(p.pid, procs.start_time(p.pid), log)
        deadline = time.monotonic() + ready_timeout
        while not ready:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                break
            ready = os.read(r, 1) == b"1"  # EOF: it closed the pipe without saying ready (it died)
            if not ready:
                break
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if ready and child.start:
        return child
    try:
        os.killpg(p.pid, 9)
    except OSError:
        pass
    p.wait()
    _children.pop(p.pid, None)
    raise KernelError(f"{what} did not start: {last_line(log) or 'no output'}")


def stop(pid: int, start: int, timeout: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, only while (pid, start time) is still ours."""
    procs.terminate(pid, start, timeout)
    p = _children.pop(pid, None)
    if p is not None:
        try:
            p.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


def pids_of(module: str, marker: str) -> list[int]:
    """Processes running `-m MODULE` with MARKER among their arguments (our
    state root's database): strays that no record points at."""
    from nsbridge import procs

    return [pid for pid, argv in procs.cmdlines() if module.encode() in argv and marker.encode() in argv]
