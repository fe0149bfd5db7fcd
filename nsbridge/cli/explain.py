"""`nsbridge show | why | trace | link | impair`: see, explain and break the
network (nsbridge/explain, nsbridge/engine/links.py). show and why only
read; trace imports scapy, and only when it runs."""
from __future__ import annotations

import argparse
import sys

from nsbridge.engine.host import Host

VERBS = ("show", "why", "trace", "link", "impair")


def _reader(host: Host):
    from nsbridge.engine.views import Reader

    return Reader(host.root, host.netns)


def _engine(host: Host):
    from nsbridge.engine.core import Engine

    return Engine(host.root, host.netns)


def add_parsers(sub, only: str | None = None) -> None:
    if only in (None, "show"):
        p = sub.add_parser("show", help="Show the kernel objects of networks and containers, with the commands that show them")
        p.add_argument("target", nargs="?", metavar="NET|CTR")
        p.add_argument("--format", default="text", choices=("text", "json", "dot", "html"))
        p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
        p.set_defaults(handler=cmd_show)
    if only in (None, "why"):
        p = sub.add_parser("why", help="Can A reach B? If not, the first cause, with the kernel's evidence")
        p.add_argument("a", metavar="A", help="a container, or host")
        p.add_argument("b", metavar="B", help="a container, host, or an IPv4 address")
        how = p.add_mutually_exclusive_group()
        how.add_argument("--tcp", type=_port, metavar="PORT", help="a TCP connect to PORT")
        how.add_argument("--udp", type=_port, metavar="PORT", help="a UDP datagram to PORT (an answer is needed)")
        how.add_argument("--icmp", action="store_true", help="an ICMP echo (the default)")
        p.add_argument("--timeout", type=_seconds, default=1.0, metavar="SECONDS")
        p.add_argument("--format", default="text", choices=("text", "json"))
        p.set_defaults(handler=cmd_why)
    if only in (None, "trace"):
        p = sub.add_parser("trace", help="Capture packets on a bridge, a container's interface or a veth")
        p.add_argument("where", metavar="NET|CTR[:IFACE]|VETH")
        p.add_argument("filter", nargs="*", metavar="FILTER", help="a tcpdump (BPF) filter, e.g. icmp or port 53")
        p.add_argument("-c", "--count", type=_count, default=0, metavar="N", help="stop after N packets")
        p.add_argument("-w", "--write", metavar="FILE.pcap", help="also write the packets to a pcap file")
        p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS", help="stop after SECONDS")
        p.set_defaults(handler=cmd_trace)
    if only in (None, "link"):
        p = sub.add_parser("link", help="Take a container's endpoint on a network down or up")
        p.add_argument("container", metavar="CTR")
        p.add_argument("network", metavar="NET")
        p.add_argument("state", choices=("down", "up"))
        p.set_defaults(handler=cmd_link)
    if only in (None, "impair"):
        p = sub.add_parser("impair", help="Shape what a container sends on a network (tc), or --clear")
        p.add_argument("container", metavar="CTR")
        p.add_argument("network", metavar="NET")
        p.add_argument("--rate", help="e.g. 1mbit (tbf)")
        p.add_argument("--delay", help="e.g. 50ms (netem)")
        p.add_argument("--jitter", help="e.g. 5ms, with --delay (netem)")
        p.add_argument("--loss", help="e.g. 5%% (netem)")
        p.add_argument("--clear", action="store_true", help="remove the impairment")
        p.set_defaults(handler=cmd_impair)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: 1 to 65535")
    return int(text)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: seconds, more than 0")
    return v


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: a number of packets")
    return int(text)


def _write(text: str, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def cmd_show(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.explain import show

    with _reader(host) as r:
        pic = show.gather(r, a.target)
    if a.format == "json":
        import json

        from nsbridge.record import asdict

        text = json.dumps(asdict(pic), indent=2) + "\n"
    elif a.format == "dot":
        from nsbridge.explain import dot

        text = dot.render(pic)
    elif a.format == "html":
        from nsbridge.explain import html

        text = html.render(pic)
    else:
        from nsbridge.explain import text as txt

        text = txt.render(pic)
    _write(text, a.output)
    return 0


def cmd_why(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.explain import why

    proto, port = ("tcp", a.tcp) if a.tcp else ("udp", a.udp) if a.udp else ("icmp", None)
    with _reader(host) as r:
        v = why.explain(r, a.a, a.b, proto, port, a.timeout)
    if a.format == "json":
        import json

        from nsbridge.record import asdict

        sys.stdout.write(json.dumps(asdict(v), indent=2) + "\n")
    else:
        sys.stdout.write(why.render(v))
    return 0 if v.reachable else 1


def cmd_trace(a: argparse.Namespace, host: Host) -> int:
    from nsbridge.explain import trace

    with _reader(host) as r:
        return trace.run(r, a.where, " ".join(a.filter), a.count, a.write, a.timeout)


def cmd_link(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        e.link_set(a.container, a.network, a.state == "up")
    return 0


def cmd_impair(a: argparse.Namespace, host: Host) -> int:
    with _engine(host) as e:
        e.impair(a.container, a.network, rate=a.rate, delay=a.delay, jitter=a.jitter, loss=a.loss, clear=a.clear)
    return 0
