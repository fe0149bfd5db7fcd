"""The host's engine lock: flock on a file in the state root, with a bounded
wait so that a stuck command is reported instead of hanging everyone.

The lock file doubles as the intent record: the holder writes "PID OP" into
it and empties it on a clean release. A command that takes the lock and
finds it non-empty knows the previous holder died mid-operation (killed,
crashed, power cut) and finishes or undoes its leftovers first.
"""
from __future__ import annotations

import fcntl
import os
import time

from nsbridge.errors import LockTimeout


class HostLock:
    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout if timeout is not None else float(os.environ.get("NSBRIDGE_LOCK_TIMEOUT", "60"))
        self.fd = -1
        self.depth = 0
        #: what an interrupted previous holder left in the file ("" if none)
        self.interrupted = ""

    def acquire(self, op: str = "operation") -> None:
        if self.depth:
            self.depth += 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"another nsbridge command has held the host lock ({self.path}) "
                        f"for more than {self.timeout:g} s; try again"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self.interrupted = os.pread(fd, 200, 0).decode(errors="replace").strip()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {op}\n".encode(), 0)
        self.fd = fd
        self.depth = 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd >= 0:
            os.ftruncate(self.fd, 0)  # a clean end: no intent left behind
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "HostLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
