"""nsbridge: Docker's single-host networking on the real Linux kernel, without Docker.

`from nsbridge import Engine` gives the engine the CLI, the tests, the
benchmarks and course scripts all use. Imported lazily so that `import
nsbridge` stays cheap.
"""
from __future__ import annotations

import os
import sys

__version__ = "0.1.0"


def _quit_on_interrupt(signum, frame) -> None:
    """Ctrl-C before the command has started anything: leave at once, quietly
    (a KeyboardInterrupt in the middle of importing modules would print a
    traceback). cli/main.py lets SIGINT raise again while an operation runs,
    so that the operation rolls back."""
    os._exit(130)


def _launched_as_cli() -> bool:
    """`nsbridge ...` or `python -m nsbridge ...`, not a library import."""
    argv = getattr(sys, "orig_argv", [])
    return os.path.basename(sys.argv[0] if sys.argv else "") == "nsbridge" or any(
        a == "-m" and argv[i + 1 : i + 2] == ["nsbridge"] for i, a in enumerate(argv)
    )


if _launched_as_cli():  # first thing: the package is imported before anything else of ours
    import _signal

    _signal.signal(_signal.SIGINT, _quit_on_interrupt)
    # The `nsbridge` command starts Python with SIGINT blocked (setup.sh writes it), so that
    # a Ctrl-C during Python's own start-up waits for this handler: let it in now.
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGINT])

__all__ = ["Engine", "RunSpec", "__version__"]


def __getattr__(name: str):
    if name == "Engine":
        from nsbridge.engine.core import Engine

        return Engine
    if name == "RunSpec":
        from nsbridge.engine.containers import RunSpec

        return RunSpec
    raise AttributeError(name)
