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

    def _dns_take(self: "Engine", c: Container, ep: Endpoint, socks: Socks) -> None:
        """Hand SOCKS to the resolver of EP's network; our copies are closed either way."""
        try:
            reply = embedded.request(embedded.control_address(ep.network_id), f"take {c.id} {ep.endpoint_id or '-'}", tuple(s.fileno() for s in socks))
            if reply != "ok":
                log.warning("resolver of network %s did not take container %s: %s", ep.network_id[:12], c.name, reply)
        except OSError as e:
            log.warning("resolver of network %s not reached for container %s: %s", ep.network_id[:12], c.name, e)
        finally:
            for s in socks:
                s.close()

    def _dns_drop(self: "Engine", c: Container, network_id: str) -> None:
        try:
            embedded.request(embedded.control_address(network_id), f"drop {c.id}")
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
