"""`nsbridge lab up|down|check|ls|get|exec|env`: lab folders (a compose file,
a README of tasks, checks.yaml), each in a sandbox host of its own by default."""
from __future__ import annotations

import argparse
import os
import sys

from nsbridge.engine.host import Host


def add_parser(sub) -> None:
    p = sub.add_parser("lab", help="Labs: compose folders in sandbox hosts of their own, graded by checks")
    lsub = p.add_subparsers(dest="lverb", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda a, h: (p.print_help(), 0)[1])

    def verb(name: str, fn, hlp: str, folder: bool = True):
        v = lsub.add_parser(name, help=hlp)
        if folder:
            v.add_argument("dir", nargs="?", default=".", metavar="DIR", help="the lab's folder (default: here)")
            v.add_argument("--no-sandbox", dest="sandbox", action="store_false", default=None,
                           help="on the current host, not in a sandbox host of its own")
        v.set_defaults(handler=fn)
        return v

    up = verb("up", cmd_up, "Bring a lab up, or converge it to its (changed) compose file")
    up.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    verb("down", cmd_down, "Take a lab down: nothing of it is left")
    verb("check", cmd_check, "Grade a running lab against its checks.yaml (exit 0 only if all pass)")
    verb("env", cmd_env, "Print the variables that point nsbridge at a lab's sandbox host")
    verb("shell", cmd_shell, "A shell where every nsbridge command works on the lab (its sandbox host)")
    ex = verb("exec", cmd_exec, "Run a command in a service of a lab: lab exec DIR SERVICE CMD...")
    ex.add_argument("service")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    verb("ls", cmd_ls, "List the lessons that ship with nsbridge, and the labs that are up", folder=False)
    get = verb("get", cmd_get, "Copy a lesson into a folder: lab get NAME [DIR]", folder=False)
    get.add_argument("name")
    get.add_argument("dir", nargs="?")


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _open(a: argparse.Namespace, host: Host, sandbox: bool | None = None):
    """(lab, project): the folder's lab and its compose project."""
    from nsbridge.compose.load import load_project
    from nsbridge.lab import folder

    files = folder.compose_files(os.path.abspath(a.dir))
    project = load_project(files)
    lab = folder.open_lab(a.dir, host, project.name, a.sandbox if sandbox is None else sandbox)
    return lab, project


def cmd_up(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli import compose
    from nsbridge.lab import folder

    lab, project = _open(a, host, True if a.sandbox is None else a.sandbox)
    if lab.checks is not None:  # a teacher learns of a broken checks.yaml now, not at grading
        from nsbridge.lab import checks

        checks.load(lab.checks)
    if lab.sandboxed and not a.dry_run:
        lab.host.prepare_root()
        folder.remember(lab, project.name)
    rc = compose.up(lab.host, project, detach=True, dry_run=a.dry_run)
    if lab.sandboxed and not a.dry_run:
        _say(f"lab {project.name} runs in sandbox host {lab.host.netns}: "
             f"nsbridge lab exec {a.dir} SERVICE CMD..., or nsbridge {_flags(lab.host)} COMMAND")
    return rc


def _flags(h: Host) -> str:
    return f"--host-netns {h.netns} --root {h.root}"


def cmd_down(a: argparse.Namespace, host: Host) -> int:
    """A sandboxed lab goes with its sandbox host (every process killed, every
    namespace removed, the host namespace with its bridges and rules, the
    state root): one step, whatever the lab's size. Otherwise `compose down`."""
    from nsbridge.compose import apply
    from nsbridge.engine.core import Engine

    lab, project = _open(a, host)
    if not lab.sandboxed:
        with Engine(lab.host.root, lab.host.netns) as e:
            apply.down(e, project.name, _say)
        return 0
    if not os.path.exists(lab.host.db):
        _say(f"lab {project.name} is not up")
        return 0
    from nsbridge.engine.views import Reader

    with Reader(lab.host.root, lab.host.netns) as r:
        lines = apply.down_lines(r, project.name)
    Engine.reset(lab.host)
    for line in lines:
        _say(line)
    _say(f" \u2714 Sandbox host {lab.host.netns}  Removed")
    return 0


def _need_up(lab, name: str) -> None:
    from nsbridge.errors import Conflict

    if lab.sandboxed and not os.path.exists(lab.host.db):
        raise Conflict(f"lab {name} is not up: nsbridge lab up first")


def cmd_check(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.engine.core import Engine
    from nsbridge.lab import checks
    from nsbridge.lab.grade import Grader

    lab, project = _open(a, host)
    if lab.checks is None:
        _say(f"lab {project.name} has no checks.yaml: nothing to grade")
        return 0
    cs = checks.load(lab.checks)
    _need_up(lab, project.name)
    with Engine(lab.host.root, lab.host.netns) as e:
        outcomes = Grader(e, project.name, {k: n.name for k, n in project.networks.items()}).run(cs)
    for o in outcomes:
        print(o.line())
    failed = sum(1 for o in outcomes if not o.ok)
    print(f"checks: {len(outcomes) - failed} passed, {failed} failed")
    sys.stdout.flush()
    return 1 if failed else 0


def cmd_env(a: argparse.Namespace, host: Host) -> int:
    lab, project = _open(a, host)
    print(f"export NSBRIDGE_HOST_NETNS={lab.host.netns or ''} NSBRIDGE_ROOT={lab.host.root}")
    return 0


def cmd_shell(a: argparse.Namespace, host: Host) -> int:
    lab, project = _open(a, host)
    _need_up(lab, project.name)
    env = dict(os.environ)
    if lab.sandboxed:
        env.update(NSBRIDGE_HOST_NETNS=lab.host.netns or "", NSBRIDGE_ROOT=lab.host.root)
    env["PS1"] = f"(lab {project.name}) \\u@\\h:\\w\\$ "
    shell = os.environ.get("SHELL") or "/bin/bash"
    argv = [shell, "--norc", "-i"] if os.path.basename(shell) == "bash" else [shell, "-i"]
    _say(f"lab {project.name}: nsbridge commands here work on the lab (exit to leave)")
    sys.stdout.flush()
    os.execvpe(shell, argv, env)
    return 126  # not reached


def cmd_exec(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli import compose

    lab, project = _open(a, host)
    _need_up(lab, project.name)
    args = argparse.Namespace(file=lab.files, project_name=project.name, project_directory=None, profile=None,
                              service=a.service, command=a.command, no_tty=False, detach=False, env=[], index=1,
                              privileged=False)
    return compose.cmd_exec(args, lab.host)


def cmd_ls(a: argparse.Namespace, host: Host) -> int:
    """The lessons (and whether one is up), then the labs of other folders that are up."""
    from nsbridge.lab import folder, lessons
    from nsbridge.render.tables import table

    up = {name: d for name, d, _h in folder.running_labs(host)}
    rows = []
    for ls in lessons.index():
        state = "up" if ls.name in up else ("-" if ls.available else f"needs {', '.join(ls.requires)}")
        rows.append([ls.name, state, ls.title])
    names = {ls.name for ls in lessons.index()}
    rows += [[name, "up", f"(your lab in {d})"] for name, d in up.items() if name not in names]
    sys.stdout.write(table(["NAME", "STATE", "LESSON"], rows))
    return 0


def cmd_get(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.lab import lessons

    dest = lessons.get(a.name, a.dir)
    print(dest)
    _say(f"lesson {a.name} is in {dest}: read its README.md, then nsbridge lab up {dest}")
    return 0
