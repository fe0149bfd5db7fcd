"""Forwarding what the resolver does not answer itself, for server.py.

Other names go to the querier's own `--dns` servers if it has some (as Docker's
embedded DNS does), else to the upstream servers of a resolv.conf-format file
(`nameserver IP`; `IP#PORT` or `IP:PORT` too), over non-blocking UDP from the host's
namespace, tried in turn within ~2 s, then SERVFAIL. That file is stat()ed each time
a query is forwarded (never on the local-answer path) and re-read when it changed,
so a new upstream takes effect on the next forwarded query with no signal and no
restart.
"""
from __future__ import annotations

import heapq
import os
import socket
import time

from dnslib import RCODE, DNSRecord

from nsbridge.dns.records import LOCAL, Answer
from nsbridge.dns.wire import log, packed
from nsbridge.record import record

PENDING_MAX = 1024
UPSTREAM_SOCKS_MAX = 64
FORWARD_BUDGET = 2.0  # seconds for all upstreams together
RECV_BATCH = 64
OWN_MAX = 8192


def parse_servers(hosts: list[str]) -> list[tuple]:
    """Server strings (`IP`, `IP#PORT`, `IP:PORT`, `[IPv6]:PORT`) as (family, sockaddr),
    skipping what does not parse. (No forwarding loop to avoid: the resolver listens
    only inside containers, on 127.0.0.11, and forwards from the host's namespace.)"""
    out: list[tuple] = []
    for host in hosts:
        host, _, port = host.partition("#")
        if not port and (host.count(":") == 1 or host.startswith("[")):
            host, _, port = host.rpartition(":") if host.startswith("[") else host.partition(":")
        try:
            ai = socket.getaddrinfo(host.strip("[]"), int(port or 53), flags=socket.AI_NUMERICHOST)[0]
        except (OSError, ValueError):
            continue
        if (ai[0], ai[4]) not in out:
            out.append((ai[0], ai[4]))
    return out


def read_upstreams(path: str) -> list[tuple]:
    """`nameserver` lines of a resolv.conf-format file as (family, sockaddr)."""
    try:
        with open(path) as f:
            lines = [x.split() for x in f]
    except OSError:
        return []
    return parse_servers([x[1] for x in lines if len(x) > 1 and x[0] == "nameserver"])


