"""The resolver process of one user bridge: a single-threaded UDP+TCP loop.

    python -m nsbridge.dns.server --db PATH --network-id ID --listen IP [--port 53]
        --upstream-file RESOLV_CONF [--ready-fd N]

Answers come from records.py over one persistent read-only SQLite connection. Packed
replies are cached per (querier view, query bytes after the ID) and dropped whenever
the store's generation changes; whether it may have changed is read before every
query from SQLite's WAL-index header in shared memory (StoreWatch: no system call),
and only then is the generation SELECTed. A hit costs no DNS parsing, only an ID
patch, with multi-address answers still rotated (one packed reply per rotation step). Other names go to the querier's own `--dns` servers if it has some
(as Docker's embedded DNS does), else to the upstream servers of a resolv.conf-format
file (`nameserver IP`; `IP#PORT` or `IP:PORT` too), over non-blocking UDP, tried in
turn within ~2 s, then SERVFAIL. That file is stat()ed each time a query is forwarded
(never on the local-answer path) and re-read when it changed, so a new upstream takes
effect on the next forwarded query with no signal and no restart. Malformed, truncated
and oversized packets are dropped; no per-packet exception leaves the loop. Logs one
line per start, stop, upstream change and (rate-limited) error.

Imports: dnslib, sqlite3, select (epoll), socket and records.py; not pyroute2, not threads,
not asyncio (their cost is the point of this design: docs/architecture.md, "Performance").
"""
from __future__ import annotations

import argparse
import gc
import heapq
import mmap
import os
import select
import signal
import socket
import sqlite3
import sys
import time

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord
from dnslib import PTR as RD_PTR
from dnslib import A as RD_A

from nsbridge.dns.records import FORWARDED, LOCAL, REFUSED, Answer, Records
from nsbridge.record import field, record

MAX_QUERY = 4096  # larger queries are not DNS queries we serve: dropped
RECV_BATCH = 64  # at most this many datagrams per wakeup, then the other sockets' turn
CACHE_MAX = 8192
PENDING_MAX = 1024
UPSTREAM_SOCKS_MAX = 64
FORWARD_BUDGET = 2.0  # seconds for all upstreams together
TCP_MAX_CONNS = 128
TCP_IDLE = 10.0
TCP_OUT_MAX = 256 * 1024
ERROR_LOG_EVERY = 10.0
_UNSEEN = object()


def log(msg: str) -> None:
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"{t} nsbridge-dns[{os.getpid()}] {msg}\n")
    sys.stderr.flush()


def parse_servers(hosts: list[str], own: tuple[str, int]) -> list[tuple]:
    """Server strings (`IP`, `IP#PORT`, `IP:PORT`, `[IPv6]:PORT`) as (family, sockaddr),
    skipping our own address (a forwarding loop) and what does not parse."""
    out: list[tuple] = []
    for host in hosts:
        host, _, port = host.partition("#")
        if not port and (host.count(":") == 1 or host.startswith("[")):
            host, _, port = host.rpartition(":") if host.startswith("[") else host.partition(":")
        try:
            ai = socket.getaddrinfo(host.strip("[]"), int(port or 53), flags=socket.AI_NUMERICHOST)[0]
        except (OSError, ValueError):
            continue
        if ai[4][:2] != own and (ai[0], ai[4]) not in out:
            out.append((ai[0], ai[4]))
    return out


def read_upstreams(path: str, own: tuple[str, int]) -> list[tuple]:
    """`nameserver` lines of a resolv.conf-format file as (family, sockaddr)."""
    try:
        with open(path) as f:
            lines = [x.split() for x in f]
    except OSError:
        return []
    return parse_servers([x[1] for x in lines if len(x) > 1 and x[0] == "nameserver"], own)


class HostUpstreams:
    """The host's upstream servers, following changes to their file.

    `get()` costs one stat(); the file is re-read when its identity, size or mtime
    changed, and also while it is "racily clean" (modified less than a second before
    we last read it: a second write within the same clock tick keeps the mtime)."""

    def __init__(self, path: str, own: tuple[str, int]) -> None:
        self.path, self.own = path, own
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
            servers = read_upstreams(self.path, self.own)
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


