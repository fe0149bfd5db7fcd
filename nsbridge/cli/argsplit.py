"""Docker's `run [OPTIONS] IMAGE [COMMAND] [ARG...]` grammar: options end at
the first positional, and everything after it belongs to the command (its
own flags included). argparse cannot say that, so we split first."""
from __future__ import annotations

import argparse

# Verbs whose arguments end in a command line.
COMMAND_VERBS = {"run", "create", "exec"}
GLOBAL_VALUE_FLAGS = {"--root", "--host-netns"}


def _option_actions(parser: argparse.ArgumentParser, verb: str) -> dict[str, argparse.Action]:
    for action in parser._actions:  # noqa: SLF001 (argparse has no public walk)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            sp = action.choices.get(verb)
            if sp is not None:
                return sp._option_string_actions  # noqa: SLF001
    return {}


def split_options(actions: dict[str, argparse.Action], tokens: list[str]) -> tuple[list[str], list[str], bool]:
    """(option tokens, the rest from the first positional on, whether `--` ended the options)."""
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "--":
            return tokens[:i], tokens[i + 1 :], True
        if not t.startswith("-") or t == "-":
            return tokens[:i], tokens[i:], False
        if t.startswith("--"):
            name = t.split("=", 1)[0]
            a = actions.get(name)
            if a is not None and a.nargs != 0 and "=" not in t:
                i += 1  # its value
        else:
            # combined short flags (-itd), or a short flag with its value (-p8080:80, -p 8080:80)
            for j, ch in enumerate(t[1:], start=1):
                a = actions.get("-" + ch)
                if a is not None and a.nargs != 0:
                    if j == len(t) - 1:
                        i += 1
                    break
        i += 1
    return tokens, [], False


def split_global(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str], bool]:
    """Split argv for argparse; returns (argv for argparse, rest, ended-by-dashdash)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in GLOBAL_VALUE_FLAGS:
            i += 1
        i += 1
    if i >= len(argv):
        return argv, [], False
    verb_at = i
    verb = argv[i]
    if verb == "container" and i + 1 < len(argv):
        verb_at = i + 1
        verb = argv[i + 1]
        actions = _container_actions(parser, verb)
    else:
        actions = _option_actions(parser, verb)
    if verb not in COMMAND_VERBS:
        return argv, [], False
    opts, rest, dashdash = split_options(actions, argv[verb_at + 1 :])
    return argv[: verb_at + 1] + opts, rest, dashdash


def _container_actions(parser: argparse.ArgumentParser, verb: str) -> dict[str, argparse.Action]:
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            cp = action.choices.get("container")
            if cp is not None:
                return _option_actions(cp, verb)
    return {}
