"""Which containers' 127.0.0.11 a resolver holds sockets in (embedded.py says why),
and its control socket; for server.py.

The set follows the store. On every change the resolver drops the sockets of the
containers it no longer serves (stopped, removed, or now served by another
network's resolver): a socket pins its namespace, so holding on would keep a
removed container's veth and address alive. A new container's sockets come from
the engine (`take` on the control socket, right after it recorded the container).
The resolver makes them itself at start, for every container it serves, and for
a container whose sockets the engine did not hand over within GRACE seconds (an
engine killed midway, a resolver that was down), retrying with back-off.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading

from nsbridge.dns import embedded
from nsbridge.dns.wire import log
from nsbridge.record import record

GRACE = 1.0  # seconds the engine has to hand a new container's sockets over
RETRY_MAX = 4.0  # seconds between tries at most: a bind fails while the previous holder lets go


@record
class Listener:
    """One container's 127.0.0.11:53, UDP and TCP, in its namespace."""

    cid: str
    key: str  # its endpoint ID on this network: a new start gets new sockets
    udp: socket.socket
    tcp: socket.socket


@record
class Missing:
    """A container this resolver should serve and holds no sockets for."""

    next_try: float
    tries: int = 0


class Holder:
    """The container-socket half of server.Server (a mixin: it uses its poller,
    records, TCP connections and handlers)."""

    def __init__(self, control: str | None) -> None:
        self.lst: dict[str, Listener] = {}
        self.missing: dict[str, Missing] = {}
        self.unchecked = False  # sockets taken since the last reconcile
        self.control: socket.socket | None = None
        if control:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            try:
                s.bind(control)
            except OSError as e:
                s.close()
                raise OSError(e.errno, "another resolver of this network is running (its control socket is in use)"
                              if e.errno == errno.EADDRINUSE else e.strerror) from None
            s.listen(64)
            self.control = s
            self.sel.register(s, self.READ, self.control_accept)

    # -- the sockets ----------------------------------------------------------------
    def take(self, cid: str, key: str, udp: socket.socket, tcp: socket.socket) -> None:
        self.drop(cid)
        udp.setblocking(False)
        tcp.setblocking(False)
        lst = self.lst[cid] = Listener(cid, key, udp, tcp)
        self.missing.pop(cid, None)
        self.sel.register(udp, self.READ, lambda mask: self.udp_readable(lst))
        self.sel.register(tcp, self.READ, lambda mask: self.accept(lst))

    def drop(self, cid: str) -> bool:
        lst = self.lst.pop(cid, None)
        if lst is None:
            return False
        for s in (lst.udp, lst.tcp):
            self.sel.unregister(s)
            s.close()
        for c in [c for c in self.conns.values() if c.cid == cid]:
            self.close(c)
        return True

    def reconcile(self, now: float, acquire: bool = False) -> list[str]:
        """Drop the sockets the store no longer gives us; note the missing ones and,
        with ACQUIRE, make those that are due."""
        self.unchecked = False
        owned = self.records.owned()
        for cid, lst in list(self.lst.items()):
            if owned.get(cid) != lst.key:
                self.drop(cid)
        for cid in [c for c in self.missing if c not in owned]:
            del self.missing[cid]
        for cid in owned:
            if cid not in self.lst and cid not in self.missing:
                self.missing[cid] = Missing(now if acquire else now + GRACE)
        return self.acquire(now, owned) if acquire else []

    def acquire(self, now: float, owned: dict[str, str]) -> list[str]:
        """Bind in every missing container that is due, on a helper thread: it
        enters each container's namespace, where the main thread must never be.
        Returns what failed for the first time ("ID: why")."""
        from nsbridge.kernel.ns import netns_path

        due = [cid for cid, m in self.missing.items() if m.next_try <= now and cid in owned]
        if not due:
            return []
        netns = self.records.netns_of(due)
        for cid in due:
            if not netns.get(cid):  # nowhere to bind: only an engine can hand them over
                self.missing[cid].next_try = now + RETRY_MAX
        due = [cid for cid in due if netns.get(cid)]
        results: dict[str, object] = {}

        def work() -> None:
            for cid in due:
                try:
                    results[cid] = (owned[cid], embedded.bind_in(netns_path(netns[cid])))
                except OSError as e:
                    results[cid] = e

        t = threading.Thread(target=work, name="bind-127.0.0.11")
        t.start()
        t.join()
        first: list[str] = []
        for cid, r in results.items():
            if isinstance(r, tuple):
                key, (udp, tcp) = r
                self.take(cid, key, udp, tcp)
                continue
            m = self.missing[cid]
            m.tries += 1
            m.next_try = now + min(RETRY_MAX, 2.0 ** m.tries)
            if m.tries == 1:
                first.append(f"{cid[:12]}: {getattr(r, 'strerror', None) or r}")
        return first

    def acquire_logged(self, now: float) -> None:
        first = self.acquire(now, self.records.owned())
        if first:
            log(f"could not bind {embedded.ADDRESS}:{embedded.PORT} in {len(first)} container(s), "
                f"retrying: {'; '.join(first[:3])}{' ...' if len(first) > 3 else ''}")

    def close_control(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None

    # -- the control socket -----------------------------------------------------------
    def control_accept(self, mask: int) -> None:
        assert self.control is not None
        try:
            c, _ = self.control.accept()
        except OSError:
            return
        if not embedded.peer_is_root(c):
            c.close()
            return
        c.setblocking(False)
        self.sel.register(c, self.READ, lambda m: self.control_request(c))

    def control_request(self, c: socket.socket) -> None:
        try:
            req = embedded.recv_request(c)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            req = None
        if req is None:
            self.sel.unregister(c)
            c.close()
            return
        line, fds = req
        try:
            reply = self.handle(line.split(), fds)
        finally:
            for fd in fds:  # those not adopted by handle()
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        with contextlib.suppress(OSError):
            c.send(reply.encode())

    def handle(self, words: list[str], fds: list[int]) -> str:
        if words[:1] == ["status"]:
            return f"held {len(self.lst)} missing {len(self.missing)}"
        if len(words) == 2 and words[0] == "drop":
            self.drop(words[1])
            return "ok"
        if len(words) == 3 and words[0] == "take" and len(fds) == 2:
            # No reload of the store here (it costs milliseconds per thousand containers,
            # and the engine waits): the next refresh's reconcile drops a take that the
            # store does not back. Only the engine (root) can reach this socket.
            cid, key = words[1], words[2] if words[2] != "-" else ""
            socks = [socket.socket(fileno=fd) for fd in fds]
            fds[:] = [-1, -1]
            udp, tcp = socks
            if udp.type != socket.SOCK_DGRAM or tcp.type != socket.SOCK_STREAM:
                for s in socks:
                    s.close()
                return "no: expected a UDP and a TCP socket"
            self.take(cid, key, udp, tcp)
            self.unchecked = True
            return "ok"
        return "no: bad request"
