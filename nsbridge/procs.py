"""Processes we started, identified by (pid, start time) so a reused pid is
never mistaken for ours, and never signalled."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot); 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] == b"Z":
        return 0  # a zombie has exited
    return int(rest[19])


def alive(pid: int, start: int) -> bool:
    return pid > 0 and start > 0 and start_time(pid) == start


def signal_group(pid: int, start: int, sig: int) -> bool:
    """Signal the process group led by PID (our containers' commands run in
    their own session), if PID is still the process we started."""
    if not alive(pid, start):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, sig)
    return True


def wait_gone(pid: int, start: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid, start):
        if time.monotonic() >= deadline:
            return False
        try:
            # Reap it if it is our child (run -d children of this process).
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.01)
    return True


def terminate(pid: int, start: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after TIMEOUT seconds (docker stop -t)."""
    if signal_group(pid, start, signal.SIGTERM) and not wait_gone(pid, start, timeout):
        signal_group(pid, start, signal.SIGKILL)
        wait_gone(pid, start, 5)


def which(name: str, path: str) -> str | None:
    """shutil.which without importing shutil (and its lzma/bz2): ~2 ms a start."""
    if "/" in name:
        return name if os.access(name, os.X_OK) and not os.path.isdir(name) else None
    for d in path.split(":"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    return None


def cmdlines() -> "Iterator[tuple[int, list[bytes]]]":
    """(pid, argv) of every process but this one (one /proc scan): how the
    processes of a state root are found when no record points at them."""
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        yield int(d), argv
