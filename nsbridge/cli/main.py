"""`nsbridge` command line: Docker's verbs and flags over the Engine.

The parser is built from small per-verb modules imported only when their
verb runs (pip's lazy commands_dict), and this is the one place that maps
errors to Docker's text and exit codes. No traceback reaches the user:
unexpected errors print one line and where the full log is.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import _signal as signal  # the C module: `signal` would import enum on every start

from nsbridge.errors import ClientError, ExecFailed, MultiError, NsbridgeError, StateError, Usage

PROG = "nsbridge"

# verb -> (module, function that adds its parser). Management forms
# (`container run`, `network ls`) map onto the same functions.
CONTAINER_VERBS = ("run", "create", "start", "stop", "restart", "rm", "ps", "exec", "inspect", "logs", "port", "rename")
# nsbridge's own: see, explain and break the network (cli/explain.py)
EXPLAIN_VERBS = ("show", "why", "trace", "link", "impair")


# Verbs that only read the store: no logging set-up, no engine operations.
READ_ONLY = {"ps", "ls", "list", "inspect", "logs", "port", "exec", "info", "show", "why", "trace"}


class ArgError(Exception):
    """A usage error: printed as Docker's CLI does, with a `See '... --help'.` line."""

    def __init__(self, message: str, prog: str = PROG, code: int = 1) -> None:
        super().__init__(message)
        self.prog = prog
        self.code = code


def _requires(parser: argparse.ArgumentParser) -> str:
    """Docker's `"docker network create" requires exactly 1 argument.`"""
    pos = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    n = sum(1 for a in pos if a.nargs in (None, "+"))
    how = "exactly" if all(a.nargs is None for a in pos) else "at least"
    return f'"{parser.prog}" requires {how} {n} argument{"" if n == 1 else "s"}.'


class Formatter(argparse.HelpFormatter):
    """argparse builds a formatter for every add_argument, and each asks the
    terminal's size (importing shutil): ~3 ms a start. Ask once, at --help."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, width or _columns())


def _columns(cache: list[int] = []) -> int:  # noqa: B006 (a cache on purpose)
    if not cache:
        try:
            cache.append(os.get_terminal_size().columns - 2)
        except OSError:
            cache.append(78)
    return cache[0]


class Parser(argparse.ArgumentParser):
    """argparse that reports like Docker's CLI instead of exiting with 2 (and,
    like Docker's, takes no abbreviated long flags)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("the following arguments are required"):
            message = _requires(self)
        raise ArgError(message, self.prog)


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser that ARGS' verbs selected."""
    for dest in ("verb", "nverb", "sverb", "cverb", "coverb", "lverb"):
        name = getattr(args, dest, None)
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)  # noqa: SLF001
        if not name or sub is None or name not in sub.choices:
            continue
        parser = sub.choices[name]
    return parser


def _parse(parser: Parser, pargv: list[str]) -> argparse.Namespace:
    """parse_args, with Docker's texts for unknown flags and extra arguments."""
    args, extra = parser.parse_known_args(pargv)
    if extra:
        sp = _subparser(parser, args)
        flag = next((x for x in extra if x.startswith("-") and x != "-"), None)
        if flag is not None:  # Docker: cobra's FlagErrorFunc, exit 125
            raise ArgError(f"unknown flag: {flag.split('=', 1)[0]}", sp.prog, 125)
        raise ArgError(_requires(sp), sp.prog)
    return args