class HostUpstreams:
    """The host's upstream servers, following changes to their file.

    `get()` costs one stat(); the file is re-read when its identity, size or mtime
    changed, and also while it is "racily clean" (modified less than a second before
    we last read it: a second write within the same clock tick keeps the mtime)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.key: tuple | None = None
        self.read_at = 0.0
        self.servers: list[tuple] = []
        self.get()

    def get(self) -> list[tuple]:
        try:
            st = os.stat(self.path)
            key: tuple | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            st, key = None, None
        if key != self.key or (st is not None and self.read_at - st.st_mtime_ns / 1e9 < 1.0):
            self.read_at = time.time()
            servers = read_upstreams(self.path)
            if self.key is not None and servers != self.servers:
                log(f"upstreams now: {fmt_servers(servers)}")
            self.key, self.servers = key, servers
        return self.servers


def fmt_servers(servers: list[tuple]) -> str:
    return ", ".join(f"{a[0]}#{a[1]}" for _, a in servers) or "none"


def question_end(msg: bytes) -> int:
    """Offset just past the first question (queries carry no compression)."""
    i = 12
    while i < len(msg) and 0 < msg[i] < 0xC0:
        i += msg[i] + 1
    return min(len(msg), i + (6 if i < len(msg) and msg[i] else 5))


@record
class Pending:
    query: bytes
    req: DNSRecord
    client: tuple  # ("udp", socket, addr) | ("tcp", Conn)
    qend: int
    targets: list  # (family, sockaddr) of the upstreams to try, in order
    per_try: float
    up: int = 0  # index in targets of the upstream being tried


class Forwarder:
    """The forwarding half of server.Server (a mixin: it uses its poller, its
    records, its stats and its deliver())."""

    def __init__(self, upstreams: HostUpstreams) -> None:
        self.host_ups = upstreams
        #: one connected UDP socket per upstream in use, keyed by (family, sockaddr)
        self.ups: dict[tuple, socket.socket] = {}
        self.own_ups: dict[tuple, list] = {}  # a querier's --dns strings -> parsed
        self.pending: dict[int, Pending] = {}
        self.timers: list[tuple[float, int, int]] = []

    def upstreams_for(self, cid: str) -> list[tuple]:
        """The querier's own --dns servers if it has some, else the host's (re-read
        if their file changed). A container's loopback servers are left out: Docker's
        resolver forwards from inside the container, where 127.0.0.1 is the container's
        own; from the host it would be the host's, which a container must not reach.
        With none left, the query gets SERVFAIL."""
        own = self.records.upstreams(cid)
        if not own:
            return self.host_ups.get()
        ups = self.own_ups.get(own)
        if ups is None:
            if len(self.own_ups) >= OWN_MAX:
                self.own_ups.clear()
            ups = self.own_ups[own] = [
                u for u in parse_servers(list(own))
                if not (u[0] == socket.AF_INET and u[1][0].startswith("127.")) and u[1][0] != "::1"]
        return ups

    def forward(self, data: bytes, req: DNSRecord, client: tuple, cid: str) -> None:
        self.stats["forwarded"] += 1
        targets = self.upstreams_for(cid)
        p = Pending(data, req, client, question_end(data), targets,
                    max(0.3, FORWARD_BUDGET / max(1, len(targets))))
        if not targets or len(self.pending) >= PENDING_MAX:
            self.fail(p)
            return
        uid = int.from_bytes(os.urandom(2), "big")
        while uid in self.pending:
            uid = (uid + 1) & 0xFFFF
        self.pending[uid] = p
        self.send_upstream(uid, p, time.monotonic())

    def up_sock(self, target: tuple) -> socket.socket:
        s = self.ups.get(target)
        if s is None:
            if len(self.ups) >= UPSTREAM_SOCKS_MAX:  # drop the idle ones
                busy = {p.targets[p.up] for p in self.pending.values() if p.up < len(p.targets)}
                for t in [t for t in self.ups if t not in busy]:
                    sock = self.ups.pop(t)
                    self.sel.unregister(sock)
                    sock.close()
            s = self.ups[target] = self.sock(target[0], socket.SOCK_DGRAM,
                                             lambda mask: self.upstream_readable(target))
        return s

    def send_upstream(self, uid: int, p: Pending, now: float) -> None:
        while p.up < len(p.targets):
            target = p.targets[p.up]
            try:
                s = self.up_sock(target)
                # Connected (again, at each use: the route may have come up since): the
                # kernel then drops datagrams from anyone but this upstream.
                s.connect(target[1])
                s.send(uid.to_bytes(2, "big") + p.query[2:])
            except OSError:
                p.up += 1
                continue
            heapq.heappush(self.timers, (now + p.per_try, uid, p.up))
            return
        del self.pending[uid]
        self.fail(p)

    def fail(self, p: Pending) -> None:
        self.stats["servfail"] += 1
        self.deliver(p.client, p.query[:2] + packed(p.req, Answer(LOCAL), RCODE.SERVFAIL, False))

    def upstream_readable(self, target: tuple) -> None:
        s = self.ups.get(target)
        if s is None:
            return
        for _ in range(RECV_BATCH):
            try:
                data = s.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP unreachable: move every query waiting on it along
                now = time.monotonic()
                for uid, p in list(self.pending.items()):
                    if p.up < len(p.targets) and p.targets[p.up] == target:
                        p.up += 1
                        self.send_upstream(uid, p, now)
                return
            if len(data) < 12:
                continue
            uid = int.from_bytes(data[:2], "big")
            p = self.pending.get(uid)
            # Same upstream and same question, or it is not the reply we wait for.
            if p is None or p.up >= len(p.targets) or p.targets[p.up] != target or \
                    data[4:6] != p.query[4:6] or data[12:p.qend].lower() != p.query[12:p.qend].lower():
                continue
            del self.pending[uid]
            self.deliver(p.client, p.query[:2] + data[2:])

    def expire(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, uid, up = heapq.heappop(self.timers)
            p = self.pending.get(uid)
            if p is not None and p.up == up:
                p.up += 1
                self.send_upstream(uid, p, now)
