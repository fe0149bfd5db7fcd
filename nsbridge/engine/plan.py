"""Operations as named steps with an undo each (libnetwork's step queue, CNI's
rollback). On failure the undo list runs in reverse and the error is raised,
so a failed command leaves no trace.

Fault injection for tests, by step name:
  NSBRIDGE_TEST_FAIL_AT=<step>      the step raises instead of running
  NSBRIDGE_TEST_CRASH_AFTER=<step>  the process dies (os._exit) right after it
and inside steps, by count (kernel/failpoint.py):
  NSBRIDGE_TEST_CRASH_AT_REQUEST=N  the process dies right after its N-th kernel request
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

from nsbridge.errors import KernelError, NsbridgeError
from nsbridge.record import field, record

log = logging.getLogger("nsbridge")


def _pause(name: str) -> None:
    """Stop before a step until a signal comes (tests of Ctrl-C mid-operation):
    announce it with a file `paused` in the state root."""
    import time

    root = os.environ.get("NSBRIDGE_ROOT", "/tmp")
    with open(os.path.join(root, "paused"), "w") as f:
        f.write(name)
    time.sleep(60)


def checkpoint(name: str) -> None:
    """A named point in a teardown (which has no undo): the same fault
    injection as Plan.step, so crash tests reach every step of every operation."""
    if os.environ.get("NSBRIDGE_TEST_FAIL_AT") == name:
        raise KernelError(f"injected failure at step {name}")
    if os.environ.get("NSBRIDGE_TEST_CRASH_AFTER") == name:
        os._exit(137)


@record
class Plan:
    name: str
    undos: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    fail_at: str = field(default_factory=lambda: os.environ.get("NSBRIDGE_TEST_FAIL_AT", ""))
    crash_after: str = field(default_factory=lambda: os.environ.get("NSBRIDGE_TEST_CRASH_AFTER", ""))

    def step(self, name: str, do: Callable[[], object], undo: Callable[[], object] | None = None) -> object:
        if self.fail_at == name:
            raise KernelError(f"injected failure at step {name}")
        if os.environ.get("NSBRIDGE_TEST_PAUSE_AT") == name:
            _pause(name)
        result = do()
        if undo is not None:
            self.undos.append((name, undo))
        if self.crash_after == name:
            os._exit(137)
        return result

    def commit(self, name: str, do: Callable[[], object]) -> object:
        """The last step, the one that records the result: recording it and
        forgetting the undo list are one (a Ctrl-C waits for both), so an
        interrupt never undoes what the store already says exists."""
        from nsbridge.engine.signals import held

        with held():
            result = self.step(name, do)
            self.undos.clear()
        return result

    def rollback(self) -> list[str]:
        """Undo in reverse, carrying on past errors; returns their texts.
        A second Ctrl-C must not cut the undoing short: signals wait."""
        from nsbridge.engine.signals import held

        with held():
            return self._rollback()

    def _rollback(self) -> list[str]:
        errors = []
        while self.undos:
            name, undo = self.undos.pop()
            try:
                undo()
            except Exception as e:  # keep undoing: report all at the end
                errors.append(f"undo {name}: {e}")
                log.warning("rollback of %s: undo %s failed: %s", self.name, name, e)
        return errors

    def __enter__(self) -> "Plan":
        return self

    def __exit__(self, et, ev, tb) -> bool:
        if ev is not None:
            self.rollback()
            if isinstance(ev, NsbridgeError):
                return False
        return False
