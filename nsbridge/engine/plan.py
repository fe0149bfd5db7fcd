"""Operations as named steps with an undo each (libnetwork's step queue, CNI's
rollback). On failure the undo list runs in reverse and the error is raised,
so a failed command leaves no trace.

Fault injection for tests, by step name:
  NSBRIDGE_TEST_FAIL_AT=<step>      the step raises instead of running
  NSBRIDGE_TEST_CRASH_AFTER=<step>  the process dies (os._exit) right after it
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from nsbridge.errors import KernelError, NsbridgeError

log = logging.getLogger("nsbridge")


@dataclass
class Plan:
    name: str
    undos: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    fail_at: str = field(default_factory=lambda: os.environ.get("NSBRIDGE_TEST_FAIL_AT", ""))
    crash_after: str = field(default_factory=lambda: os.environ.get("NSBRIDGE_TEST_CRASH_AFTER", ""))

    def step(self, name: str, do: Callable[[], object], undo: Callable[[], object] | None = None) -> object:
        if self.fail_at == name:
            raise KernelError(f"injected failure at step {name}")
        result = do()
        if undo is not None:
            self.undos.append((name, undo))
        if self.crash_after == name:
            os._exit(137)
        return result

    def rollback(self) -> list[str]:
        """Undo in reverse, carrying on past errors; returns their texts."""
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
