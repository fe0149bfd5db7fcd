"""A container's 127.0.0.11, from the engine's side (nsbridge/dns/embedded.py says how
it works): which resolver serves it, and handing that resolver the container's
sockets when it starts or moves, or telling it to let them go.

The resolver of a container's first user network (attach order) serves it. `run` and
`start` bind the two sockets inside the new namespace before the command starts (a
first query waits in them) and hand them over once the container is recorded;
`network connect`/`disconnect` move them when the first user network changes; every
release (stop, rm, the reaping of an exited command) tells the resolver to close them,
since a socket keeps its namespace, with the container's veth and address, alive.
When a resolver cannot be reached the engine says so in its log and carries on: the
resolver, when it is (re)started, binds in every container it serves by itself.
"""
from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from nsbridge.dns import embedded
from nsbridge.model import Container, Endpoint

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine

log = logging.getLogger("nsbridge")

Socks = tuple[socket.socket, socket.socket]


class EmbeddedDnsOps:
    #: sockets bound by _bring_up, handed over once the container is recorded
    _dns_pending: tuple[Endpoint, Socks] | None = None

    def _dns_owner(self: "Engine", eps: list[Endpoint]) -> Endpoint | None:
        """The live endpoint whose network's resolver serves the container's 127.0.0.11."""
        return embedded.owner(eps, lambda nid: self.store.network(nid).has_dns)

    @staticmethod
    def _dns_bind(netns: int | str) -> Socks:
        """The two sockets on 127.0.0.11:53 inside the namespace NETNS (an fd or a path)."""
        from nsbridge.kernel import ns

        with ns.in_netns(netns):
            return embedded.bind_pair()

    def _dns_request(self: "Engine", network_id: str, line: str, fds: tuple[int, ...] = (), wait: bool = True) -> str:
        """LINE to the resolver of NETWORK_ID, on the session's connection to it
        (embedded.Control: without WAIT, pipelined; the session's end waits for
        the answers). Raises OSError when the resolver is not reached."""
        k = self._k
        if k is None:  # (not in a session: one connection for this request)
            return embedded.request(embedded.control_address(network_id), line, fds)
        for fresh in (False, True):
            ctl = k.dns.get(network_id)
            if ctl is None:
                fresh = True
                ctl = k.dns[network_id] = embedded.Control(embedded.control_address(network_id))
            try:
                if wait:
                    return ctl.call(line, fds)
                ctl.send(line, fds)
                return "ok"
            except OSError:
                del k.dns[network_id]
                for said in ctl.close():
                    log.warning("resolver of network %s: %s", network_id[:12], said)
                if fresh:
                    raise
                # the connection of a resolver restarted since (or dead): once more, on a new one
        raise AssertionError("not reached")

    def _dns_take(self: "Engine", c: Container, ep: Endpoint, socks: Socks) -> None:
        """Hand SOCKS to the resolver of EP's network, not waiting for its answer
        (a refusal is logged when the session ends); our copies are closed either way."""
        try:
            self._dns_request(ep.network_id, f"take {c.id} {ep.endpoint_id or '-'}", tuple(s.fileno() for s in socks),
                              wait=False)
        except OSError as e:
            log.warning("resolver of network %s not reached for container %s: %s", ep.network_id[:12], c.name, e)
        finally:
            for s in socks:
                s.close()

    def _dns_drop(self: "Engine", c: Container, network_id: str) -> None:
        """Waited for: the container's 127.0.0.11 is free again when this returns."""
        try:
            self._dns_request(network_id, f"drop {c.id}")
        except OSError as e:  # a dead resolver holds nothing; a new one binds only what it serves
            log.info("resolver of network %s not reached to drop container %s: %s", network_id[:12], c.name, e)

    def _dns_handover(self: "Engine", c: Container) -> None:
        """After `run`/`start` recorded C: its sockets to their resolver."""
        pending, self._dns_pending = self._dns_pending, None
        if pending is not None:
            self._dns_take(c, *pending)

    def _dns_discard(self: "Engine") -> None:
        pending, self._dns_pending = self._dns_pending, None
        if pending is not None:
            for s in pending[1]:
                s.close()

    def _dns_follow(self: "Engine", c: Container, before: Endpoint | None, eps: list[Endpoint]) -> None:
        """After `network connect`/`disconnect` of a running C: if its first user
        network changed, the old resolver lets go, then the new one takes over."""
        after = self._dns_owner(eps)
        if (before and before.network_id) == (after and after.network_id):
            return
        if before is not None:
            self._dns_drop(c, before.network_id)
        if after is None or not c.netns:
            return
        from nsbridge.kernel import ns

        try:
            socks = self._dns_bind(ns.netns_path(c.netns))
        except OSError as e:  # in use: the new resolver, seeing the store, bound them first
            log.info("127.0.0.11 in %s not bound by the engine: %s", c.name, e)
            return
        self._dns_take(c, after, socks)
