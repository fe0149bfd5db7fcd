"""`nsbridge compose [-f FILE] [-p NAME] up|down|ps|exec|logs|config`: Docker
Compose's grammar and names over nsbridge (nsbridge/compose)."""
from __future__ import annotations

import argparse
import os
import sys
import time

from nsbridge.engine.host import Host
from nsbridge.errors import Usage

#: the JSON schema shipped for editors (`compose config --schema` prints it)
SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compose", "schema.json")


def _engine(host: Host):
    from nsbridge.engine.core import Engine

    return Engine(host.root, host.netns)


def add_parser(sub) -> None:
    p = sub.add_parser("compose", help="Run a compose file's services (Docker Compose's grammar)")
    p.add_argument("-f", "--file", action="append", default=[], help="compose file (default: compose.yaml here or above)")
    p.add_argument("-p", "--project-name", help="project name (default: the folder's)")
    p.add_argument("--project-directory", help="the project's folder (default: the first file's)")
    p.add_argument("--profile", action="append", default=None, help="enable services of a profile")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, do nothing")
    csub = p.add_subparsers(dest="coverb", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda a, h: (p.print_help(), 0)[1])

    up = csub.add_parser("up", help="Create and start containers (converge a running project to its file)")
    up.add_argument("-d", "--detach", action="store_true", help="run in the background")
    up.add_argument("--dry-run", action="store_true", dest="sub_dry_run", help="print the plan, change nothing")
    up.add_argument("--remove-orphans", action="store_true", help="(always: up makes the project exactly the file)")
    up.set_defaults(handler=cmd_up)

    down = csub.add_parser("down", help="Stop and remove containers and networks")
    down.add_argument("--dry-run", action="store_true", dest="sub_dry_run")
    down.add_argument("--remove-orphans", action="store_true", help="(always)")
    down.add_argument("-v", "--volumes", action="store_true", help="(no volumes in nsbridge)")
    down.set_defaults(handler=cmd_down)

    ps = csub.add_parser("ps", help="List containers")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--services", action="store_true")
    ps.add_argument("services_", nargs="*", metavar="SERVICE")
    ps.set_defaults(handler=cmd_ps)

    ex = csub.add_parser("exec", help="Execute a command in a running container")
    ex.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true", help="no pseudo-TTY (the default without a terminal)")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("--index", type=int, default=1)
    ex.add_argument("--privileged", action="store_true", help="every capability for this command")
    ex.add_argument("service")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(handler=cmd_exec)

    lg = csub.add_parser("logs", help="View output from containers")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--tail", default="all")
    lg.add_argument("--no-log-prefix", action="store_true")
    lg.add_argument("services_", nargs="*", metavar="SERVICE")
    lg.set_defaults(handler=cmd_logs)

    cf = csub.add_parser("config", help="Print the compose file as nsbridge understands it")
    cf.add_argument("-q", "--quiet", action="store_true", help="only check the file")
    cf.add_argument("--services", action="store_true")
    cf.add_argument("--networks", action="store_true")
    cf.add_argument("--format", choices=["yaml", "json"], default="yaml")
    cf.add_argument("--schema", action="store_true", help="print the JSON schema of what nsbridge reads (for editors)")
    cf.set_defaults(handler=cmd_config)


def load(a: argparse.Namespace):
    from nsbridge.compose.load import load_project

    return load_project(a.file or None, a.project_name, a.project_directory, a.profile)


def _project_name(a: argparse.Namespace) -> str:
    """For down/ps/logs/exec: -p alone is enough (Compose's `down -p NAME`)."""
    if a.project_name and not a.file:
        from nsbridge.compose import naming

        return naming.check_project_name(a.project_name)
    return load(a).name


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _dry(a: argparse.Namespace) -> bool:
    return bool(a.dry_run or getattr(a, "sub_dry_run", False))


def cmd_up(a: argparse.Namespace, host: Host) -> int:
    return up(host, load(a), detach=a.detach, dry_run=_dry(a))


def up(host: Host, project, detach: bool = True, dry_run: bool = False) -> int:
    from nsbridge.compose import apply

    apply.up(host, project, _say, dry_run=dry_run)
    if detach or dry_run:
        return 0
    with _engine(host) as e:
        names = _containers(e, project.name, [], True)
    try:
        _follow(host, names)
    except KeyboardInterrupt:
        _say("Gracefully stopping... (press Ctrl+C again to force)")
        with _engine(host) as e:
            for c in reversed(names):
                e.stop(c.id)
                _say(f" \u2714 Container {c.name}  Stopped")
    return 0


