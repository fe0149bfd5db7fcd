"""`nsbridge trace NET|CTR[:IFACE]|VETH [FILTER] [-c N] [-w FILE.pcap]`:
packets on a network's bridge ports, a container's interfaces or one veth,
captured in the right namespace, one line each with the hops by nsbridge's
names and the protocol in a few words:

    0.000412  web:eth0 -> veth4f3ae46 -> br-7b51014994af (skynet) -> vethba0f67e -> db:eth0  ICMP echo-request ...

The capture is a plain AF_PACKET socket opened with the thread inside the
namespace (so it sees that namespace's devices); FILTER is compiled by
libpcap (tcpdump's syntax) through scapy, which decodes the frames and
writes the pcap. scapy is imported here only: `nsbridge trace` is its one
user on the CLI.
"""
from __future__ import annotations

import select
import socket
import sys
import time

from nsbridge.errors import ClientError, NotFound
from nsbridge.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.engine.views import ViewOps

ETH_P_ALL = 0x0003
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
PACKET_OUTGOING = 4
NO_SCAPY = ("nsbridge trace needs the scapy package: run `sudo ./setup.sh install` "
            "(or `pip install 'nsbridge[tools]'` in nsbridge's environment)")


@record
class Hop:
    """What a MAC address is, on the network of the capture."""

    container: str = ""  # "web:eth0"
    veth: str = ""  # its host end


@record
class Place:
    """Where the capture runs and how frames are named."""

    netns_path: str | None
    netns: str
    ifaces: list[str]  # [] = every interface of the namespace
    label: str
    network: str = ""  # the network's name, for the bridge hop
    bridge: str = ""
    host_side: bool = True  # host namespace: keep each frame once (as it enters the bridge)
    bridge_of: dict[str, str] = field(default_factory=dict)  # a container's ifname -> its network's bridge


class Names:
    """MAC -> nsbridge names, from the store, for every bridge network."""

    def __init__(self, reader: "ViewOps") -> None:
        store = reader.store
        self.hops: dict[str, Hop] = {}
        self.bridges: dict[str, str] = {}  # bridge MAC -> bridge name, filled by the capture
        cs = {c.id: c for c in store.containers()}
        for e in store.all_endpoints():
            if e.ip and e.mac and e.container_id in cs:
                self.hops[e.mac.lower()] = Hop(f"{cs[e.container_id].name}:{e.ifname}", e.host_ifname)
        self.nets = {n.bridge: n.name for n in store.networks() if n.bridge}

    def bridge_label(self, bridge: str) -> str:
        return f"{bridge} ({self.nets[bridge]})" if bridge in self.nets else bridge

    def path(self, src: str, dst: str, bridge: str) -> str:
        """src container:eth -> its veth -> bridge -> dst veth -> dst container:eth."""
        src, dst = src.lower(), dst.lower()
        hops: list[str] = []
        s = self.hops.get(src)
        if s is not None:
            hops += [s.container, s.veth]
        elif src in self.bridges:
            hops.append(f"host ({self.bridges[src]})")
        else:
            hops.append(src)
        if bridge:
            hops.append(self.bridge_label(bridge))
        d = self.hops.get(dst)
        if d is not None:
            hops += [d.veth, d.container]
        elif dst in self.bridges:
            hops.append(f"host ({self.bridges[dst]})")
        elif int(dst[:2], 16) & 1:
            hops.append("all ports (broadcast)" if dst == "ff:ff:ff:ff:ff:ff" else "all ports (multicast)")
        else:
            hops.append(dst)
        return " -> ".join(hops)


def locate(reader: "ViewOps", where: str) -> Place:
    """NET (its bridge ports), CTR (all its interfaces), CTR:IFACE, or a host veth."""
    from nsbridge.kernel.ns import netns_path

    store = reader.store
    host = reader.host
    name, _, iface = where.partition(":")
    c = store.find_container(name)
    if c is not None:
        c = reader.ps_state(c)
        if not c.running or not c.netns:
            raise NotFound(f"container {c.name} is not running: nothing to capture")
        eps = [e for e in store.endpoints_of(c.id) if e.ip]
        if iface and iface != "lo" and not any(e.ifname == iface for e in eps):
            raise NotFound(f"container {c.name} has no interface {iface}")
        bridge_of = {e.ifname: store.network(e.network_id).bridge for e in eps}
        return Place(netns_path(c.netns), c.netns, [iface] if iface else [], where, host_side=False, bridge_of=bridge_of)
    n = store.find_network(name)
    if n is not None and n.caps.bridge and not iface:
        ports = [e.host_ifname for e in store.endpoints_on(n.id) if e.ip]
        return Place(host.netns_path, host.netns or "", [n.bridge, *ports], n.name, n.name, n.bridge)
    veth = iface or name
    ep = next((e for e in store.all_endpoints() if e.ip and e.host_ifname == veth), None)
    if ep is not None:
        n = store.network(ep.network_id)
        return Place(host.netns_path, host.netns or "", [veth], where, n.name, n.bridge)
    raise NotFound(f"No such network, container or veth: {where}")


