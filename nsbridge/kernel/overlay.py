"""The overlay network's kernel objects, as Docker's overlay driver builds them.

Per host and overlay network, a namespace `overlay@<id12>` (prefixed with the
sandbox host's name in a sandbox) holding:
  br0     a bridge with the network's gateway address (containers' veths join it)
  vxlan0  a VXLAN device: the network's VNI, UDP 4789, local = the host's
          advertise address, MTU 50 below the underlay's, learning off, ARP
          proxy on (it answers ARP for remote containers from its neighbour table)
The VXLAN device is made in the HOST namespace and then moved in, so its UDP
socket stays in the host namespace and encapsulated packets follow the host's
underlay routes (libnetwork's overlay driver does the same).

For each endpoint on another host, the watcher programs (learning is off, so
`bridge fdb show` and `ip neigh` show exactly what the cluster store says):
  bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst HOST   flooding (ARP, broadcast)
  bridge fdb replace MAC dev vxlan0 dst HOST                this MAC lives behind HOST
  ip neigh replace IP lladdr MAC dev vxlan0 nud permanent   ARP answered locally

Why a second pyroute2 importer beside netlink.py: VXLAN, FDB and neighbour
tables are a separate job from a single host's bridges and veths (which
netlink.py keeps lean for the per-container hot path), and only overlay
networks pay for them. Every function here is called with the thread in the
host namespace (the engine's session, the watcher) and returns there.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nsbridge.cluster.layout import VXLAN_PORT, overlay_mtu
from nsbridge.errors import Conflict, KernelError
from nsbridge.kernel import ns, sysctl
from nsbridge.kernel.netlink import ALIAS_PREFIX, _err, open_in_new_netns
from nsbridge.record import record

BRIDGE = "br0"
VXLAN = "vxlan0"
NETNS_TAG = "overlay@"
ZERO_MAC = "00:00:00:00:00:00"
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
NTF_SELF = 0x02  # the entry is the VXLAN device's own (`bridge fdb ... self`), not its master bridge's


#: Egress and `-p` for overlay containers: Docker's docker_gwbridge, a LOCAL bridge
#: network (listed by `network ls`, scope local) that each overlay container joins
#: as a second interface, its default route: masquerade on, icc off (containers of
#: one host must not talk to each other through it, only out). Made as any user
#: bridge is (the bridge driver's NAT and isolation rules), with these options.
GWBRIDGE_NAME = "docker_gwbridge"
GWBRIDGE_OPTIONS = {
    "com.docker.network.bridge.name": GWBRIDGE_NAME,
    "com.docker.network.bridge.enable_icc": "false",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
}


@record(frozen=True)
class Peer:
    """A remote endpoint as the kernel sees it: its address and MAC, and the
    underlay address (VTEP) of the host it lives on."""

    ip: str
    mac: str
    vtep: str


def netns_name(host_netns: str | None, network_id: str) -> str:
    """The overlay namespace of a network: `overlay@<id12>` (a name no
    container can have: `@` is not allowed in container names)."""
    base = NETNS_TAG + network_id[:12]
    return f"{host_netns}-{base}" if host_netns else base


def netns_prefix(host_netns: str | None) -> str:
    """What every overlay namespace name of HOST_NETNS starts with; the name only
    narrows: whose a namespace is, its mark says (engine/owner.py overlay_mark)."""
    return netns_name(host_netns, "")


def vxlan_host_name(vni: int, network_id: str) -> str:
    """Its name in the host namespace before the move, as libnetwork's vx-VNI-ID."""
    return f"vx-{vni:06x}-{network_id[:5]}"


def underlay_mtu(address: str) -> int:
    """MTU of the host device holding ADDRESS (the advertise address)."""
    with IPRoute(groups=0) as ipr:
        for a in ipr.get_addr(family=socket.AF_INET):
            if a.get_attr("IFA_ADDRESS") == address or a.get_attr("IFA_LOCAL") == address:
                link = ipr.get_links(a["index"])[0]
                return int(link.get_attr("IFLA_MTU"))
    raise KernelError(f"no device of this host has the advertise address {address}")


