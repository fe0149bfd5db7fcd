"""Netlink through pyroute2, in-process: the only module that imports pyroute2.

One IPRoute socket per namespace per operation, opened while the thread is
inside that namespace (`IPRoute(groups=0)`: no event subscription). veth
peers are created directly inside the container namespace, already named
eth<N> with their MAC: moving a device between namespaces costs 14-17 ms.
errno is translated here into errors that name the object.

What a creating request carries (engine/owner.py says why), to be kept by any
encoder that replaces pyroute2's:
- a bridge: RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL, IFLA_IFNAME, IFLA_ADDRESS
  (02:42 + 4 random bytes), IFLA_MTU (if set), IFLA_GROUP (the engine's device
  group), IFLA_LINKINFO {IFLA_INFO_KIND "bridge"};
- a veth: the same with IFLA_MASTER (the bridge) and IFLA_LINKINFO {kind
  "veth", VETH_INFO_PEER {IFLA_IFNAME ethN, IFLA_ADDRESS, IFLA_NET_NS_FD, IFLA_MTU}}:
  the group on the host end only (a container's eth0 looks as on Docker);
- each followed, in the same send, by RTM_NEWLINK IFLA_IFNAME + IFLA_IFALIAS
  `nsbridge:<network or endpoint id>` (the kernel ignores an alias at creation);
- a namespace: before it is bound to its name, RTM_NEWLINK index 1 (lo), IFF_UP,
  IFLA_IFALIAS = the engine's namespace mark.
The kernel honours IFLA_GROUP at creation (rtnl_create_link sets dev->group,
for the veth peer's attributes too), so a device exists only with its owner's
mark: a kill between two requests leaves nothing that cannot be found again.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from nsbridge.errors import Conflict, KernelError
from nsbridge.kernel import ns, sysctl
from nsbridge.kernel.failpoint import request_done
from nsbridge.record import record

ALIAS_PREFIX = "nsbridge:"

_ACK = NLM_F_REQUEST | NLM_F_ACK
_CREATE = _ACK | NLM_F_CREATE | NLM_F_EXCL


def _request(msg, msg_type: int, flags: int, fields: dict[str, int], attrs: list[tuple[str, object]]):
    """A request message as pyroute2's IPRoute would build it, for sending
    several in one batch."""
    for k, v in fields.items():
        msg[k] = v
    msg["attrs"] = attrs
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    return msg


def _link_up(index: int, name: str = "") -> ifinfmsg:
    """Up, by index (or by NAME with index 0)."""
    attrs = [("IFLA_IFNAME", name)] if name else []
    return _request(ifinfmsg(), RTM_NEWLINK, _ACK, {"index": index, "flags": IFF_UP, "change": IFF_UP}, attrs)


def _set_alias(name: str, alias: str) -> ifinfmsg:
    return _request(ifinfmsg(), RTM_NEWLINK, _ACK, {"index": 0}, [("IFLA_IFNAME", name), ("IFLA_IFALIAS", alias)])


def _lo_mark(mark: str) -> ifinfmsg:
    """Loopback up, with the namespace's owner mark as its alias."""
    return _request(ifinfmsg(), RTM_NEWLINK, _ACK, {"index": 1, "flags": IFF_UP, "change": IFF_UP}, [("IFLA_IFALIAS", mark)])


def _link_del(index: int) -> ifinfmsg:
    return _request(ifinfmsg(), RTM_DELLINK, _ACK, {"index": index}, [])


def _bridge_add(name: str, mac: str, mtu: int | None, group: int) -> ifinfmsg:
    attrs: list[tuple[str, object]] = [("IFLA_IFNAME", name), ("IFLA_ADDRESS", mac), ("IFLA_GROUP", group)]
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}))
    return _request(ifinfmsg(), RTM_NEWLINK, _CREATE, {"index": 0}, attrs)


def _veth_add(name: str, peer: str, peer_mac: str, peer_netns_fd: int, master: int, mtu: int | None, up: bool,
              group: int) -> ifinfmsg:
    """A veth whose peer is made directly inside another netns, named and
    with its MAC (moving a device between namespaces costs 14-17 ms)."""
    peer_attrs: list[tuple[str, object]] = [("IFLA_IFNAME", peer), ("IFLA_ADDRESS", peer_mac), ("IFLA_NET_NS_FD", peer_netns_fd)]
    attrs: list[tuple[str, object]] = [("IFLA_IFNAME", name), ("IFLA_MASTER", master), ("IFLA_GROUP", group)]
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
        peer_attrs.append(("IFLA_MTU", mtu))
    info = {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
    attrs.append(("IFLA_LINKINFO", info))
    flags = IFF_UP if up else 0
    return _request(ifinfmsg(), RTM_NEWLINK, _CREATE, {"index": 0, "flags": flags, "change": flags}, attrs)


def _addr_add(index: int, ip: str, prefixlen: int, broadcast: str) -> ifaddrmsg:
    return _request(
        ifaddrmsg(), RTM_NEWADDR, _CREATE, {"family": socket.AF_INET, "prefixlen": prefixlen, "index": index},
        [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip), ("IFA_BROADCAST", broadcast)],
    )