def one_line(text: str) -> str:
    """An error message as one line: control characters (a newline in a name the
    user typed) are shown escaped, never printed."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _privileged() -> bool:
    """Root, with the capabilities the engine uses (network and namespace admin)."""
    if os.geteuid() != 0:
        return False
    need = (1 << 12) | (1 << 21)  # CAP_NET_ADMIN, CAP_SYS_ADMIN
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16) & need == need
    except (OSError, ValueError):
        pass
    return True


def build_parser(verb: str | None = None, sub_verb: str | None = None) -> Parser:
    """The whole parser, or (for speed: argparse costs ~0.25 ms a sub-parser)
    only the part that VERB needs."""
    p = Parser(prog=PROG, description="Docker's networking on the real Linux kernel, without Docker.")
    p.add_argument("--root", help="state root (NSBRIDGE_ROOT, default /var/lib/nsbridge)")
    p.add_argument("--host-netns", help="use this network namespace as the host (a sandbox; NSBRIDGE_HOST_NETNS)")
    p.add_argument("--debug", action="store_true", help="print tracebacks")
    p.add_argument("--version", action="store_true")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    if verb is None or verb in CONTAINER_VERBS or verb == "container":
        from nsbridge.cli import container
    if verb is None or verb in CONTAINER_VERBS:
        container.add_parsers(sub, only=verb)
    if verb in (None, "network"):
        from nsbridge.cli import network

        network.add_parser(sub)
    if verb in (None, "system"):
        from nsbridge.cli import system

        system.add_parser(sub)
    if verb is None or verb in EXPLAIN_VERBS:
        from nsbridge.cli import explain

        explain.add_parsers(sub, only=verb)
    if verb in (None, "compose"):
        from nsbridge.cli import compose

        compose.add_parser(sub)
    if verb in (None, "lab"):
        from nsbridge.cli import lab

        lab.add_parser(sub)
    if verb in (None, "container"):
        cont = sub.add_parser("container", help="Manage containers")
        csub = cont.add_subparsers(dest="cverb", metavar="COMMAND", parser_class=Parser)
        container.add_parsers(csub, management=True, only=sub_verb)
    if verb in (None, "version"):
        sub.add_parser("version", help="Show the nsbridge version")
    return p


def _verb(argv: list[str]) -> tuple[str | None, str | None]:
    """The command word after the global flags (if one we know), and for
    `container VERB` the verb."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in ("--root", "--host-netns") else 1
    if i < len(argv) and argv[i] in (*CONTAINER_VERBS, *EXPLAIN_VERBS, "network", "system", "compose", "lab", "container",
                                     "version"):
        sub = argv[i + 1] if argv[i] == "container" and i + 1 < len(argv) else None
        if sub is not None and sub not in (*CONTAINER_VERBS, "ls", "list"):
            sub = None
        return argv[i], sub
    return None, None


def _setup_logging(root: str) -> str:
    """The log in the state root (checked by Host.prepare_root first: never a
    symlink). A log line that cannot be written (a full disk) is dropped
    quietly: the command itself says what failed, in one line."""
    import logging

    class QuietFileHandler(logging.FileHandler):
        def handleError(self, record: logging.LogRecord) -> None:
            pass

    path = os.path.join(root, "nsbridge.log")
    try:
        handler: logging.Handler = QuietFileHandler(path)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    lg = logging.getLogger("nsbridge")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    return path


