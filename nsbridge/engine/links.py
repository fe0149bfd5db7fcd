"""Breaking things on purpose: an endpoint's link down/up and its traffic
shaped (`nsbridge link`, `nsbridge impair`, compose's x-nsbridge extension).

`link down` sets the host end of the endpoint's veth down: the container
keeps its address and routes and sees its eth<N> lose carrier, as with a
pulled cable. `impair` shapes what the container sends on that network
(the egress of its eth<N>, as containerlab's netem tools do). Both last as
long as the endpoint does (a stopped container's endpoints are released).

What was set is recorded in the store (one meta entry, by endpoint id) so
that `show` and `why` can name it; reconcile neither checks link states nor
qdiscs, so it does not undo them.
"""
from __future__ import annotations

import json
import os

from nsbridge.errors import Conflict, InvalidArgument, KernelError, NotFound
from nsbridge.kernel import shaping

TYPE_CHECKING = False  # not typing's: show imports this module and pins its imports
if TYPE_CHECKING:
    from nsbridge.engine.core import Engine
    from nsbridge.model import Container, Endpoint, Network
    from nsbridge.state.store import Store

META_KEY = "links"


def link_states(store: "Store") -> dict[str, dict]:
    """endpoint id -> {"down": bool, "impairment": {...}} for what was changed."""
    raw = store.get_meta(META_KEY)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def impairment_of(state: dict | None) -> shaping.Impairment | None:
    if not state or not state.get("impairment"):
        return None
    return shaping.Impairment.from_dict(state["impairment"])


def _wait_carrier(c: "Container", ep: "Endpoint", timeout: float = 3.0) -> None:
    """The kernel applies a carrier change a moment later (linkwatch, up to a
    second; the bridge port turns forwarding after it): wait for both ends,
    so that a ping right after `link ... up` goes through. The calling thread
    is in the host namespace."""
    import time

    from nsbridge.kernel import rtnl
    from nsbridge.kernel.ns import netns_path

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        host = rtnl.read(None).link(ep.host_ifname)
        inside = rtnl.read(netns_path(c.netns)).link(ep.ifname)
        if host and inside and host.operstate == "up" and host.port_state == "forwarding" and inside.operstate == "up":
            return
        time.sleep(0.01)


class LinkOps:
    def _live_endpoint(self: "Engine", ctr_ref: str, net_ref: str) -> tuple["Container", "Network", "Endpoint"]:
        c = self.ps_state(self.container(ctr_ref))
        net = self.network(net_ref)
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        if not net.caps.bridge:  # a veth on a host bridge is what link/impair act on
            raise InvalidArgument(
                f"network {net.name} has no link of its own for {c.name} (driver {net.driver}): "
                "link and impair act on a bridge endpoint"
            )
        ep = next((e for e in self.store.endpoints_of(c.id) if e.network_id == net.id and e.ip), None)
        if ep is None:
            raise NotFound(f"container {c.name} is not connected to network {net.name}")
        return c, net, ep

    def _record_link(self: "Engine", ep: "Endpoint", **change: object) -> None:
        live = {e.endpoint_id for e in self.store.all_endpoints() if e.ip}
        with self.store.tx():
            states = {k: v for k, v in link_states(self.store).items() if k in live}
            st = {**states.get(ep.endpoint_id, {}), **change}
            st = {k: v for k, v in st.items() if v}  # up and no impairment: nothing to remember
            if st:
                states[ep.endpoint_id] = st
            else:
                states.pop(ep.endpoint_id, None)
            self.store.set_meta(META_KEY, json.dumps(states, sort_keys=True))

    def link_set(self: "Engine", ctr_ref: str, net_ref: str, up: bool) -> None:
        """The endpoint of CTR on NET down (carrier lost inside) or up again;
        up returns once the kernel passes traffic on it again."""
        with self._session() as k:
            c, _net, ep = self._live_endpoint(ctr_ref, net_ref)
            shaping.set_link(k.link, ep.host_ifname, up)
            self._record_link(ep, down=not up)
            if up:
                _wait_carrier(c, ep)

    def impair(
        self: "Engine",
        ctr_ref: str,
        net_ref: str,
        rate: str | None = None,
        delay: str | None = None,
        jitter: str | None = None,
        loss: str | None = None,
        clear: bool = False,
    ) -> None:
        """Shape what CTR sends on NET: exactly the given rate/delay/jitter/loss
        (replacing any earlier impairment), or none with CLEAR."""
        imp = shaping.Impairment.parse(rate, delay, jitter, loss)
        if clear and not imp.empty:
            raise InvalidArgument("--clear takes no --rate, --delay, --jitter or --loss")
        if not clear and imp.empty:
            raise InvalidArgument("impair needs --rate, --delay, --jitter or --loss (or --clear)")
        if imp.needs_netem and shaping.netem_kernel_config() is False:
            raise KernelError(shaping.NO_NETEM)  # at once: nothing looked up, locked or changed
        from nsbridge.kernel import netlink, ns

        with self._session():
            c, _net, ep = self._live_endpoint(ctr_ref, net_ref)
            link, fd = netlink.open_in_netns(ns.netns_path(c.netns))
            try:
                with ns.in_netns(fd):
                    shaping.apply(link, ep.ifname, imp)
            finally:
                link.close()
                os.close(fd)
            self._record_link(ep, impairment=imp.to_dict())
