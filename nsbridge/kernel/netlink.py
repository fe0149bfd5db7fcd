"""Netlink through pyroute2, in-process: the only module that imports pyroute2.

One IPRoute socket per namespace per operation, opened while the thread is
inside that namespace (`IPRoute(groups=0)`: no event subscription). veth
peers are created directly inside the container namespace, already named
eth<N> with their MAC: moving a device between namespaces costs 14-17 ms.
errno is translated here into errors that name the object.
"""
from __future__ import annotations

import errno
import ipaddress
import os
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nsbridge.errors import Conflict, KernelError
from nsbridge.kernel import ns, sysctl

ALIAS_PREFIX = "nsbridge:"


def _err(action: str, obj: str, e: NetlinkError) -> KernelError:
    if e.code == errno.EXFULL:
        return KernelError(
            f"failed to {action} {obj}: bridge port limit reached (the kernel allows 1023 ports per bridge)"
        )
    if e.code == errno.EEXIST:
        return Conflict(f"failed to {action} {obj}: already exists")
    return KernelError(f"failed to {action} {obj}: {os.strerror(e.code)}")


@dataclass
class LinkInfo:
    index: int
    name: str
    kind: str
    alias: str
    master: int
    mtu: int
    up: bool


def _attr(msg, name: str, default=None):
    return msg.get_attr(name, default) if hasattr(msg, "get_attr") else msg.get(name, default)


def _link_info(msg) -> LinkInfo:
    linkinfo = _attr(msg, "IFLA_LINKINFO")
    kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else ""
    return LinkInfo(
        index=msg["index"],
        name=_attr(msg, "IFLA_IFNAME", ""),
        kind=kind or "",
        alias=_attr(msg, "IFLA_IFALIAS", "") or "",
        master=_attr(msg, "IFLA_MASTER", 0) or 0,
        mtu=_attr(msg, "IFLA_MTU", 0) or 0,
        up=bool(msg["flags"] & 1),
    )