def create_network_ns(host_netns: str | None, network_id: str, vni: int, gateway: str, prefixlen: int,
                      local: str, mark: str, mtu: int | None = None) -> str:
    """Build the overlay namespace of a network with its br0 and vxlan0 (see the
    module docstring); on any failure remove what was made and raise
    KernelError. MARK: its owner's (engine/owner.py overlay_mark), written before
    the namespace has its name. MTU: the overlay's, default the underlay's less 50.
    Returns the namespace's name."""
    name = netns_name(host_netns, network_id)
    alias = ALIAS_PREFIX + network_id
    mtu = mtu or overlay_mtu(underlay_mtu(local))
    tmp = vxlan_host_name(vni, network_id)
    with IPRoute(groups=0) as host:
        try:
            with ns.returning():
                try:
                    inner, inner_fd = open_in_new_netns(name, mark)  # loopback up, marked
                except FileExistsError:
                    raise KernelError(f"failed to create overlay namespace {name}: already exists") from None
                os.close(inner_fd)
                try:
                    inner.ensure_bridge(BRIDGE, gateway, prefixlen, mtu, alias)
                finally:
                    inner.close()
            try:
                host.link("add", ifname=tmp, kind="vxlan", vxlan_id=vni, vxlan_port=VXLAN_PORT,
                          vxlan_local=local, vxlan_learning=0, vxlan_proxy=1, mtu=mtu)
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    raise Conflict(f"failed to create vxlan device {tmp}: VXLAN ID {vni} (or the device name) "
                                   f"is already in use on this host") from None
                raise _err("create vxlan device", tmp, e) from None
            idx = host.link_lookup(ifname=tmp)[0]
            fd = os.open(ns.netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.link("set", index=idx, ifalias=alias)
                host.link("set", index=idx, net_ns_fd=fd)
            except NetlinkError as e:
                _delete_quietly(host, tmp)
                raise _err("move vxlan device", f"{tmp} into {name}", e) from None
            finally:
                os.close(fd)
            with ns.in_netns(ns.netns_path(name)), IPRoute(groups=0) as ipr:
                vx = ipr.link_lookup(ifname=tmp)[0]
                br = ipr.link_lookup(ifname=BRIDGE)[0]
                try:
                    ipr.link("set", index=vx, ifname=VXLAN)
                    ipr.link("set", index=vx, master=br, state="up")
                except NetlinkError as e:
                    raise _err("attach vxlan device", f"{VXLAN} to {BRIDGE} in {name}", e) from None
                sysctl.try_write(f"net.ipv4.conf.{BRIDGE}.rp_filter", 0)
        except BaseException:
            delete_network_ns(name)
            raise
    return name


def _delete_quietly(ipr: IPRoute, ifname: str) -> None:
    try:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])
    except NetlinkError:
        pass


def delete_network_ns(name: str) -> bool:
    """Remove the overlay namespace; the kernel destroys its bridge and VXLAN
    device (and their FDB/neighbour entries) with it. Already gone: False."""
    return ns.remove_netns(name)


def vxlan_info(netns_path: str) -> dict:
    """What the kernel says about the namespace's vxlan0: id, port, local,
    learning, proxy, mtu, master (for checks and `inspect`)."""
    with ns.in_netns(netns_path), IPRoute(groups=0) as ipr:
        found = ipr.link_lookup(ifname=VXLAN)
        if not found:
            raise KernelError(f"no {VXLAN} in {netns_path}")
        link = ipr.get_links(found[0])[0]
        data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        return {
            "vni": data.get_attr("IFLA_VXLAN_ID"),
            "port": data.get_attr("IFLA_VXLAN_PORT"),
            "local": data.get_attr("IFLA_VXLAN_LOCAL"),
            "learning": data.get_attr("IFLA_VXLAN_LEARNING"),
            "proxy": data.get_attr("IFLA_VXLAN_PROXY"),
            "mtu": link.get_attr("IFLA_MTU"),
            "master": link.get_attr("IFLA_MASTER"),
            "alias": link.get_attr("IFLA_IFALIAS") or "",
        }


# -- peers: FDB and neighbour entries on vxlan0 -----------------------------------------
def _vxlan_index(ipr: IPRoute, netns_path: str) -> int:
    found = ipr.link_lookup(ifname=VXLAN)
    if not found:
        raise KernelError(f"failed to program overlay peers: no {VXLAN} in {netns_path}")
    return found[0]


def programmed(netns_path: str) -> set[Peer]:
    """The peers the kernel holds now: per-MAC FDB entries on vxlan0 joined with
    the permanent neighbour entries for their MAC."""
    fdb, neigh = _tables(netns_path)
    by_mac = {mac: ip for ip, mac in neigh}
    return {Peer(by_mac[mac], mac, dst) for mac, dst in fdb if mac != ZERO_MAC and mac in by_mac}


