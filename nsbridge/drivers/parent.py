"""What macvlan and ipvlan share (libnetwork's two drivers do too): a network
on a parent device of the host, an endpoint made on that parent directly in
the container's namespace as eth<N> (no veth, no bridge, no NAT, no isolation
chains: the LAN's own router is the gateway).

- `-o parent=IF`: an existing device of the host namespace;
- `-o parent=IF.VLAN`: an 802.1Q sub-interface made for the network (unless it
  exists) and removed with it;
- no parent: a dummy parent `dm-<id12>` (ipvlan `di-<id12>`) made for the network,
  which is internal (its containers reach only each other).
A device the driver makes in the host namespace carries the engine's group and
`nsbridge:<network id>` (recorded in Network.device); an endpoint's interface
carries the group and `nsbridge:<endpoint id>` inside the container, where
reconcile looks for one a killed `connect` left.
"""
from __future__ import annotations

import re

from nsbridge.drivers.base import Driver, Join, configure
from nsbridge.errors import Conflict, InvalidArgument, KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.engine.core import Kernel
    from nsbridge.engine.plan import Plan
    from nsbridge.model import Network

PARENT = "parent"
ALIAS_PREFIX = "nsbridge:"
_VLAN_RE = re.compile(r"[+-]?[0-9]+")