def summary(pkt) -> str:
    """ARP, ICMP, DNS query/answer, TCP flags, UDP: in a few words."""
    from scapy.layers.dns import DNS
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP

    if ARP in pkt:
        a = pkt[ARP]
        return f"ARP who-has {a.pdst} tell {a.psrc}" if a.op == 1 else f"ARP {a.psrc} is-at {a.hwsrc}"
    if IP not in pkt:
        return pkt.summary()
    ip = pkt[IP]
    if DNS in pkt:
        d = pkt[DNS]
        q = d.qd[0] if d.qd else None
        qname = q.qname.decode(errors="replace").rstrip(".") if q is not None else "?"
        qtype = q.sprintf("%qtype%") if q is not None else ""
        l4 = pkt[UDP] if UDP in pkt else pkt[TCP]
        where = f"{ip.src}:{l4.sport} > {ip.dst}:{l4.dport}"
        if not d.qr:
            return f"DNS query {qtype} {qname}? {where}"
        rcode = RCODES.get(d.rcode, str(d.rcode))
        answers = [str(rr.rdata) for rr in (d.an or []) if getattr(rr, "type", 0) == 1]
        return f"DNS answer {qname} {rcode} {' '.join(answers) or '(no address)'} {where}"
    if ICMP in pkt:
        i = pkt[ICMP]
        kind = i.sprintf("%type%")
        extra = f" id {i.id} seq {i.seq}" if i.type in (0, 8) else f" code {i.sprintf('%code%')}"
        return f"ICMP {kind} {ip.src} > {ip.dst}{extra}"
    if TCP in pkt:
        t = pkt[TCP]
        return f"TCP {ip.src}:{t.sport} > {ip.dst}:{t.dport} [{t.sprintf('%flags%')}] len {len(t.payload)}"
    if UDP in pkt:
        u = pkt[UDP]
        return f"UDP {ip.src}:{u.sport} > {ip.dst}:{u.dport} len {len(u.payload)}"
    return pkt.summary()


def _open(place: Place, bpf: str) -> socket.socket:
    from nsbridge.kernel.ns import in_netns

    with in_netns(place.netns_path):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        if len(place.ifaces) == 1:
            s.bind((place.ifaces[0], ETH_P_ALL))
    if bpf:
        from scapy.arch.common import compile_filter, free_filter
        from scapy.data import SO_ATTACH_FILTER
        from scapy.libs.structures import sock_fprog

        try:
            bp = compile_filter(bpf, linktype=1)  # DLT_EN10MB: no interface lookup
        except Exception as e:  # scapy raises its own Scapy_Exception with libpcap's message
            s.close()
            raise ClientError(f"invalid filter {bpf!r}: {e}") from None
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog(bp.bf_len, bp.bf_insns))
        free_filter(bp)
    return s


def run(reader: "ViewOps", where: str, bpf: str, count: int, write: str | None, timeout: float | None) -> int:
    place = locate(reader, where)
    try:
        import scapy.layers.dns  # noqa: F401 (binds DNS to port 53)
        import scapy.layers.inet  # noqa: F401 (binds IP to Ether: before the first frame is decoded)
        from scapy.layers.l2 import Ether
        from scapy.utils import PcapWriter
    except ImportError:
        raise ClientError(NO_SCAPY) from None
    names = Names(reader)
    from nsbridge.kernel import rtnl

    for li in rtnl.read(reader.host.netns_path).links:
        if li.kind == "bridge":
            names.bridges[li.mac.lower()] = li.name
    sock = _open(place, bpf)
    writer = PcapWriter(write, linktype=1, sync=True) if write else None
    wanted = set(place.ifaces)
    out = sys.stdout
    out.write(f"capturing on {place.label} ({', '.join(place.ifaces) or 'every interface'} in "
              f"{'namespace ' + place.netns if place.netns else 'the host namespace'})"
              + (f", filter {bpf!r}" if bpf else "") + "\n")
    out.flush()
    start = time.monotonic()
    deadline = start + timeout if timeout else None
    seen = 0
    try:
        while not count or seen < count:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                break
            if not select.select([sock], [], [], wait)[0]:
                continue
            data, addr = sock.recvfrom(65535)
            ifname, pkttype = addr[0], addr[2]
            if wanted and ifname not in wanted:
                continue
            if place.host_side and len(wanted) > 1:
                # each frame once: as it enters the bridge from a port, or leaves the host into it
                if (ifname == place.bridge) != (pkttype == PACKET_OUTGOING):
                    continue
            elif ifname == "lo" and pkttype != PACKET_OUTGOING:
                continue  # loopback shows every packet twice
            pkt = Ether(data)
            pkt.time = time.time()
            if writer is not None:
                writer.write(pkt)
            seen += 1
            bridge = place.bridge_of.get(ifname, place.bridge)
            hops = f"{place.label.split(':')[0]}:lo" if ifname == "lo" else names.path(pkt.src, pkt.dst, bridge)
            out.write(f"{time.monotonic() - start:10.6f}  {hops}  {summary(pkt)}\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if writer is not None:
            writer.close()
    out.write(f"{seen} packet{'s' if seen != 1 else ''} captured" + (f", written to {write}" if write else "") + "\n")
    return 0