def packed(req: DNSRecord, ans: Answer, rcode: int, edns: bool, tc: bool = False) -> bytes:
    """The whole reply to REQ, minus its 2-byte ID."""
    rep = req.reply(ra=1, aa=0)  # Docker's answers are not authoritative either
    rep.header.ad = 0  # reply() copies the query's flags; we validate nothing
    rep.header.rcode = rcode
    rep.header.tc = int(tc)
    q = req.q
    for r in ans.records:
        rdata = RD_A(r) if ans.rtype == QTYPE.A else RD_PTR(r)
        rep.add_answer(RR(q.qname, ans.rtype, rdata=rdata, ttl=ans.ttl))
    if edns:
        rep.add_ar(EDNS0(udp_len=MAX_QUERY))
    return rep.pack()[2:]


READ, WRITE = select.EPOLLIN, select.EPOLLOUT


class Poller:
    """epoll, with a handler per file descriptor: what `selectors` does, minus the
    per-wakeup bookkeeping that costs more than the rest of a cached answer."""

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.handlers: dict[int, tuple] = {}  # fd -> (events, handler)

    def register(self, sock: socket.socket, events: int, handler) -> None:
        self.ep.register(sock.fileno(), events)
        self.handlers[sock.fileno()] = (events, handler)

    def events(self, sock: socket.socket) -> int:
        return self.handlers[sock.fileno()][0]

    def modify(self, sock: socket.socket, events: int) -> None:
        fd = sock.fileno()
        self.ep.modify(fd, events)
        self.handlers[fd] = (events, self.handlers[fd][1])

    def unregister(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self.handlers.pop(fd, None) is not None:
            self.ep.unregister(fd)

    def close(self) -> None:
        self.ep.close()


class StoreWatch:
    """Has the store changed since the last look? Asked before every query, so it must
    cost no system call: SQLite's WAL-index (the `-shm` file beside a WAL database,
    https://sqlite.org/walformat.html) begins with a 48-byte header that every
    committed transaction rewrites (its iChange counter, mxFrame, checksums). Mapped
    shared and read-only, a commit by the engine is visible here as soon as it has
    returned, and comparing 48 bytes costs ~0.2 us where a SELECT costs ~4. A torn read
    during a commit only looks like a change (one SELECT too many). When the file cannot
    be mapped, `changed()` is always True: one SELECT per query, as before."""

    HEADER = 48

    def __init__(self, db_path: str) -> None:
        self.mm: mmap.mmap | None = None
        self.last = b""
        try:
            fd = os.open(db_path + "-shm", os.O_RDONLY)
            try:
                self.mm = mmap.mmap(fd, self.HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
            finally:
                os.close(fd)
        except (OSError, ValueError):
            self.mm = None

    def changed(self) -> bool:
        if self.mm is None:
            return True
        h = self.mm[: self.HEADER]
        if h == self.last:
            return False
        self.last = h
        return True

    def close(self) -> None:
        if self.mm is not None:
            self.mm.close()


@record
class Entry:
    """Cached replies to one query from one view, one per rotation step.

    The rotation counter is shared by every entry of the same (view, name, type):
    queries that differ only in bytes we do not interpret (an EDNS cookie, which dig
    varies per run) still rotate through the addresses from one query to the next."""

    req: DNSRecord
    ans: Answer
    rcode: int
    edns: bool
    udp_limit: int
    steps: list
    rr: list  # [counter], shared
    tc: bytes | None = None
    #: the UDP reply body when there is one whatever the rotation (the hot path's shortcut)
    fast: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.steps) == 1:
            b = self.steps[0] = packed(self.req, self.ans, self.rcode, self.edns)
            if len(b) + 2 <= self.udp_limit:
                self.fast = b

    def body(self, tcp: bool) -> bytes:
        if len(self.steps) == 1:
            k = 0
        else:
            k = self.rr[0] % len(self.steps)
            self.rr[0] += 1
        b = self.steps[k]
        if b is None:
            b = self.steps[k] = packed(self.req, self.ans.rotated(k), self.rcode, self.edns)
        if not tcp and len(b) + 2 > self.udp_limit:
            if self.tc is None:
                self.tc = packed(self.req, Answer(LOCAL), self.rcode, self.edns, tc=True)
            b = self.tc
        return b


@record
class Conn:
    sock: socket.socket
    peer: str
    last: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    open: bool = True


@record
class Pending:
    query: bytes
    req: DNSRecord
    client: tuple  # ("udp", addr) | ("tcp", Conn)
    qend: int
    targets: list  # (family, sockaddr) of the upstreams to try, in order
    per_try: float
    up: int = 0  # index in targets of the upstream being tried


class Server:
    def __init__(self, conn: sqlite3.Connection, network_id: str, listen: str, port: int,
                 upstreams: "HostUpstreams", watch: StoreWatch | None = None) -> None:
        self.records = Records(conn, network_id)
        self.watch = watch or StoreWatch("")
        self.watch.changed()
        self.records.refresh()
        self.checked = time.monotonic()
        self.sel = Poller()
        fam = socket.AF_INET6 if ":" in listen else socket.AF_INET
        self.udp = self.sock(fam, socket.SOCK_DGRAM, self.udp_readable)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.udp.bind((listen, port))
        self.udp_ep = select.epoll()  # this socket alone: "is there more?" without an exception
        self.udp_ep.register(self.udp.fileno(), select.EPOLLIN)
        self.tcp = self.sock(fam, socket.SOCK_STREAM, self.accept)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((listen, port))
        self.tcp.listen(128)
        # SIGTERM wakes select through this pair (PEP 475 would otherwise resume it).
        self.wake_r, self.wake_w = socket.socketpair()
        for w in (self.wake_r, self.wake_w):
            w.setblocking(False)
        self.sel.register(self.wake_r, READ, lambda mask: self.wake_r.recv(512))
        self.own = (listen, port)
        self.host_ups = upstreams
        #: one connected UDP socket per upstream in use, keyed by (family, sockaddr)
        self.ups: dict[tuple, socket.socket] = {}
        self.own_ups: dict[tuple, list] = {}  # a querier's --dns strings -> parsed
        self.cache: dict[tuple, Entry] = {}
        self.rr: dict[tuple, list] = {}  # (view, name, type) -> [rotation counter]
        self.views: dict[str, object] = {}
        self.conns: dict[int, Conn] = {}
        self.pending: dict[int, Pending] = {}
        self.timers: list[tuple[float, int, int]] = []
        self.stopping = False
        self.stats = dict.fromkeys(("queries", "hits", "forwarded", "servfail", "dropped", "errors"), 0)
        self.last_err, self.muted = 0.0, 0

    def sock(self, fam: int, kind: int, handler) -> socket.socket:
        s = socket.socket(fam, kind)
        s.setblocking(False)
        self.sel.register(s, READ, handler)
        return s

    # -- the hot path ------------------------------------------------------
    def answer(self, data: bytes, src: str, client: tuple) -> bytes | None:
        """The reply to send now, or None (dropped, or forwarded: replied later)."""
        self.stats["queries"] += 1
        if self.watch.changed():
            self.refresh()
        view = self.views.get(src, _UNSEEN)
        if view is _UNSEEN:
            view = self.records.view(src)
            if len(self.views) >= CACHE_MAX:
                self.views.clear()
            self.views[src] = view
        e = self.cache.get((view, data[2:]))
        if e is None:
            e = self.miss(data, view, client, src)
            if e is None:
                return None
        else:
            self.stats["hits"] += 1
        return data[:2] + e.body(client[0] == "tcp")

    def refresh(self) -> None:
        """Read the generation (one SELECT); on a change, drop everything cached."""
        self.checked = time.monotonic()
        if self.records.refresh():
            self.cache.clear()
            self.views.clear()
            self.rr.clear()

    def udp_readable(self, mask: int) -> None:
        """Drain the UDP socket. Cache hits for single-record answers (nearly all
        traffic) take the short way: no method calls, one dict lookup each for the
        querier's view and the reply."""
        recvfrom, sendto, more = self.udp.recvfrom, self.udp.sendto, self.udp_ep.poll
        changed, views, cache, stats = self.watch.changed, self.views, self.cache, self.stats
        hits = 0
        try:
            for i in range(RECV_BATCH):
                # Another datagram waiting? An empty epoll of this socket alone costs ~0.5 us,
                # a recvfrom raising EAGAIN ~2 (the exception): ask before each one but the first.
                if i and not more(0):
                    return
                try:
                    # One byte more than we accept: a full buffer means oversized.
                    data, addr = recvfrom(MAX_QUERY + 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue
                if not 12 <= len(data) <= MAX_QUERY:
                    stats["dropped"] += 1
                    continue
                if not changed():
                    e = cache.get((views.get(addr[0], _UNSEEN), data[2:]))
                    if e is not None and e.fast is not None:
                        hits += 1
                        try:
                            sendto(data[:2] + e.fast, addr)
                        except OSError:
                            pass
                        continue
                else:
                    self.refresh()
                try:
                    out = self.answer(data, addr[0], ("udp", addr))
                    if out is not None:
                        sendto(out, addr)
                except Exception as e:
                    self.error(e)
        finally:
            stats["queries"] += hits
            stats["hits"] += hits

    def miss(self, data: bytes, view, client: tuple, src: str) -> Entry | None:
        try:
            req = DNSRecord.parse(data)
        except Exception:  # garbage is expected traffic: count it, never log it
            self.stats["dropped"] += 1
            return None
        h = req.header
        if h.qr or len(req.questions) != 1:
            self.stats["dropped"] += 1
            return None
        q = req.questions[0]
        if sum(len(x) + 1 for x in q.qname.label) + 1 > 255:  # over RFC 1035's 255 octets: no reply can carry it
            self.stats["dropped"] += 1
            return None
        edns = any(r.rtype == QTYPE.OPT for r in req.ar)
        limit = max([512] + [min(r.rclass, MAX_QUERY) for r in req.ar if r.rtype == QTYPE.OPT])
        if view is None:
            ans, rcode = Answer(REFUSED), RCODE.REFUSED
        elif h.opcode != 0:
            ans, rcode = Answer(LOCAL), RCODE.NOTIMP
        else:
            ans = self.records.lookup(view, str(q.qname), q.qtype) if q.qclass == 1 else FORWARDED
            if ans.action != LOCAL:
                self.forward(data, req, client, src)
                return None
            rcode = RCODE.NOERROR
        rr = [0]
        if len(ans.records) > 1:
            rr = self.rr.setdefault((view, str(q.qname).lower(), q.qtype), rr)
        e = Entry(req, ans, rcode, edns, limit, [None] * max(1, len(ans.records)), rr)
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
            self.rr.clear()
        self.cache[(view, data[2:])] = e
        return e

    # -- forwarding --------------------------------------------------------
    def upstreams_for(self, src: str) -> list[tuple]:
        """The querier's own --dns servers if it has some, else the host's (re-read
        if their file changed). A container's loopback servers are left out: Docker's
        resolver forwards from inside the container, where 127.0.0.1 is the container's
        own; from the host it would be the host's, which a container must not reach.
        With none left, the query gets SERVFAIL."""
        own = self.records.upstreams(src)
        if not own:
            return self.host_ups.get()
        ups = self.own_ups.get(own)
        if ups is None:
            if len(self.own_ups) >= CACHE_MAX:
                self.own_ups.clear()
            ups = self.own_ups[own] = [
                u for u in parse_servers(list(own), self.own)
                if not (u[0] == socket.AF_INET and u[1][0].startswith("127.")) and u[1][0] != "::1"]
        return ups

    def forward(self, data: bytes, req: DNSRecord, client: tuple, src: str) -> None:
        self.stats["forwarded"] += 1
        targets = self.upstreams_for(src)
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

    def deliver(self, client: tuple, msg: bytes) -> None:
        if client[0] == "udp":
            try:
                self.udp.sendto(msg, client[1])
            except OSError:
                pass
        else:
            self.tcp_send(client[1], msg)

    # -- sockets -----------------------------------------------------------
    def accept(self, mask: int) -> None:
        try:
            s, addr = self.tcp.accept()
        except OSError:
            return
        if len(self.conns) >= TCP_MAX_CONNS:
            s.close()
            return
        s.setblocking(False)
        c = Conn(s, addr[0], time.monotonic())
        self.conns[s.fileno()] = c
        self.sel.register(s, READ, lambda m: self.tcp_event(c, m))

    def tcp_event(self, c: Conn, mask: int) -> None:
        if mask & WRITE and c.open:
            self.tcp_flush(c)
        # EPOLLHUP/EPOLLERR come without EPOLLIN at times: read, and see EOF or the error.
        if not (mask & ~WRITE and c.open):
            return
        try:
            chunk = c.sock.recv(16384)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            return self.close(c)
        c.last = time.monotonic()
        c.inbuf += chunk
        while c.open and len(c.inbuf) >= 2:
            n = int.from_bytes(c.inbuf[:2], "big")
            if n < 12 or n > MAX_QUERY:  # no way to resync a bad stream: hang up
                self.stats["dropped"] += 1
                return self.close(c)
            if len(c.inbuf) < 2 + n:
                return
            msg = bytes(c.inbuf[2 : 2 + n])
            del c.inbuf[: 2 + n]
            try:
                out = self.answer(msg, c.peer, ("tcp", c))
                if out is not None:
                    self.tcp_send(c, out)
            except Exception as e:
                self.error(e)

    def tcp_send(self, c: Conn, msg: bytes) -> None:
        if c.open:
            c.outbuf += len(msg).to_bytes(2, "big") + msg
            self.tcp_flush(c)

    def tcp_flush(self, c: Conn) -> None:
        try:
            del c.outbuf[: c.sock.send(c.outbuf)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return self.close(c)
        if len(c.outbuf) > TCP_OUT_MAX:  # a client that does not read
            return self.close(c)
        want = READ | (WRITE if c.outbuf else 0)
        if self.sel.events(c.sock) != want:
            self.sel.modify(c.sock, want)

    def close(self, c: Conn) -> None:
        if c.open:
            c.open = False
            self.conns.pop(c.sock.fileno(), None)
            self.sel.unregister(c.sock)
            c.sock.close()

    def error(self, e: BaseException) -> None:
        self.stats["errors"] += 1
        now = time.monotonic()
        if now - self.last_err < ERROR_LOG_EVERY:
            self.muted += 1
            return
        more = f" ({self.muted} more since the last)" if self.muted else ""
        log(f"error: {type(e).__name__}: {e}{more}")
        self.last_err, self.muted = now, 0

    # -- the loop ----------------------------------------------------------
    def run(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.stopping = True

        # What exists now lives as long as the process: out of the collector's sight. The
        # hot path makes no reference cycles, so collections are rare (no pauses under load).
        gc.freeze()
        gc.set_threshold(50000, 20, 100)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        next_sweep = time.monotonic() + 1.0
        poll, handlers = self.sel.ep.poll, self.sel.handlers
        udp_fd, udp = self.udp.fileno(), self.udp_readable
        while not self.stopping:
            timeout = 1.0
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - time.monotonic()))
            try:
                ready = poll(timeout)
            except InterruptedError:
                continue
            for fd, mask in ready:
                try:
                    if fd == udp_fd:
                        udp(mask)
                    else:
                        h = handlers.get(fd)  # None: closed by an earlier handler of this batch
                        if h is not None:
                            h[1](mask)
                except Exception as e:
                    self.error(e)
            now = time.monotonic()
            try:
                if self.timers:
                    self.expire(now)
                if now >= next_sweep:
                    next_sweep = now + 1.0
                    if now - self.checked >= 1.0:  # a safety net under the store watch
                        self.refresh()
                    for c in [c for c in self.conns.values() if now - c.last > TCP_IDLE]:
                        self.close(c)
            except Exception as e:
                self.error(e)

    def shutdown(self) -> None:
        for c in list(self.conns.values()):
            self.close(c)
        for s in [self.udp, self.tcp, self.wake_r, self.wake_w, *self.ups.values()]:
            s.close()
        self.sel.close()
        self.udp_ep.close()
        self.watch.close()


def open_ro(path: str) -> sqlite3.Connection:
    # WAL lets this read-only connection read while the engine writes.
    uri = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    conn = sqlite3.connect(f"file:{uri}?mode=ro", uri=True, isolation_level=None, timeout=1.0)
    conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # fail now, not on the first query
    return conn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsbridge.dns.server")
    for flag in ("--db", "--network-id", "--listen"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--upstream-file", default="/etc/resolv.conf")
    ap.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    where = f"resolver for network {a.network_id[:12]} on {a.listen}:{a.port}"
    try:
        ups = HostUpstreams(a.upstream_file, (a.listen, a.port))
        conn = open_ro(a.db)  # first: the -shm file exists while a connection is open
        srv = Server(conn, a.network_id, a.listen, a.port, ups, StoreWatch(a.db))
    except Exception as e:
        log(f"cannot start {where}: {type(e).__name__}: {e}")
        return 1
    log(f"{where} started (upstreams from {a.upstream_file}: {fmt_servers(ups.servers)})")
    if a.ready_fd is not None:
        os.write(a.ready_fd, b"1")
        os.close(a.ready_fd)
    try:
        srv.run()
    except BaseException as e:  # a bug in the loop itself: say so, then stop
        log(f"{where} failed: {type(e).__name__}: {e}")
        return 1
    finally:
        srv.shutdown()
    log(f"{where} stopped ({' '.join(f'{k}={v}' for k, v in srv.stats.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
