"""`nsbridge system ...`: info, reconcile, restore, reset, join, leave."""
from __future__ import annotations

import argparse
import json
import sys

from nsbridge.engine.host import Host


def _engine(host: Host):
    from nsbridge.engine.core import Engine

    return Engine(host.root, host.netns)


def add_parser(sub) -> None:
    p = sub.add_parser("system", help="Manage nsbridge itself")
    ssub = p.add_subparsers(dest="sverb", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda a, h: (p.print_help(), 0)[1])
    info = ssub.add_parser("info", help="Show what nsbridge manages on this host")
    info.add_argument("-f", "--format")
    info.set_defaults(handler=cmd_info)
    rc = ssub.add_parser("reconcile", help="Make the kernel and the state agree (after a crash)")
    rc.set_defaults(handler=cmd_reconcile)
    rs = ssub.add_parser("restore", help="Re-create networks after a reboot and restart containers with a restart policy")
    rs.set_defaults(handler=cmd_restore)
    join = ssub.add_parser("join", help="Join a cluster store (etcd) for overlay networks across hosts")
    join.add_argument("store", metavar="etcd://HOST:PORT")
    join.add_argument("--advertise", required=True, metavar="ADDR",
                      help="this host's address on the underlay (other hosts send VXLAN packets to it)")
    join.add_argument("--ttl", type=int, default=20, metavar="SECONDS",
                      help="how long the store keeps a silent host's endpoints (default 20)")
    join.set_defaults(handler=cmd_join)
    leave = ssub.add_parser("leave", help="Leave the cluster store (refused while containers are on overlay networks)")
    leave.add_argument("-f", "--force", action="store_true", help="forget the membership even if the store is unreachable")
    leave.set_defaults(handler=cmd_leave)
    reset = ssub.add_parser("reset", help="Remove every object nsbridge made on this host, and its state")
    reset.add_argument("-f", "--force", action="store_true")
    reset.set_defaults(handler=cmd_reset)


def cmd_info(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        info = e.system_info()
    if a.format:
        from nsbridge.cli.output import print_inspect

        print_inspect([info], a.format)
        return 0
    w = sys.stdout.write
    w(f"Root: {info['Root']}\n")
    w(f"Host namespace: {info['HostNamespace']}\n")
    w(f"Engine: {info['Engine']['ID']} (device group {info['Engine']['DeviceGroup']})\n")
    w(f"Default bridge: {info['DefaultBridge']['Name']} ({info['DefaultBridge']['Subnet']})\n")
    w(f"Containers: {info['Containers']}\n Running: {info['ContainersRunning']}\n Stopped: {info['ContainersStopped']}\n")
    w(f"Networks: {info['Networks']}\n")
    w("Resolvers:\n")
    for name, r in sorted(info["Resolvers"].items()):
        n = r["ServedContainers"]
        w(f" {name}: pid {r['Pid']} on {r['Address']}:53 in {n} container{'' if n == 1 else 's'} ({r['State']}),"
          f" log {r['Log']}\n")
        last = r.get("LastExit")
        if last:
            w(f"  previous: pid {last['Pid']} {last['Ended']} (noticed {last['NoticedAt']})\n")
            w("".join(f"   | {line}\n" for line in last["LastLines"]))
    w(f"Upstream resolv.conf: {info['UpstreamResolvConf']}\n")
    if info.get("Docker"):
        w(f"Docker: {info['Docker']}\n")
    _cluster_lines(info.get("Cluster"), w)
    return 0


def _cluster_lines(c: dict | None, w) -> None:
    """Docker's `Cluster Store:` and `Cluster Advertise:` lines, and the hosts."""
    if c is None:
        w("Cluster Store: (none: `nsbridge system join etcd://HOST:2379 --advertise ADDR`)\n")
        return
    w(f"Cluster Store: {c['Store']}\n")
    w(f"Cluster Advertise: {c['Advertise']}\n")
    wt = c["Watcher"]
    last = f", last words: {wt['LastWords']}" if wt["LastWords"] else ""
    w(f" Watcher: pid {wt['Pid']} ({wt['State']}{last}), log {wt['Log']}\n")
    if c["Error"]:
        w(f" Hosts: unknown: {c['Error']}\n")
        return
    w(f" Hosts: {len(c['Hosts'])}\n")
    for h in c["Hosts"]:
        w(f"  {h['Name']} {h['Advertise']}{' (this host)' if h['Self'] else ''}\n")


def cmd_join(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        m = e.join(a.store, a.advertise, a.ttl)
    print(f"joined the cluster store at {m.store} as {m.name} (advertise {m.advertise}, ttl {m.ttl} s)")
    return 0


def cmd_leave(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        m = e.leave(force=a.force)
    print(f"left the cluster store at {m.store}")
    return 0


def cmd_reconcile(a: argparse.Namespace, host: Host) -> int:
    return _report(host, "reconcile")


def cmd_restore(a: argparse.Namespace, host: Host) -> int:
    return _report(host, "restore")


def _report(host: Host, op: str) -> int:
    """Run an engine repair operation and print its report, one line each."""
    with _engine(host) as e:
        report = getattr(e, op)()
    for line in report:
        print(line)
    return 0


def cmd_reset(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.cli.output import confirm

    where = f"sandbox host {host.netns}" if host.netns else "this machine"
    if not a.force and not confirm(
        f"This removes every container, network, rule and resolver nsbridge made on {where}, "
        f"and its state in {host.root}."
    ):
        return 0
    from nsbridge.engine.core import Engine

    report = Engine.reset(host)
    for line in report:
        print(line)
    return 0


__all__ = ["add_parser", "json"]
