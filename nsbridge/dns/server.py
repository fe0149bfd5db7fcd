"""The resolver process of one user bridge: a single-threaded UDP+TCP loop.

    python -m nsbridge.dns.server --db PATH --network-id ID --upstream-file RESOLV_CONF [--ready-fd N]

It listens on 127.0.0.11:53 inside each container it serves (embedded.py, holder.py:
one UDP and one TCP socket per container, held in the container's namespace), so a
query's socket says which container asks. Answers come from records.py over one
persistent read-only SQLite connection. Packed replies are cached per (querier view,
query bytes after the ID) and dropped whenever the store's generation changes; whether
it may have changed is read before every query from SQLite's WAL-index header in
shared memory (StoreWatch: no system call), and only then is the generation SELECTed.
A hit costs no DNS parsing, only an ID patch, with multi-address answers still
rotated (one packed reply per rotation step). Other names are forwarded (forward.py).
Malformed, truncated and oversized packets are dropped; no per-packet exception
leaves the loop. Logs one line per start, stop, upstream change and (rate-limited)
error; a fatal signal leaves Python's traceback in the log (faulthandler).

Imports: dnslib, sqlite3, select (epoll), socket and records.py; not pyroute2, not
asyncio, and no thread but the short-lived one that binds in containers' namespaces
(their cost is the point of this design: docs/architecture.md, "Performance").
"""
from __future__ import annotations

import argparse
import array
import fcntl
import faulthandler
import gc
import mmap
import os
import resource
import select
import signal
import socket
import sqlite3
import sys
import termios
import time

from dnslib import QTYPE, RCODE, DNSRecord

from nsbridge.dns import embedded
from nsbridge.dns.forward import Forwarder, HostUpstreams, fmt_servers
from nsbridge.dns.holder import Holder, Listener
from nsbridge.dns.records import FORWARDED, LOCAL, REFUSED, Answer, Records
from nsbridge.dns.wire import MAX_QUERY, log, packed
from nsbridge.record import field, record