class NsLink:
    """A netlink socket bound to one namespace (the one current at creation)."""

    def __init__(self) -> None:
        self.ipr = IPRoute(groups=0)
        self._bridges: dict[str, int] = {}

    def close(self) -> None:
        self.ipr.close()

    # -- queries -----------------------------------------------------------
    def index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def links(self) -> list[LinkInfo]:
        return [_link_info(m) for m in self.ipr.get_links()]

    def ipv4_routes(self) -> list[str]:
        """Destinations of the namespace's IPv4 routes (main table), as CIDR."""
        out = []
        for r in self.ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst:
                out.append(f"{dst}/{r['dst_len']}")
        return out

    def ipv4_addrs(self) -> list[tuple[str, str, int]]:
        """(ifname, address, prefixlen) of every IPv4 address."""
        names = {li.index: li.name for li in self.links()}
        return [
            (names.get(a["index"], ""), a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in self.ipr.get_addr(family=2)
        ]

    # -- changes -----------------------------------------------------------
    def set_up(self, name_or_index: str | int) -> None:
        idx = name_or_index if isinstance(name_or_index, int) else self.index(name_or_index)
        self.ipr.link("set", index=idx, state="up")

    def ensure_bridge(self, name: str, gateway: str, prefixlen: int, mtu: int | None, alias: str) -> bool:
        """Create (or adopt, when it carries our alias) a bridge with its
        gateway address. Returns True when it was created now."""
        idx = self.index(name)
        created = False
        if idx is None:
            kw = {"mtu": mtu} if mtu else {}
            # A MAC of its own, as libnetwork gives its bridges (02:42 + 4 random bytes):
            # without one the bridge takes its lowest port's MAC, and changes it (to
            # 00:00:00:00:00:00 when the last port leaves) under the containers' ARP caches.
            kw["address"] = "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))
            try:
                self.ipr.link("add", ifname=name, kind="bridge", ifalias=alias, **kw)
            except NetlinkError as e:
                raise _err("create bridge", name, e) from None
            idx = self.index(name)
            created = True
        net = ipaddress.ip_network(f"{gateway}/{prefixlen}", strict=False)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in self.ipr.get_addr(index=idx, family=2)}
        if (gateway, prefixlen) not in have:
            try:
                self.ipr.addr(
                    "add", index=idx, address=gateway, prefixlen=prefixlen, broadcast=str(net.broadcast_address)
                )
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise _err("add address to", name, e) from None
        self.ipr.link("set", index=idx, state="up")
        return created

    def delete_link(self, name: str) -> bool:
        """Delete a device; already gone counts as success."""
        self._bridges.pop(name, None)
        idx = self.index(name)
        if idx is None:
            return False
        try:
            self.ipr.link("del", index=idx)
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ENOENT):
                return False
            raise _err("delete", name, e) from None
        return True

    def add_veth(
        self,
        host_ifname: str,
        peer_ifname: str,
        peer_mac: str,
        peer_netns_fd: int,
        bridge: str,
        mtu: int | None,
        alias: str,
        ipv6_off_by_default: bool = False,
    ) -> None:
        """veth with its peer created in place inside the container, host end
        on the bridge and up. Each netlink request costs ~0.2 ms: one when the
        host namespace already gives new devices no IPv6 (a sandbox host),
        else two, with IPv6 turned off in between (no link-local address,
        DAD or MLD flooding the bridge; the machine's own default is not ours)."""
        br = self.bridge_index(bridge)
        if br is None:
            raise KernelError(f"failed to attach {host_ifname}: bridge {bridge} not found")
        peer = {"ifname": peer_ifname, "address": peer_mac, "net_ns_fd": peer_netns_fd}
        kw: dict[str, object] = {"state": "up"} if ipv6_off_by_default else {}
        if mtu:
            kw["mtu"] = mtu
            peer["mtu"] = mtu
        try:
            self.ipr.link("add", ifname=host_ifname, kind="veth", ifalias=alias, master=br, peer=peer, **kw)
        except NetlinkError as e:
            what = ("attach", f"{host_ifname} to {bridge}") if e.code == errno.EXFULL else ("create veth", host_ifname)
            raise _err(*what, e) from None
        if ipv6_off_by_default:
            return
        sysctl.try_write(f"net.ipv6.conf.{host_ifname}.disable_ipv6", 1)
        try:
            self.ipr.link("set", ifname=host_ifname, state="up")
        except NetlinkError as e:
            with_cleanup = _err("attach", f"{host_ifname} to {bridge}", e)
            self.delete_link(host_ifname)
            raise with_cleanup from None

    def set_hairpin(self, ifname: str) -> None:
        """A container reaching its own published port through the host: DNAT
        sends the packet back out of the bridge port it came in on, which a
        bridge refuses unless the port is in hairpin mode (Docker sets it when
        it runs without its userland proxy). `flags`/`kind` only: for a
        bridge_slave pyroute2 would read `state` as the STP state."""
        try:
            self.ipr.link("set", ifname=ifname, kind="bridge_slave", mode=1)
        except NetlinkError as e:
            raise _err("set hairpin mode on", ifname, e) from None

    def bridge_index(self, bridge: str) -> int | None:
        """Bridges do not change index while a socket lives: ask once."""
        idx = self._bridges.get(bridge)
        if idx is None:
            idx = self.index(bridge)
            if idx is not None:
                self._bridges[bridge] = idx
        return idx

    def configure_inside(
        self, ifname: str, ip: str, prefixlen: int, gateway: str | None, index: int | None = None
    ) -> None:
        """Address, up, and (for the first network) the default route. INDEX,
        when the caller knows it (a fresh netns numbers its devices from lo=1),
        saves a lookup."""
        net = ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False)
        idx = index
        if idx is not None:
            try:
                self.ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen, broadcast=str(net.broadcast_address))
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise _err("configure", ifname, e) from None
                idx = None  # a kernel that numbers devices otherwise: look it up
        if idx is None:
            idx = self.index(ifname)
            if idx is None:
                raise KernelError(f"failed to configure {ifname}: not found in container")
            try:
                self.ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen, broadcast=str(net.broadcast_address))
            except NetlinkError as e:
                raise _err("configure", ifname, e) from None
        try:
            self.ipr.link("set", index=idx, state="up")
            if gateway:
                self.ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=idx, proto=3)
        except NetlinkError as e:
            raise _err("configure", ifname, e) from None

    def set_default_route(self, gateway: str, ifname: str) -> None:
        idx = self.index(ifname)
        try:
            self.ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=idx, proto=3)
        except NetlinkError as e:
            raise _err("set default route via", gateway, e) from None


def open_in_new_netns(name: str) -> tuple[NsLink, int]:
    """Create the named netns, configure loopback and IPv6 there, and return
    a socket bound to it plus an fd of it. The caller must setns() back."""
    ns.create_netns(name)
    sysctl.disable_ipv6_here()
    link = NsLink()
    link.set_up(1)
    fd = os.open(ns.netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    return link, fd


def open_in_netns(path: str) -> tuple[NsLink, int]:
    """A socket bound to an existing namespace, and an fd of it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with ns.in_netns(path):
        link = NsLink()
        link.ipr.link_lookup(ifname="lo")  # sockets bind lazily: make the first call inside
    return link, fd
