"""The host's engine lock: flock on a file in the state root, with a bounded
wait so that a stuck command is reported instead of hanging everyone."""
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

    def acquire(self) -> None:
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
        self.fd = fd
        self.depth = 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "HostLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