RECV_BATCH = 64  # at most this many datagrams per wakeup, then the other sockets' turn
CACHE_MAX = 8192
TCP_MAX_CONNS = 128
TCP_IDLE = 10.0
TCP_OUT_MAX = 256 * 1024
ERROR_LOG_EVERY = 10.0
_UNSEEN = object()


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
    be mapped, `changed()` is always True: one SELECT per query, as before.

    The file stays open until close(): closing any descriptor of a file drops every
    POSIX lock the process holds on it, and SQLite's connection in this process holds
    one on the -shm (byte 128) to tell later openers that the file is in use. Without
    it, the next command to open the store truncates the -shm to rebuild it, and a
    read of this mapping meanwhile is a SIGBUS (issue 11: resolvers died under load)."""

    HEADER = 48

    def __init__(self, db_path: str) -> None:
        self.mm: mmap.mmap | None = None
        self.fd = -1
        self.last = b""
        try:
            self.fd = os.open(db_path + "-shm", os.O_RDONLY | os.O_CLOEXEC)
            self.mm = mmap.mmap(self.fd, self.HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
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
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


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
    cid: str  # the container whose 127.0.0.11 it came in on
    last: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    open: bool = True


class Server(Holder, Forwarder):
    READ = READ

    def __init__(self, conn: sqlite3.Connection, network_id: str, upstreams: HostUpstreams,
                 watch: StoreWatch | None = None, control: str | None = None) -> None:
        self.records = Records(conn, network_id)
        self.watch = watch or StoreWatch("")
        self.watch.changed()
        self.records.refresh()
        self.checked = time.monotonic()
        self.sel = Poller()
        # SIGTERM wakes select through this pair (PEP 475 would otherwise resume it).
        self.wake_r, self.wake_w = socket.socketpair()
        for w in (self.wake_r, self.wake_w):
            w.setblocking(False)
        self.sel.register(self.wake_r, READ, lambda mask: self.wake_r.recv(512))
        self.cache: dict[tuple, Entry] = {}
        self.rr: dict[tuple, list] = {}  # (view, name, type) -> [rotation counter]
        self.views: dict[str, object] = {}  # container id -> its view (or None: refused)
        self.conns: dict[int, Conn] = {}
        self.nread = array.array("i", [0])
        self.stopping = 0
        self.stats = dict.fromkeys(("queries", "hits", "forwarded", "servfail", "dropped", "errors"), 0)
        self.last_err, self.muted = 0.0, 0
        Forwarder.__init__(self, upstreams)
        Holder.__init__(self, control)

    def sock(self, fam: int, kind: int, handler) -> socket.socket:
        s = socket.socket(fam, kind)
        s.setblocking(False)
        self.sel.register(s, READ, handler)
        return s

    # -- the hot path ------------------------------------------------------
    def answer(self, data: bytes, cid: str, client: tuple) -> bytes | None:
        """The reply to send now, or None (dropped, or forwarded: replied later)."""
        self.stats["queries"] += 1
        if self.watch.changed():
            self.refresh()
        view = self.views.get(cid, _UNSEEN)
        if view is _UNSEEN:
            view = self.views[cid] = self.records.view(cid)
        e = self.cache.get((view, data[2:]))
        if e is None:
            e = self.miss(data, view, client, cid)
            if e is None:
                return None
        else:
            self.stats["hits"] += 1
        return data[:2] + e.body(client[0] == "tcp")

    def refresh(self) -> None:
        """Read the generation (one SELECT); on a change, drop everything cached and
        the sockets of containers no longer served here."""
        self.checked = time.monotonic()
        if self.records.refresh():
            self.cache.clear()
            self.views.clear()
            self.rr.clear()
            self.reconcile(self.checked)

    def udp_readable(self, lst: Listener) -> None:
        """Drain one container's UDP socket. Cache hits for single-record answers
        (nearly all traffic) take the short way: no method calls, one dict lookup
        each for the querier's view and the reply."""
        sock, cid = lst.udp, lst.cid
        recvfrom, sendto, fd, nread = sock.recvfrom, sock.sendto, sock.fileno(), self.nread
        changed, views, cache, stats = self.watch.changed, self.views, self.cache, self.stats
        hits = 0
        try:
            for i in range(RECV_BATCH):
                # Another datagram waiting? FIONREAD costs ~0.8 us, a recvfrom raising
                # EAGAIN ~2 (the exception): ask before each one but the first.
                if i and (fcntl.ioctl(fd, termios.FIONREAD, nread) or not nread[0]):
                    return
                try:
                    # One byte more than we accept: a full buffer means oversized.
                    data, addr = recvfrom(MAX_QUERY + 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    if not lst.udp.fileno() >= 0:
                        return
                    continue
                if not 12 <= len(data) <= MAX_QUERY:
                    stats["dropped"] += 1
                    continue
                if not changed():
                    e = cache.get((views.get(cid, _UNSEEN), data[2:]))
                    if e is not None and e.fast is not None:
                        hits += 1
                        try:
                            sendto(data[:2] + e.fast, addr)
                        except OSError:
                            pass
                        continue
                else:
                    self.refresh()
                    if self.lst.get(cid) is not lst:  # the refresh dropped it
                        return
                try:
                    out = self.answer(data, cid, ("udp", sock, addr))
                    if out is not None:
                        sendto(out, addr)
                except Exception as e:
                    self.error(e)
        finally:
            stats["queries"] += hits
            stats["hits"] += hits

    def miss(self, data: bytes, view, client: tuple, cid: str) -> Entry | None:
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
                self.forward(data, req, client, cid)
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

    def deliver(self, client: tuple, msg: bytes) -> None:
        if client[0] == "udp":
            try:
                client[1].sendto(msg, client[2])
            except OSError:  # that container's socket was closed meanwhile
                pass
        else:
            self.tcp_send(client[1], msg)

    # -- TCP -------------------------------------------------------------------
    def accept(self, lst: Listener) -> None:
        try:
            s, _addr = lst.tcp.accept()
        except OSError:
            return
        if len(self.conns) >= TCP_MAX_CONNS:
            s.close()
            return
        s.setblocking(False)
        c = Conn(s, lst.cid, time.monotonic())
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
                out = self.answer(msg, c.cid, ("tcp", c))
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
    def start(self) -> list[str]:
        """Sockets in every container this resolver serves, made here (at start, the
        engine hands none over); returns what could not be bound."""
        return self.reconcile(time.monotonic(), acquire=True)

    def run(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.stopping = signum

        # What exists now lives as long as the process: out of the collector's sight. The
        # hot path makes no reference cycles, so collections are rare (no pauses under load).
        gc.freeze()
        gc.set_threshold(50000, 20, 100)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        next_sweep = time.monotonic() + 1.0
        poll, handlers = self.sel.ep.poll, self.sel.handlers
        while not self.stopping:
            timeout = 1.0
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - time.monotonic()))
            try:
                ready = poll(timeout)
            except InterruptedError:
                continue
            for fd, mask in ready:
                h = handlers.get(fd)  # None: closed by an earlier handler of this batch
                if h is not None:
                    try:
                        h[1](mask)
                    except Exception as e:
                        self.error(e)
            now = time.monotonic()
            try:
                if self.timers:
                    self.expire(now)
                if now >= next_sweep:
                    next_sweep = now + 1.0
                    if now - self.checked >= 1.0 or self.unchecked:  # a safety net under the store watch
                        self.refresh()
                        if self.unchecked:  # sockets taken, and the store unchanged since
                            self.reconcile(now)
                    if self.missing:
                        self.acquire_logged(now)
                    for c in [c for c in self.conns.values() if now - c.last > TCP_IDLE]:
                        self.close(c)
            except Exception as e:
                self.error(e)

    def shutdown(self) -> None:
        for c in list(self.conns.values()):
            self.close(c)
        for cid in list(self.lst):
            self.drop(cid)
        for s in [self.wake_r, self.wake_w, *self.ups.values()]:
            s.close()
        self.close_control()
        self.sel.close()
        self.watch.close()