def cmd_down(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.compose import apply

    name = _project_name(a)
    with _engine(host) as e:
        apply.down(e, name, _say, dry_run=_dry(a))
    return 0


def _containers(e, project: str, services: list[str], running_only: bool = False) -> list:
    from nsbridge.compose import naming

    out = []
    for c in e.store.containers():
        if c.labels.get(naming.PROJECT) != project:
            continue
        if services and c.labels.get(naming.SERVICE) not in services:
            continue
        e.ps_state(c)
        if running_only and not c.running:
            continue
        out.append(c)
    out.sort(key=lambda c: c.name)
    return out


def cmd_ps(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.compose import naming
    from nsbridge.engine.views import Reader
    from nsbridge.render import tables

    name = _project_name(a)
    with Reader(host.root, host.netns) as e:
        e.ensure_ready()
        cs = _containers(e, name, a.services_, running_only=not a.all)
        if a.services:
            sys.stdout.write("".join(s + "\n" for s in dict.fromkeys(c.labels.get(naming.SERVICE, "") for c in cs)))
            return 0
        if a.quiet:
            sys.stdout.write("".join(c.id + "\n" for c in cs))
            return 0
        now = time.time()
        rows = [
            [c.name, c.image, tables.command_text(c, False), c.labels.get(naming.SERVICE, ""),
             tables.human_duration(now - tables.parse_time(c.created)) + " ago", tables.status_text(c, now), e.ports_text(c)]
            for c in cs
        ]
    sys.stdout.write(tables.table(["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"], rows))
    return 0


def cmd_exec(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli import container
    from nsbridge.compose import naming
    from nsbridge.engine.views import Reader

    if not a.command:
        raise Usage('"compose exec" requires at least 2 arguments.\nSee \'nsbridge compose exec --help\'.')
    name = _project_name(a)
    with Reader(host.root, host.netns) as e:
        e.ensure_ready()
        cs = [c for c in _containers(e, name, [a.service]) if c.labels.get(naming.NUMBER) == str(a.index)]
    if not cs:
        from nsbridge.errors import NotFound

        raise NotFound(f"service {a.service!r} is not running")
    tty = not a.no_tty and os.isatty(0) and os.isatty(1)
    # Compose's exec is docker exec -i (-t with a terminal) on the service's container
    args = argparse.Namespace(rest=[cs[0].name, *a.command], dashdash=False, tty=tty, interactive=True,
                              detach=a.detach, env=a.env, privileged=a.privileged)
    return container.cmd_exec(args, host)


def cmd_logs(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.engine.views import Reader

    name = _project_name(a)
    with Reader(host.root, host.netns) as e:
        e.ensure_ready()
        cs = _containers(e, name, a.services_)
    lines = int(a.tail) if a.tail.isdigit() else None
    width = max((len(_prefix(c)) for c in cs), default=0)
    for c in cs:
        data = _read(host, c.id)
        chunk = data.splitlines(keepends=True)
        if lines is not None:
            chunk = chunk[-lines:] if lines else []
        _write(c, chunk, width, a.no_log_prefix)
    if a.follow:
        _follow(host, cs, a.no_log_prefix, from_end=True)
    return 0


def _prefix(c) -> str:
    """Compose's log prefix: the service and container number (`web-1`)."""
    from nsbridge.compose import naming

    svc, num = c.labels.get(naming.SERVICE), c.labels.get(naming.NUMBER)
    return f"{svc}-{num}" if svc and num else c.name


def _read(host: Host, cid: str, offset: int = 0) -> bytes:
    try:
        with open(os.path.join(host.container_dir(cid), "log"), "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _write(c, lines: list[bytes], width: int, no_prefix: bool) -> None:
    pre = b"" if no_prefix else (_prefix(c).ljust(width) + "  | ").encode()
    sys.stdout.buffer.write(b"".join(pre + (ln if ln.endswith(b"\n") else ln + b"\n") for ln in lines))
    sys.stdout.flush()


def _follow(host: Host, cs: list, no_prefix: bool = False, from_end: bool = False) -> None:
    """Print new log lines of CS until interrupted (polling, as `logs -f`)."""
    width = max((len(_prefix(c)) for c in cs), default=0)
    offsets = {c.id: (len(_read(host, c.id)) if from_end else 0) for c in cs}
    while True:
        for c in cs:
            data = _read(host, c.id, offsets[c.id])
            cut = data.rfind(b"\n") + 1
            if cut:
                offsets[c.id] += cut
                _write(c, data[:cut].splitlines(keepends=True), width, no_prefix)
        time.sleep(0.2)


def cmd_config(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.compose import render

    if a.schema:
        with open(SCHEMA, encoding="utf-8") as f:
            sys.stdout.write(f.read())
        return 0
    p = load(a)
    for w in p.warnings:
        _say(f"WARNING: {w}")
    if a.quiet:
        return 0
    if a.services:
        sys.stdout.write("".join(s + "\n" for s in p.services))
    elif a.networks:
        sys.stdout.write("".join(n + "\n" for n in p.networks))
    elif a.format == "json":
        import json

        sys.stdout.write(json.dumps(render.config_dict(p), indent=2) + "\n")
    else:
        sys.stdout.write(render.config_yaml(p))
    return 0
