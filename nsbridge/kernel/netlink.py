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
    ) -> None:
        """veth with its peer created in place inside the container, host end
        on the bridge and up."""
        peer = {"ifname": peer_ifname, "address": peer_mac, "net_ns_fd": peer_netns_fd}
        kw = {}
        if mtu:
            kw["mtu"] = mtu
            peer["mtu"] = mtu
        try:
            self.ipr.link("add", ifname=host_ifname, kind="veth", ifalias=alias, peer=peer, **kw)
        except NetlinkError as e:
            raise _err("create veth", host_ifname, e) from None
        idx = self.index(host_ifname)
        br = self.index(bridge)
        if idx is None or br is None:
            raise KernelError(f"failed to attach {host_ifname}: bridge {bridge} not found")
        sysctl.try_write(f"net.ipv6.conf.{host_ifname}.disable_ipv6", 1)
        try:
            self.ipr.link("set", index=idx, master=br, state="up")
            # hairpin: a container reaches its own published port through the
            # host (DNAT sends the packet back out of the port it came in on);
            # Docker does the same when it runs without its userland proxy
            self.ipr.link("set", index=idx, kind="bridge_slave", mode=1)
        except NetlinkError as e:
            with_cleanup = _err("attach", f"{host_ifname} to {bridge}", e)
            self.delete_link(host_ifname)
            raise with_cleanup from None

    def configure_inside(self, ifname: str, ip: str, prefixlen: int, gateway: str | None) -> None:
        """Address, up, and (for the first network) the default route."""
        idx = self.index(ifname)
        if idx is None:
            raise KernelError(f"failed to configure {ifname}: not found in container")
        net = ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False)
        try:
            self.ipr.addr("add", index=idx, address=ip, prefixlen=prefixlen, broadcast=str(net.broadcast_address))
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