def _print_error(e: NsbridgeError, verb: str) -> None:
    errors = e.errors if isinstance(e, MultiError) else [e]
    for err in errors:
        msg = f"{err.prefix}{err}" if isinstance(err, Usage) else one_line(f"{err.prefix}{err}")
        if isinstance(err, Usage):  # carries its own `See '... --help'.` line
            sys.stderr.write(f"{msg}\n")
        elif verb in ("run", "create"):
            sys.stderr.write(f"{PROG}: {msg}\n\nRun '{PROG} {verb} --help' for more information\n")
        elif isinstance(err, ClientError) and not err.prefix:
            sys.stderr.write(f"{msg}\n" if msg.startswith("Error") else f"Error: {msg}\n")
        else:
            sys.stderr.write(msg + "\n")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # (a Ctrl-C while an error was being printed)
        sys.stderr.write("interrupted\n")
        return 130


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from nsbridge.cli.argsplit import split_global

    try:
        parser = build_parser(*_verb(argv))
        pargv, rest, dashdash = split_global(parser, argv)
        args = _parse(parser, pargv)
        args.rest, args.dashdash = rest, dashdash
    except ArgError as e:
        sys.stderr.write(f"{one_line(str(e))}\nSee '{e.prog} --help'.\n")
        verb, sub = _verb(argv)
        return 125 if e.code == 125 or (sub or verb) in ("run", "create") else e.code
    if args.version or args.verb == "version":
        from nsbridge import __version__

        print(f"nsbridge version {__version__}")
        return 0
    if args.verb is None or (args.verb == "container" and args.cverb is None):
        parser.print_help()
        return 0
    verb = args.cverb if args.verb == "container" else args.verb
    handler: Callable[..., int] = args.handler
    if not _privileged():
        sys.stderr.write(
            f"{PROG}: permission denied: nsbridge needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo\n"
        )
        return 1
    from nsbridge.engine.host import Host

    sub = getattr(args, "nverb", None) or getattr(args, "sverb", None)
    mutating = verb not in READ_ONLY and sub not in READ_ONLY
    try:
        host = Host.from_env(args.root, args.host_netns)
        if mutating:  # the root is checked before the log is opened in it
            host.prepare_root(create=sub != "reset")
            _setup_logging(host.root)
    except NsbridgeError as e:
        _print_error(e, "")  # about the host or its state, not the verb's arguments: one line
        return 1
    log_path = os.path.join(host.root, "nsbridge.log")
    # from here Ctrl-C raises KeyboardInterrupt, so that an operation rolls back
    before, hook = _on_interrupt(_interrupt), sys.unraisablehook
    sys.unraisablehook = _unraisable
    try:
        return handler(args, host)
    except ExecFailed as e:
        sys.stderr.write(f"{one_line(str(e))}\n")
        return e.exit_code
    except NsbridgeError as e:
        _print_error(e, verb)
        return 125 if verb in ("run", "create") else 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # the one place that catches everything
        known = _known_failure(e, host)
        if known is not None:
            _print_error(StateError(known), verb)
            return 125 if verb in ("run", "create") else 1
        import logging

        if not logging.getLogger("nsbridge").handlers:
            _setup_logging(host.root)
        logging.getLogger("nsbridge").exception("unexpected error in %s", verb)
        if args.debug:
            raise
        sys.stderr.write(one_line(f"{PROG}: internal error: {type(e).__name__}: {e}") + f" (details in {log_path})\n")
        return 1
    finally:
        sys.unraisablehook = hook
        _on_interrupt(before)
        signal.setitimer(signal.ITIMER_REAL, 0)  # an interrupt still waiting came too late: the work is done


def _on_interrupt(handler):
    """Set what SIGINT does (the main thread only can); returns what it did."""
    try:
        return signal.signal(signal.SIGINT, handler if handler is not None else signal.default_int_handler)
    except ValueError:
        return handler


# Frames where an exception is swallowed and printed ("Exception ignored in ...") or turned
# into another (a RuntimeError from __set_name__): destructors, weakref callbacks, our own
# unraisable hook. And any import in progress (a command imports modules as it goes): a
# module half executed, its locks' callbacks.
_SWALLOWING = frozenset({"__del__", "_remove", "remove", "_unraisable", "__set_name__"})


def _interrupt(signum, frame) -> None:
    """SIGINT while a command runs: KeyboardInterrupt, so that the operation rolls
    back; but never where it would be swallowed, printed or changed: from there,
    tried again every 2 ms (SIGALRM) until that frame is left."""
    f = frame
    while f is not None:
        if f.f_code.co_name in _SWALLOWING or f.f_code.co_filename.startswith("<frozen importlib"):
            _retry_interrupt()
            return
        f = f.f_back
    raise KeyboardInterrupt


def _retry_interrupt() -> None:
    signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.002)


def _unraisable(u) -> None:
    """A KeyboardInterrupt swallowed anyway: not printed, raised again after."""
    if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
        _retry_interrupt()
        return
    sys.__unraisablehook__(u)


def _known_failure(e: BaseException, host) -> str | None:
    """One line for what the state root cannot do: a full disk, a damaged or
    held database (state/store.py). None: an unexpected error."""
    import errno

    from nsbridge.state import store

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return store.no_space(host.db)
    flags = "".join(f" --{k} {v}" for k, v in (("host-netns", host.netns), ("root", host.root))
                    if v and v != "/var/lib/nsbridge")
    return store.explain(e, host.db, f"{PROG}{flags} system reset -f")


if __name__ == "__main__":
    raise SystemExit(main())
