"""`nsbridge network ...`: ls, create, inspect, rm, connect, disconnect, prune."""
from __future__ import annotations

import argparse
import sys

from nsbridge.engine.host import Host
from nsbridge.errors import MultiError, NotFound, NsbridgeError


def _engine(host: Host):
    from nsbridge.engine.core import Engine

    return Engine(host.root, host.netns)


def _reader(host: Host):
    from nsbridge.engine.views import Reader

    return Reader(host.root, host.netns)


def add_parser(sub) -> None:
    p = sub.add_parser("network", help="Manage networks")
    nsub = p.add_subparsers(dest="nverb", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda a, h: (p.print_help(), 0)[1])

    ls = nsub.add_parser("ls", aliases=["list"], help="List networks")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("-f", "--filter", action="append", default=[])
    ls.add_argument("--format")
    ls.add_argument("--no-trunc", action="store_true")
    ls.set_defaults(handler=cmd_ls)

    c = nsub.add_parser("create", help="Create a network")
    c.add_argument("name")
    c.add_argument("-d", "--driver", default="bridge")
    c.add_argument("--subnet", action="append", default=[])
    c.add_argument("--gateway", action="append", default=[])
    c.add_argument("--ip-range", action="append", default=[])
    c.add_argument("--aux-address", action="append", default=[])
    c.add_argument("--internal", action="store_true")
    c.add_argument("--attachable", action="store_true")
    c.add_argument("--label", action="append", default=[])
    c.add_argument("-o", "--opt", action="append", default=[])
    c.add_argument("--ipv6", action="store_true")
    c.add_argument("--scope", choices=["local", "swarm", "global"])
    c.add_argument("--ingress", action="store_true")
    c.set_defaults(handler=cmd_create)

    i = nsub.add_parser("inspect", help="Display detailed information on one or more networks")
    i.add_argument("names", nargs="+")
    i.add_argument("-f", "--format")
    i.add_argument("-v", "--verbose", action="store_true")
    i.set_defaults(handler=cmd_inspect)

    rm = nsub.add_parser("rm", aliases=["remove"], help="Remove one or more networks")
    rm.add_argument("names", nargs="+")
    rm.add_argument("-f", "--force", action="store_true")
    rm.set_defaults(handler=cmd_rm)

    cn = nsub.add_parser("connect", help="Connect a container to a network")
    cn.add_argument("network")
    cn.add_argument("container")
    cn.add_argument("--ip")
    cn.add_argument("--alias", action="append", default=[])
    cn.add_argument("--link", action="append", default=[])
    cn.set_defaults(handler=cmd_connect)

    dc = nsub.add_parser("disconnect", help="Disconnect a container from a network")
    dc.add_argument("network")
    dc.add_argument("container")
    dc.add_argument("-f", "--force", action="store_true")
    dc.set_defaults(handler=cmd_disconnect)

    pr = nsub.add_parser("prune", help="Remove all unused networks")
    pr.add_argument("-f", "--force", action="store_true")
    pr.set_defaults(handler=cmd_prune)


def cmd_ls(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import print_rows
    from nsbridge.render import tables

    with _reader(host) as e:
        nets = [n for n in e.network_ls() if tables.network_matches(n, a.filter)]
    rows = [tables.network_row(n, a.no_trunc) for n in nets]
    print_rows(rows, tables.NETWORK_COLUMNS, a.format, a.quiet)
    return 0


def cmd_create(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.engine import validate
    from nsbridge.errors import InvalidArgument

    if a.ipv6:
        raise InvalidArgument("IPv6 networks are not supported by nsbridge yet")
    if a.scope in ("swarm", "global") or a.ingress or a.driver == "overlay":
        from nsbridge.engine.networks import NOT_IN_SWARM
        from nsbridge.errors import Forbidden

        raise Forbidden(NOT_IN_SWARM)
    subnet, gateway, ip_range = validate.ipam_flags(a.subnet, a.gateway, a.ip_range)
    with _engine(host) as e:
        n = e.network_create(
            a.name,
            driver=a.driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
            aux_addresses=validate.aux_addresses(a.aux_address),
            internal=a.internal,
            attachable=a.attachable,
            labels=validate.labels(a.label),
            options=validate.key_values(a.opt, "option"),
        )
    print(n.id)
    return 0


def cmd_inspect(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import print_inspect

    objs, errors = [], []
    with _reader(host) as e:
        for name in a.names:
            try:
                objs.append(e.network_inspect(name))
            except NotFound as err:
                errors.append(err)
    if objs or not a.format:
        print_inspect(objs, a.format)
    if errors:
        raise MultiError(errors) if len(errors) > 1 else errors[0]
    return 0


def cmd_rm(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        try:
            removed = e.network_rm(a.names)
        except MultiError as err:
            print_done(err.done)
            raise
    print_done(removed)
    return 0


def print_done(names: list[str]) -> None:
    sys.stdout.write("".join(n + "\n" for n in names))
    sys.stdout.flush()


def cmd_connect(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        e.connect(a.network, a.container, ip=a.ip, aliases=a.alias, links=a.link)
    return 0


def cmd_disconnect(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        e.disconnect(a.network, a.container, force=a.force)
    return 0


def cmd_prune(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import confirm

    if not a.force and not confirm("This will remove all custom networks not used by at least one container."):
        return 0
    with _engine(host) as e:
        removed = e.network_prune()
    if removed:
        print("Deleted Networks:")
        for n in removed:
            print(n)
        print()
    return 0


__all__ = ["add_parser", "NsbridgeError"]
