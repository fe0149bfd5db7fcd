"""Ctrl-C and kill during a command: roll back, never leave half a change.

While an operation runs, SIGTERM (and SIGHUP) raise like SIGINT does, so the
plan's undo list runs; while undoing or tearing down, these signals are held
back and delivered once the work is done (netavark's teardown does the same).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Interrupted(KeyboardInterrupt):
    """A SIGTERM/SIGHUP during an operation (KeyboardInterrupt for SIGINT)."""


def _raise(signum, frame) -> None:
    raise Interrupted(f"interrupted by signal {signum}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread only
        return
    old = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Block the interrupting signals for the block; pending ones arrive after."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