def open_ro(path: str) -> sqlite3.Connection:
    # WAL lets this read-only connection read while the engine writes.
    uri = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    conn = sqlite3.connect(f"file:{uri}?mode=ro", uri=True, isolation_level=None, timeout=1.0)
    conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # fail now, not on the first query
    return conn


def raise_nofile() -> int:
    """Two descriptors per container served: the soft limit up to the hard one (and
    the hard one up, as root can, to 65536 when it is lower: a full bridge is 1,023
    containers, and several resolvers may share a host)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else max(hard, 65536)
    for limits in ((want, want), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
        except (OSError, ValueError):
            continue
    return soft


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsbridge.dns.server")
    for flag in ("--db", "--network-id"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--upstream-file", default="/etc/resolv.conf")
    ap.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    faulthandler.enable()  # a fatal signal (SIGSEGV, SIGBUS, ...) says so in the log
    where = f"resolver for network {a.network_id[:12]}"
    try:
        nofile = raise_nofile()
        ups = HostUpstreams(a.upstream_file)
        conn = open_ro(a.db)  # first: the -shm file exists while a connection is open
        srv = Server(conn, a.network_id, ups, StoreWatch(a.db), embedded.control_address(a.network_id))
        failed = srv.start()
    except Exception as e:
        log(f"cannot start {where}: {type(e).__name__}: {e} (exit 1)")
        return 1
    log(f"{where} started: {embedded.ADDRESS}:{embedded.PORT} in {len(srv.lst)} container(s)"
        + (f", not in {len(failed)} (retrying; {failed[0]})" if failed else "")
        + f" (upstreams from {a.upstream_file}: {fmt_servers(ups.servers)}; up to {nofile} files)")
    if a.ready_fd is not None:
        os.write(a.ready_fd, b"1")
        os.close(a.ready_fd)
    try:
        srv.run()
    except BaseException as e:  # a bug in the loop itself: say so, then stop
        log(f"{where} failed: {type(e).__name__}: {e} (exit 1)")
        return 1
    finally:
        srv.shutdown()
    how = f"by {signal.Signals(srv.stopping).name}" if srv.stopping else ""
    log(f"{where} stopped {how} ({' '.join(f'{k}={v}' for k, v in srv.stats.items())}) (exit 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