def _tables(netns_path: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """((mac, dst) FDB entries, (ip, mac) permanent neighbours) of vxlan0."""
    with ns.in_netns(netns_path), IPRoute(groups=0) as ipr:
        idx = _vxlan_index(ipr, netns_path)
        fdb = set()
        for m in ipr.fdb("dump", ifindex=idx):
            if m["ifindex"] == idx and m.get_attr("NDA_DST"):
                fdb.add((m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")))
        neigh = set()
        for m in ipr.neigh("dump", ifindex=idx, family=socket.AF_INET):
            if m["ifindex"] == idx and m["state"] & NUD_PERMANENT and m.get_attr("NDA_LLADDR"):
                neigh.add((m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR")))
    return fdb, neigh


def flood_targets(netns_path: str) -> set[str]:
    """Hosts that receive this network's broadcast and unknown traffic."""
    fdb, _ = _tables(netns_path)
    return {dst for mac, dst in fdb if mac == ZERO_MAC}


def add_peer(netns_path: str, peer: Peer) -> None:
    """Program one remote endpoint: flooding to its host (once per host), its
    MAC behind that host, its address answered by ARP proxy. Idempotent."""
    _check(peer)
    with ns.in_netns(netns_path), IPRoute(groups=0) as ipr:
        idx = _vxlan_index(ipr, netns_path)
        try:
            try:
                ipr.fdb("append", ifindex=idx, lladdr=ZERO_MAC, dst=peer.vtep)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            # pyroute2 fills in `self permanent` for add/append/del only: say it for replace
            ipr.fdb("replace", ifindex=idx, lladdr=peer.mac, dst=peer.vtep, flags=NTF_SELF,
                    state=NUD_PERMANENT | NUD_NOARP)
            ipr.neigh("replace", ifindex=idx, dst=peer.ip, lladdr=peer.mac, state=NUD_PERMANENT)
        except NetlinkError as e:
            raise KernelError(f"failed to program overlay peer {peer.ip} ({peer.mac}) at {peer.vtep}: "
                              f"{os.strerror(e.code)}") from None


def remove_peer(netns_path: str, peer: Peer, last_on_host: bool) -> None:
    """Undo add_peer; LAST_ON_HOST: no other endpoint of this network lives on
    the peer's host, so flooding to it stops too. Already gone counts as done."""
    with ns.in_netns(netns_path), IPRoute(groups=0) as ipr:
        idx = _vxlan_index(ipr, netns_path)
        calls = [lambda: ipr.neigh("del", ifindex=idx, dst=peer.ip, lladdr=peer.mac),
                 lambda: ipr.fdb("del", ifindex=idx, lladdr=peer.mac, dst=peer.vtep)]
        if last_on_host:
            calls.append(lambda: ipr.fdb("del", ifindex=idx, lladdr=ZERO_MAC, dst=peer.vtep))
        for call in calls:
            try:
                call()
            except NetlinkError as e:
                if e.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
                    raise KernelError(f"failed to remove overlay peer {peer.ip} at {peer.vtep}: "
                                      f"{os.strerror(e.code)}") from None


def sync_peers(netns_path: str, want: set[Peer]) -> tuple[list[Peer], list[Peer]]:
    """Make vxlan0's tables hold exactly WANT (and flooding to exactly their
    hosts). Returns (added, removed)."""
    fdb, neigh = _tables(netns_path)
    by_mac = {mac: ip for ip, mac in neigh}
    have = {Peer(by_mac.get(mac, ""), mac, dst) for mac, dst in fdb if mac != ZERO_MAC}
    stale_neigh = {(ip, mac) for ip, mac in neigh} - {(p.ip, p.mac) for p in want}
    removed = sorted(have - want, key=lambda p: p.ip)
    added = sorted(want - have, key=lambda p: p.ip)
    hosts_wanted = {p.vtep for p in want}
    for p in removed:
        remove_peer(netns_path, p, last_on_host=p.vtep not in hosts_wanted)
    for p in added:
        add_peer(netns_path, p)
    # leftovers: neighbours without an FDB entry, flooding to hosts with no peer left
    with ns.in_netns(netns_path), IPRoute(groups=0) as ipr:
        idx = _vxlan_index(ipr, netns_path)
        for ip, mac in stale_neigh - {(p.ip, p.mac) for p in removed}:
            try:
                ipr.neigh("del", ifindex=idx, dst=ip, lladdr=mac)
            except NetlinkError:
                pass
        for dst in {d for m, d in fdb if m == ZERO_MAC} - hosts_wanted:
            try:
                ipr.fdb("del", ifindex=idx, lladdr=ZERO_MAC, dst=dst)
            except NetlinkError:
                pass
    return added, removed


def _check(peer: Peer) -> None:
    try:
        ipaddress.IPv4Address(peer.ip)
        ipaddress.IPv4Address(peer.vtep)
    except ValueError as e:
        raise KernelError(f"invalid overlay peer {peer}: {e}") from None
    if len(peer.mac.split(":")) != 6:
        raise KernelError(f"invalid overlay peer {peer}: bad MAC")
