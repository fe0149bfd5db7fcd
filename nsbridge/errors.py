"""The error tree: every failure the user can see is one of these.

Each class is a category (as moby's errdefs); the CLI maps a category to
Docker's prefix and exit code in one place (cli/main.py). Imports nothing
from nsbridge so that every module may raise these.
"""
from __future__ import annotations


class NsbridgeError(Exception):
    """Base: a one-line message meant for the user."""

    #: printed before the message, as Docker's daemon errors are
    prefix = "Error response from daemon: "

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(NsbridgeError):
    """No such network, container or object."""


class Conflict(NsbridgeError):
    """Name taken, port allocated, endpoint exists, object in use."""


class InvalidArgument(NsbridgeError):
    """Bad user input found during validation, before anything changed."""


class Forbidden(NsbridgeError):
    """An operation Docker refuses (predefined networks, running containers)."""


class ClientError(NsbridgeError):
    """Errors that Docker's CLI reports itself, without the daemon prefix."""

    prefix = ""


class Usage(ClientError):
    """Wrong command-line usage (unknown flag, missing argument)."""


class PermissionDenied(ClientError):
    """Not root / no CAP_NET_ADMIN."""


class StateError(ClientError):
    """The state root cannot be used: its database damaged or held by another
    process, its disk full. Said in one line with what to do."""


class LockTimeout(NsbridgeError):
    """Another nsbridge command held the host lock for too long."""

    prefix = ""


class KernelError(NsbridgeError):
    """A kernel call failed; the message names the object and the cause."""


class ExecFailed(NsbridgeError):
    """exec/run could not start the command (Docker's exit 126/127)."""

    prefix = ""

    def __init__(self, message: str, exit_code: int = 126) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class MultiError(NsbridgeError):
    """Several independent failures (e.g. `rm a b c`), all reported."""

    prefix = ""

    def __init__(self, errors: list[NsbridgeError], done: list[str] | None = None) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
        self.done = done or []  # what did succeed, printed before the errors


def each(refs: list[str], fn, on_done=None) -> list[str]:
    """Run FN for every REF (`rm a b c`, `network rm x y`, `stop a b`): carry on
    past failures, report them all together with what did succeed."""
    done: list[str] = []
    errors: list[NsbridgeError] = []
    for ref in refs:
        try:
            fn(ref)
        except NsbridgeError as e:
            errors.append(e)
            continue
        done.append(ref)
        if on_done is not None:
            on_done(ref)
    if errors:
        raise MultiError(errors, done)
    return done