def _default_route(gateway: str, oif: int) -> rtmsg:
    # proto 3 (boot) as `ip route add` sets it; table main, scope universe, unicast
    return _request(
        rtmsg(), RTM_NEWROUTE, _CREATE,
        {"family": socket.AF_INET, "dst_len": 0, "table": 254, "proto": 3, "scope": 0, "type": 1},
        [("RTA_GATEWAY", gateway), ("RTA_OIF", oif)],
    )


def _err(action: str, obj: str, e: NetlinkError) -> KernelError:
    if e.code == errno.EXFULL:
        return KernelError(
            f"failed to {action} {obj}: bridge port limit reached (the kernel allows 1023 ports per bridge)"
        )
    if e.code == errno.EEXIST:
        return Conflict(f"failed to {action} {obj}: already exists")
    return KernelError(f"failed to {action} {obj}: {os.strerror(e.code)}")


@record
class LinkInfo:
    index: int
    name: str
    kind: str
    alias: str
    master: int
    mtu: int
    up: bool
    group: int = 0


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
        group=_attr(msg, "IFLA_GROUP", 0) or 0,
    )


def _thread_netns() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


class _Batch:
    """A plain rtnetlink socket for requests that pyroute2 encodes (the
    messages above) and that go out in one send: the kernel handles them in
    order and acks each. Opening it costs 10 us where an IPRoute costs
    0.2-0.4 ms, which a new container would pay for three requests."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
        self.sock.settimeout(10)
        self.sock.bind((0, 0))

    def close(self) -> None:
        self.sock.close()

    def send(self, msgs: list) -> None:
        """Send and wait for every ack; raise the first failure as NetlinkError."""
        data = []
        for seq, m in enumerate(msgs, 1):
            m["header"]["sequence_number"] = seq
            m["header"]["pid"] = 0
            m.reset()
            m.encode()
            data.append(m.data)
        self.sock.send(b"".join(data))
        pending, first_error = set(range(1, len(msgs) + 1)), 0
        while pending:
            try:
                buf = self.sock.recv(65536)
            except TimeoutError:
                raise NetlinkError(errno.ETIMEDOUT, "no answer from the kernel") from None
            off = 0
            while off + 16 <= len(buf):
                length, msg_type, _flags, seq = struct.unpack_from("=LHHL", buf, off)
                if msg_type == 2 and seq in pending:  # NLMSG_ERROR: an ack, error 0 on success
                    pending.discard(seq)
                    code = -struct.unpack_from("=i", buf, off + 16)[0]
                    if code and not first_error:
                        first_error = code
                off += max((length + 3) & ~3, 16)
        request_done()
        if first_error:
            raise NetlinkError(first_error, os.strerror(first_error))


class NsLink:
    """Netlink sockets bound to one namespace (the one current at creation).
    FULL: also pyroute2's IPRoute, for queries and single changes; without,
    only what a new container needs (set_up, configure_inside)."""

    def __init__(self, full: bool = True) -> None:
        self._batch = _Batch()
        self._ipr = IPRoute(groups=0) if full else None  # pyroute2 opens its socket here, in this netns
        self._netns = _thread_netns()
        self._bridges: dict[str, int] = {}
        #: the owner's device group, given to every device this socket creates (engine/owner.py)
        self.group = 0

    @property
    def ipr(self) -> IPRoute:
        if self._ipr is None:
            raise RuntimeError("NsLink opened without IPRoute (full=False)")
        return self._ipr

    def close(self) -> None:
        self._batch.close()
        if self._ipr is not None:
            self._ipr.close()

    # -- queries -----------------------------------------------------------
    def index(self, name: str) -> int | None:
        """A device's index: by ioctl (5 us) when the thread is in this
        socket's namespace, else by a netlink get (0.3 ms, decoded by pyroute2)."""
        if _thread_netns() == self._netns:
            try:
                return socket.if_nametoindex(name)
            except OSError:
                return None
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
        if idx is None:
            raise KernelError(f"failed to set {name_or_index} up: not found")
        try:
            self._batch.send([_link_up(idx)])
        except NetlinkError as e:
            raise _err("set up", str(name_or_index), e) from None

    def ensure_bridge(self, name: str, gateway: str, prefixlen: int, mtu: int | None, alias: str) -> bool:
        """Create (or adopt, when it exists) a bridge with its gateway address,
        up. Returns True when it was created now: then in two sends, the
        creation with the owner's group, then its alias, address and up."""
        idx = self.index(name)
        net = ipaddress.ip_network(f"{gateway}/{prefixlen}", strict=False)
        if idx is None:
            # A MAC of its own, as libnetwork gives its bridges (02:42 + 4 random bytes):
            # without one the bridge takes its lowest port's MAC, and changes it (to
            # 00:00:00:00:00:00 when the last port leaves) under the containers' ARP caches.
            mac = "02:42:" + ":".join(f"{b:02x}" for b in os.urandom(4))
            try:
                self._batch.send([_bridge_add(name, mac, mtu, self.group)])
            except NetlinkError as e:
                raise _err("create bridge", name, e) from None
            idx = self.index(name)
            try:  # the alias only now: the kernel ignores IFLA_IFALIAS when it creates a device
                self._batch.send([_set_alias(name, alias), _addr_add(idx, gateway, prefixlen, str(net.broadcast_address)),
                                  _link_up(idx)])
            except NetlinkError as e:
                self.delete_link(name)
                raise _err("set up bridge", name, e) from None
            return True
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in self.ipr.get_addr(index=idx, family=2)}
        msgs = [] if (gateway, prefixlen) in have else [_addr_add(idx, gateway, prefixlen, str(net.broadcast_address))]
        try:
            self._batch.send([*msgs, _link_up(idx)])
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise _err("set up bridge", name, e) from None
        return False

    def name_device(self, name: str, alias: str) -> None:
        """Set a device's alias (the name of the object it is)."""
        try:
            self._batch.send([_set_alias(name, alias)])
        except NetlinkError as e:
            raise _err("name", name, e) from None

    def delete_link(self, name: str) -> bool:
        """Delete a device; already gone counts as success."""
        self._bridges.pop(name, None)
        idx = self.index(name)
        if idx is None:
            return False
        try:
            self._batch.send([_link_del(idx)])
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
        try:
            self._batch.send([_veth_add(host_ifname, peer_ifname, peer_mac, peer_netns_fd, br, mtu, ipv6_off_by_default,
                                        self.group)])
        except NetlinkError as e:
            what = ("attach", f"{host_ifname} to {bridge}") if e.code == errno.EXFULL else ("create veth", host_ifname)
            raise _err(*what, e) from None
        # The kernel ignores IFLA_IFALIAS when it creates a device: name it now, by
        # name, which is ours since the create succeeded (it already has our group).
        then = [_set_alias(host_ifname, alias)]
        if not ipv6_off_by_default:
            sysctl.try_write(f"net.ipv6.conf.{host_ifname}.disable_ipv6", 1)
            then.append(_link_up(0, host_ifname))
        try:
            self._batch.send(then)
        except NetlinkError as e:
            failed = _err("attach", f"{host_ifname} to {bridge}", e)
            self.delete_link(host_ifname)
            raise failed from None

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

    def configure_inside(self, ifname: str, ip: str, prefixlen: int, gateway: str | None) -> None:
        """Address, up, and (for the first network) the default route. One
        send: the kernel handles the requests in
        order and acks each (0.2 ms a request saved on pyroute2's path).
        Called with the thread inside the container's netns, so that the
        device's index is an ioctl, not a guess: a new netns may hold the
        kernel's fallback tunnels (tunl0, sit0) before our eth0."""
        idx = self.index(ifname)
        if idx is None:
            raise KernelError(f"failed to configure {ifname}: not found in container")
        broadcast = str(ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False).broadcast_address)
        msgs = [_addr_add(idx, ip, prefixlen, broadcast), _link_up(idx)]
        if gateway:
            msgs.append(_default_route(gateway, idx))
        try:
            self._batch.send(msgs)
        except NetlinkError as e:
            raise _err("configure", ifname, e) from None

    def set_default_route(self, gateway: str, ifname: str) -> None:
        idx = self.index(ifname)
        try:
            self.ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=idx, proto=3)
        except NetlinkError as e:
            raise _err("set default route via", gateway, e) from None


def open_in_new_netns(name: str, mark: str) -> tuple[NsLink, int]:
    """Create the named netns with IPv6 off there and loopback up carrying
    MARK (the owner's, engine/owner.py), both before the name is bound, so a
    namespace that has a name has its mark; return a socket bound to it plus
    an fd of it. The caller must setns() back."""
    made: list[NsLink] = []

    def inside() -> None:
        sysctl.disable_ipv6_here()
        made.append(NsLink(full=False))
        try:
            made[0]._batch.send([_lo_mark(mark)])
        except NetlinkError as e:
            made[0].close()
            raise _err("mark the namespace", name, e) from None

    ns.create_netns(name, inside)
    fd = os.open(ns.netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    return made[0], fd


def mark_netns(path: str, mark: str) -> None:
    """Write MARK on the namespace at PATH (adopting a namespace someone made)."""
    with ns.in_netns(path):
        b = _Batch()
    try:
        b.send([_lo_mark(mark)])
    except NetlinkError as e:
        raise _err("mark the namespace", path, e) from None
    finally:
        b.close()


def open_in_netns(path: str) -> tuple[NsLink, int]:
    """A socket bound to an existing namespace, and an fd of it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with ns.in_netns(path):
        link = NsLink()
    return link, fd