class ParentDriver(Driver):
    """A driver whose endpoints hang off a parent device; subclasses say the kind,
    the mode option and Docker's texts."""

    kind = ""  # the device kind of an endpoint: macvlan | ipvlan
    mode_option = ""  # macvlan_mode | ipvlan_mode
    modes: tuple[str, ...] = ()  # the first is the default
    dummy_prefix = ""  # Docker's: dm- (macvlan), di- (ipvlan)

    # -- options (pure) ----------------------------------------------------------
    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        super().validate(opts, internal)
        mode = opts.get(self.mode_option, "")
        if mode and mode not in self.modes:
            raise InvalidArgument(self.bad_mode(mode))
        if opts.get(PARENT) == "lo":
            raise InvalidArgument(f"loopback interface is not a valid {self.kind} parent link")
        if PARENT in opts:
            from nsbridge.engine import validate

            validate.ifname(PARENT, opts[PARENT])
        return opts

    def bad_mode(self, mode: str) -> str:
        raise NotImplementedError

    def mode(self, net: "Network") -> str:
        return net.options.get(self.mode_option) or self.modes[0]

    @staticmethod
    def given(net: "Network") -> str:
        """The parent the user named, "" for a dummy one: none named, or --internal
        (libnetwork's rule: a dummy parent reaches nothing, as --internal asks)."""
        return "" if net.internal else net.options.get(PARENT, "")

    def parent(self, net: "Network") -> str:
        """The device its endpoints hang off: the given parent, or the dummy one."""
        return self.given(net) or self.dummy_prefix + net.id[:12]

    # -- under the lock, before anything is made ---------------------------------------
    def check(self, k: "Kernel", net: "Network", others: "list[Network]") -> None:
        from nsbridge.kernel import features

        for kind in (self.kind, *self.parent_kinds(net, k)):
            why = features.require(kind)
            if why:
                raise KernelError(why)
        parent, mode = self.parent(net), self.mode(net)
        for other in others:
            if other.driver == self.name and other.id != net.id and self.parent(other) == parent:
                if other.device == parent:  # made for that network, and removed with it: never shared
                    ParentDriver.shared_parent(self, other, parent, "", "")
                self.shared_parent(other, parent, self.mode(other), mode)

    def shared_parent(self, other: "Network", parent: str, theirs: str, mine: str) -> None:
        """Refuse a second network on PARENT (Docker's text), unless the modes allow both."""
        raise Conflict(f"network {self.dummy_prefix}{other.id[:12]} is already using parent interface {parent}")

    def parent_kinds(self, net: "Network", k: "Kernel") -> tuple[str, ...]:
        """The kind of parent device the network needs made ("vlan", "dummy"), checking
        the parent the user named (Docker's texts)."""
        given = self.given(net)
        if not given:
            return ("dummy",)
        if k.link.index(given) is not None:
            return ()
        if "." not in given:
            raise InvalidArgument(f"invalid subinterface vlan name {given}, example formatting is eth0.10")
        link, vid = _parse_vlan(given)
        if k.link.index(link) is None:
            raise InvalidArgument(f"-o parent interface does was not found on the host: {link}")
        return ("vlan",)

    # -- the network's own parent, if it needs one ---------------------------------------
    def create(self, plan: "Plan", k: "Kernel", net: "Network") -> None:
        given = self.given(net)
        if given and k.link.index(given) is not None:
            return  # the host's own device (or an 802.1Q one the user made): never ours to remove
        name = self.parent(net)
        if given:
            link, vid = _parse_vlan(given)
            make = lambda: k.link.add_parent("vlan", name, ALIAS_PREFIX + net.id, link, vid)  # noqa: E731
        else:
            make = lambda: k.link.add_parent("dummy", name, ALIAS_PREFIX + net.id)  # noqa: E731
        plan.step("network.parent", make, lambda: k.link.delete_link(name))
        net.device = name

    def delete(self, k: "Kernel", net: "Network") -> list[str]:
        if not net.device:
            return []
        try:
            k.link.delete_link(net.device)
        except Exception as e:
            return [f"remove {net.device} of {net.name}: {e}"]
        return []

    def missing(self, k: "Kernel", net: "Network") -> bool:
        return bool(net.device) and not k.has_link(net.device)

    def devices(self, net: "Network") -> list[str]:
        return [net.device] if net.device else []

    # -- endpoints ---------------------------------------------------------------
    def link_data(self, net: "Network") -> list[tuple[str, object]]:
        """IFLA_INFO_DATA of an endpoint's device (its mode)."""
        raise NotImplementedError

    def join(self, plan: "Plan", k: "Kernel", j: Join) -> None:
        """The endpoint's device made on the parent directly inside the container,
        named eth<N> with its MAC; then, from inside, its mark, address and routes."""
        net, ep = j.net, j.ep
        parent = self.parent(net)

        def make() -> None:
            try:
                j.host.add_sublink(self.kind, ep.ifname, parent, self.link_data(net), mac=ep.mac,
                                   netns_fd=j.ctr_fd, mtu=net.mtu)
            except KernelError as e:
                raise KernelError(f"failed to create endpoint on network {net.name}: {e}") from None

        plan.step(f"endpoint.{self.kind}", make, lambda: _remove_inside(j.netns, ep.ifname))
        plan.step("endpoint.address", lambda: configure(j, alias=ALIAS_PREFIX + ep.endpoint_id))


def _remove_inside(netns: str, ifname: str) -> None:
    """Undo an endpoint made inside a container (after `join` has closed its sockets)."""
    import os

    from nsbridge.kernel import netlink, ns

    if not netns or not os.path.exists(netns):
        return  # the container's namespace is gone, and the device with it
    ctr, fd = netlink.open_in_netns(netns)
    try:
        ctr.delete_link(ifname)
    finally:
        ctr.close()
        os.close(fd)


def _parse_vlan(name: str) -> tuple[str, int]:
    """`eth0.10` -> ("eth0", 10), with Docker's texts for what is not."""
    parts = name.split(".")
    if len(parts) != 2:
        raise InvalidArgument(
            f"required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received {name}")
    link, vid = parts
    if not _VLAN_RE.fullmatch(vid):
        raise InvalidArgument(f"unable to parse a valid vlan id from: {vid} (ex. eth0.10 for vlan 10)")
    n = int(vid)
    if not 1 <= n <= 4094:
        raise InvalidArgument(f"vlan id must be between 1-4094, received: {n}")
    return link, n
