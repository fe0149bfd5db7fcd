"""The host's engine lock: flock on a file in the state root, with a bounded
wait so that a stuck command is reported instead of hanging everyone.

The lock file doubles as the intent record: the holder writes "PID OP" into
it and empties it on a clean release. A command that takes the lock and
finds it non-empty knows the previous holder died mid-operation (killed,
crashed, power cut) and finishes or undoes its leftovers first.

Below that line the holder notes what it is about to make or remove that
carries no mark of its own yet: "netns NAME" before a namespace's name is
made (the file under /run/netns exists a moment before the namespace is
bound to it, and after it is unbound). Notes of a holder that died are
carried into the next holder's record until it has dealt with them.
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
        self._header = ""
        self._end = 0

    def acquire(self, op: str = "operation") -> None:
        if self.depth:
            self.depth += 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
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
        from nsbridge.engine.signals import held  # (not at import: read-only commands take no lock)

        try:
            with held():  # the record is rewritten whole: a Ctrl-C must not cut it in two
                self.interrupted = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace").strip()
                self._header = f"{os.getpid()} {op}\n"
                self._write(fd, self._header + "".join(f"{n}\n" for n in dict.fromkeys(self.notes())))
        except BaseException:
            os.close(fd)  # (the flock goes with the fd)
            raise
        self.fd = fd
        self.depth = 1

    def _write(self, fd: int, text: str) -> None:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._end = len(data)

    def notes(self) -> list[str]:
        """What the interrupted holder noted (its notes and those it carried)."""
        return self.interrupted.splitlines()[1:]

    def note(self, line: str) -> None:
        """Record, before doing it, a step whose result carries no mark yet."""
        if self.fd >= 0:
            data = f"{line}\n".encode()
            os.pwrite(self.fd, data, self._end)
            self._end += len(data)

    def _noted_left(self) -> bool:
        """Does any name noted in the record still exist (a rollback removes
        what it made; what it could not is for the next command)?"""
        if self._end <= len(self._header.encode()):
            return False
        from nsbridge.kernel import ns

        text = os.pread(self.fd, self._end, 0).decode(errors="replace")
        return any(os.path.lexists(ns.netns_path(line[6:])) for line in text.splitlines()[1:]
                   if line.startswith("netns ") and "/" not in line[6:])

    def repaired(self) -> None:
        """The interrupted holder's leftovers are dealt with: forget its notes."""
        self.interrupted = ""
        if self.fd >= 0:
            from nsbridge.engine.signals import held

            with held():
                self._write(self.fd, self._header)

    def release(self, failed: bool = False) -> None:
        """A clean end leaves no intent behind; an operation that failed (an
        error, a Ctrl-C) after noting something leaves its record, so that
        the next command checks what it noted."""
        self.depth -= 1
        if self.depth == 0 and self.fd >= 0:
            if not failed or not self._noted_left():
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "HostLock":
        self.acquire()
        return self

    def __exit__(self, et, ev, tb) -> None:
        self.release(failed=et is not None)
