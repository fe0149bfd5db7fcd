"""Container verbs: run, create, start, stop, restart, rm, ps, exec, inspect,
logs, port, rename (also as `container VERB`)."""
from __future__ import annotations

import argparse
import os
import sys
import time

from nsbridge.engine.host import Host
from nsbridge.errors import ExecFailed, MultiError, NsbridgeError, Usage, each


def _engine(host: Host):
    from nsbridge.engine.core import Engine

    return Engine(host.root, host.netns)


def _reader(host: Host):
    """Read-only verbs: the store and views only, no operations, no pyroute2."""
    from nsbridge.engine.views import Reader

    return Reader(host.root, host.netns)


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--name")
    p.add_argument("--network", "--net", action="append", default=[])
    p.add_argument("--network-alias", "--net-alias", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("--mac-address")
    p.add_argument("-h", "--hostname")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--link", action="append", default=[])
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--restart", default="no")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("-l", "--label", action="append", default=[])


class _Unused:
    """Stands in for the parser of a verb this run does not need: argparse
    costs ~0.2 ms a sub-parser, and a one-shot CLI pays it on every call."""

    def add_argument(self, *a, **k) -> None:
        pass

    def set_defaults(self, **k) -> None:
        pass


def add_parsers(sub, management: bool = False, only: str | None = None) -> None:
    def add(verb: str, **kw):
        if only is not None and verb != only:
            return _Unused()
        return sub.add_parser(verb, **kw)
    run = add("run", help="Create and run a new container", add_help=False)
    _run_flags(run)
    run.add_argument("--help", action="help")
    run.set_defaults(handler=cmd_run)
    create = add("create", help="Create a new container", add_help=False)
    _run_flags(create)
    create.add_argument("--help", action="help")
    create.set_defaults(handler=cmd_create)

    for verb, fn, hlp in (("start", cmd_start, "Start one or more stopped containers"),
                          ("stop", cmd_stop, "Stop one or more running containers"),
                          ("restart", cmd_restart, "Restart one or more containers")):
        p = add(verb, help=hlp)
        p.add_argument("containers", nargs="+")
        if verb != "start":
            p.add_argument("-t", "--time", "--timeout", type=int, default=10)
        else:
            p.add_argument("-a", "--attach", action="store_true")
            p.add_argument("-i", "--interactive", action="store_true")
        p.set_defaults(handler=fn)

    rm = add("rm", help="Remove one or more containers")
    rm.add_argument("containers", nargs="+")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("-v", "--volumes", action="store_true")
    rm.set_defaults(handler=cmd_rm)

    names = ["ps"] if not management else ["ls", "ps", "list"]
    for n in names:
        ps = add(n, help="List containers")
        ps.add_argument("-a", "--all", action="store_true")
        ps.add_argument("-q", "--quiet", action="store_true")
        ps.add_argument("--format")
        ps.add_argument("--no-trunc", action="store_true")
        ps.add_argument("-f", "--filter", action="append", default=[])
        ps.set_defaults(handler=cmd_ps)

    ex = add("exec", help="Execute a command in a running container")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("-w", "--workdir")
    ex.add_argument("-u", "--user")
    ex.add_argument("--privileged", action="store_true")
    ex.set_defaults(handler=cmd_exec)

    ins = add("inspect", help="Return low-level information on objects")
    ins.add_argument("names", nargs="+")
    ins.add_argument("-f", "--format")
    ins.add_argument("--type", choices=["container", "network"])
    ins.add_argument("-s", "--size", action="store_true")
    ins.set_defaults(handler=cmd_inspect, inspect_kind="container" if management else None)

    lg = add("logs", help="Fetch the logs of a container")
    lg.add_argument("container")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--tail", default="all")
    lg.set_defaults(handler=cmd_logs)

    pt = add("port", help="List port mappings or a specific mapping for the container")
    pt.add_argument("container")
    pt.add_argument("port", nargs="?")
    pt.set_defaults(handler=cmd_port)

    rn = add("rename", help="Rename a container")
    rn.add_argument("old")
    rn.add_argument("new")
    rn.set_defaults(handler=cmd_rename)


def _spec(a: argparse.Namespace):
    from nsbridge.engine.containers import RunSpec
    from nsbridge.engine.validate import labels as validate_labels

    rest = list(a.rest)
    if a.dashdash:
        image, cmd = "", rest
    elif rest:
        image, cmd = rest[0], rest[1:]
    else:
        raise Usage('"run" requires at least 1 argument.\nSee \'nsbridge run --help\'.')
    if not image and not cmd:
        raise Usage("a command is required after --")
    if a.tty and not os.isatty(0) and not a.detach:
        raise NotATty()
    return RunSpec(
        image=image, cmd=cmd, name=a.name, networks=a.network, ip=a.ip, hostname=a.hostname,
        aliases=a.network_alias, detach=a.detach, interactive=a.interactive, tty=a.tty, auto_remove=a.rm,
        env=a.env, dns=a.dns, dns_search=a.dns_search, dns_options=a.dns_option, add_hosts=a.add_host,
        links=a.link, publish=a.publish, publish_all=a.publish_all, expose=a.expose, restart=a.restart,
        mac_address=a.mac_address, cap_add=a.cap_add, cap_drop=a.cap_drop, privileged=a.privileged,
        labels=validate_labels(a.label),
    )


class NotATty(ExecFailed):
    """Docker's CLI refuses -t without a terminal itself: no prefix, exit 1."""

    def __init__(self) -> None:
        super().__init__("the input device is not a TTY", 1)


def _warnings(c) -> None:
    for w in getattr(c, "warnings", []) or []:
        sys.stderr.write(f"WARNING: {w}\n")


def cmd_run(a: argparse.Namespace, host: Host) -> int:
    spec = _spec(a)
    with _engine(host) as e:
        c = e.run(spec)
        _warnings(e)
        if spec.detach:
            print(c.id)
            return 0
        sys.stdout.flush()
        return e.wait(c)


def cmd_create(a: argparse.Namespace, host: Host) -> int:
    spec = _spec(a)
    with _engine(host) as e:
        c = e.create(spec)
        _image_note(e, c)
        _warnings(e)
    print(c.id)
    return 0


def _image_note(e, c) -> None:
    """An image with no stand-in and no command: say once that it will idle
    (`run` notes it when it starts the container; `create` here)."""
    note = e.standin_note(c)
    ws = getattr(e, "warnings", None)
    if note and isinstance(ws, list):
        if note not in ws:
            ws.append(note)
    elif note:
        sys.stderr.write(f"WARNING: {note}\n")


def _each(refs: list[str], fn) -> int:
    """`start/stop/restart a b c`: print each name as it is done, as Docker."""
    each(refs, fn, on_done=lambda ref: (print(ref), sys.stdout.flush()))
    return 0


def cmd_start(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        return _each(a.containers, e.start)


def cmd_stop(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        return _each(a.containers, lambda r: e.stop(r, a.time))


def cmd_restart(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        return _each(a.containers, lambda r: e.restart(r, a.time))


def cmd_rm(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        try:
            removed = e.rm(a.containers, force=a.force)
        except MultiError as err:
            sys.stdout.write("".join(n + "\n" for n in err.done))
            sys.stdout.flush()
            raise
    sys.stdout.write("".join(n + "\n" for n in removed))
    return 0


def cmd_ps(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import print_rows
    from nsbridge.render import tables

    with _reader(host) as e:
        cs = e.ps(all=a.all or bool(a.filter))
        cs = [c for c in cs if _ps_match(c, a.filter)]
        rows = [tables.container_row(c, e.ports_text(c), e.networks_text(c), a.no_trunc) for c in cs]
    print_rows(rows, tables.PS_COLUMNS, a.format, a.quiet)
    return 0


def _ps_match(c, filters: list[str]) -> bool:
    for f in filters:
        k, _, v = f.partition("=")
        if k == "name" and v not in c.name:
            return False
        if k == "status" and c.state != v:
            return False
        if k == "id" and not c.id.startswith(v):
            return False
        if k == "ancestor" and c.image != v:
            return False
        if k == "label":
            from nsbridge.render.tables import label_match

            if not label_match(c.labels, v):
                return False
    return True


def cmd_exec(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.engine import process

    if not a.rest or a.dashdash and len(a.rest) < 2:
        raise Usage('"exec" requires at least 2 arguments.\nSee \'nsbridge exec --help\'.')
    ref, cmd = a.rest[0], a.rest[1:]
    if not cmd:
        raise Usage('"exec" requires at least 2 arguments.\nSee \'nsbridge exec --help\'.')
    if a.tty and not os.isatty(0):
        raise NotATty()
    if a.env:
        from nsbridge.engine.validate import env_var

        for v in a.env:
            env_var(v)
    with _reader(host) as e:
        c, entry = e.exec_entry(ref)
    if a.privileged:
        entry.caps = None  # every capability, for this command only (as Docker's exec --privileged)
    if a.detach:
        process.check_command(cmd, process.container_env(c, a.env)["PATH"])
        d = host.container_dir(c.id)
        process.spawn_detached(entry, c, cmd, os.path.join(d, "log"), os.path.join(d, "exec-exitcode"), keep_stdin=False)
        return 0
    if not a.interactive:
        # Docker gives the command no stdin without -i.
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
    sys.stdout.flush()
    process.exec_in_place(entry, c, cmd, a.env, tty=a.tty)
    return 126  # not reached: exec_in_place replaces this process or raises


def cmd_inspect(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import print_inspect

    kind = a.type or a.inspect_kind
    objs, errors = [], []
    with _reader(host) as e:
        for name in a.names:
            try:
                objs.append(e.inspect_any(name, kind))
            except NsbridgeError as err:
                errors.append(err)
    if objs or not a.format:
        print_inspect(objs, a.format)
    if errors:
        from nsbridge.errors import ClientError

        raise MultiError([ClientError(str(x) if "No such" not in str(x) else f"Error: {x}") for x in errors])
    return 0


def cmd_logs(a: argparse.Namespace, host: Host) -> int:
    with _reader(host) as e:
        c = e.container(a.container)
        path = os.path.join(host.container_dir(c.id), "log")
        lines = int(a.tail) if a.tail.isdigit() else None  # Docker: anything else is "all"
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if lines is not None:
            data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines else b""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        if a.follow:
            with open(path, "rb") if os.path.exists(path) else open(os.devnull, "rb") as f:
                f.seek(0, 2)
                while True:
                    chunk = f.read()
                    if chunk:
                        sys.stdout.buffer.write(chunk)
                        sys.stdout.flush()
                    elif not e.ps_state(e.store.container(c.id)).running:
                        break
                    else:
                        time.sleep(0.2)
    return 0


def cmd_port(a: argparse.Namespace, host: Host) -> int:
    with _reader(host) as e:
        c = e.ps_state(e.container(a.container))
        lines = e.port_lines(c, a.port)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def cmd_rename(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        e.rename(a.old, a.new)
    return 0
