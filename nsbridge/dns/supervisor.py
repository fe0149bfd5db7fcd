"""Start, stop and check the resolver process of one network, for the engine.

The calling thread is already in the host network namespace, so the process
spawned here lives there. The resolver is identified by (pid, start time) so a
reused pid is never signalled. Nothing here writes the store: the engine records
the returned ResolverInfo itself. A dead resolver's last words (how it ended, its
last log lines) are kept beside its log for `system info`; the log itself is
appended to across restarts and rotated (one old copy) when it grows past LOG_MAX.
Must not import pyroute2 or dnslib (the engine imports this on every call that may
restart a resolver).
"""
from __future__ import annotations

import json
import os
import subprocess
import time

from nsbridge import procs, supervise
from nsbridge.dns import embedded
from nsbridge.record import record

# Python's start plus a bind in each container served: on a loaded 2-core host with a
# full bridge this takes seconds, and a resolver killed for being slow is a restart loop.
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 2.0
LOG_MAX = 1 << 20
LAST_LINES = 12

# Resolvers this process started (supervise.spawn's children): reaped when stopped
# here, and how a dead one ended read from waitpid (last_words).
_children = supervise._children


@record
class ResolverInfo:
    """What the engine records in the store's resolvers table."""

    pid: int
    pid_start: int
    address: str  # where containers reach it: 127.0.0.11 (port 53), in each one's namespace
    log: str


def log_path(log_dir: str, network_id: str) -> str:
    return os.path.join(log_dir, f"{network_id[:12]}.log")


def _rotate(log: str) -> None:
    try:
        if os.path.getsize(log) > LOG_MAX:
            os.replace(log, log + ".1")
    except OSError:
        pass


def start(db_path: str, network_id: str, upstream_file: str, log_dir: str) -> ResolverInfo:
    """Spawn the resolver detached and wait until it holds its sockets (in every
    container it serves) and its control socket."""
    log = log_path(log_dir, network_id)
    os.makedirs(log_dir, exist_ok=True)
    _rotate(log)
    child = supervise.spawn("nsbridge.dns.server",
                            ["--db", db_path, "--network-id", network_id, "--upstream-file", upstream_file],
                            log, f"DNS resolver for network {network_id[:12]}", READY_TIMEOUT)
    return ResolverInfo(child.pid, child.start, embedded.ADDRESS, log)


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


# -- last words -----------------------------------------------------------------------
# faulthandler's first line for each fatal signal it reports
_FATAL = {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS", "Aborted": "SIGABRT",
          "Floating point exception": "SIGFPE", "Illegal instruction": "SIGILL"}


def _status(pid: int) -> str | None:
    """How a resolver that was our child ended, from waitpid; None if not ours."""
    p = _children.pop(pid, None)
    if p is None:
        return None
    try:
        code = p.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return None
    if code >= 0:
        return f"exit {code}"
    import signal

    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def last_words(info: ResolverInfo) -> dict:
    """How a dead resolver ended and the last lines it logged: what its log says
    (its own last line, or faulthandler's report of a fatal signal), or, when it
    said nothing, the only signal a process cannot report: SIGKILL (the OOM killer,
    `kill -9`). From waitpid instead when it was this process's child."""
    tag = f"nsbridge-dns[{info.pid}]"
    how = _status(info.pid)  # first: a child still dying may not have written all yet
    try:
        with open(info.log, "rb") as f:
            f.seek(max(0, os.path.getsize(info.log) - 64 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        lines = []
    starts = [i for i, x in enumerate(lines) if tag in x and " started" in x]
    mine = lines[starts[-1]:] if starts else []
    # up to the next resolver's first line (a later start appends to the same log)
    mine = next((mine[:i] for i, x in enumerate(mine) if i and "nsbridge-dns[" in x and tag not in x), mine)
    if how is None:
        fatal = next((_FATAL.get(x.split(":", 1)[1].strip()) for x in mine if x.startswith("Fatal Python error:")), None)
        said = [x for x in mine if tag in x]
        if fatal:
            how = f"killed by {fatal}"
        elif said and "(exit " in said[-1]:
            how = said[-1][said[-1].rindex("(exit ") + 1 : -1]
        else:
            how = "killed without a word: SIGKILL (the OOM killer, or kill -9)"
    lines = [x for x in mine if x.strip()]
    lines = lines[:1] + lines[1:][-(LAST_LINES - 1):]  # its start, then its last lines
    return {"Pid": info.pid, "Ended": how, "NoticedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "LastLines": lines}


def words_path(log: str) -> str:
    return log[: -len(".log")] + ".last.json" if log.endswith(".log") else log + ".last.json"


def keep_last_words(info: ResolverInfo) -> dict:
    """Record a dead resolver's last words beside its log (for `system info`)."""
    words = last_words(info)
    try:
        with open(words_path(info.log), "w") as f:
            json.dump(words, f)
    except OSError:
        pass
    return words


def forget(log: str) -> None:
    """A removed network's resolver: its last words go (its log stays with the root)."""
    try:
        os.unlink(words_path(log))
    except OSError:
        pass


def read_last_words(log: str) -> dict | None:
    try:
        with open(words_path(log)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
