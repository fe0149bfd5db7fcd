"""Read-only rtnetlink dumps (links, addresses, routes, neighbours, qdiscs)
without pyroute2.

`nsbridge show` reads every container's namespace on a read path whose
import set is pinned (tests/integration/test_cli_imports.py): importing
pyroute2 costs ~120 ms, more than reading 200 namespaces this way. A dump is
one request and a few recv() calls on a plain NETLINK_ROUTE socket; only the
attributes shown are decoded. Changes still go through netlink.py.
"""
from __future__ import annotations

import socket
import struct

from nsbridge.record import field, record

NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH, RTM_GETQDISC = 18, 22, 26, 30, 38

OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
BRPORT_STATES = ("disabled", "listening", "learning", "forwarding", "blocking")
NUD = {0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY", 0x10: "PROBE", 0x20: "FAILED",
       0x40: "NOARP", 0x80: "PERMANENT"}


@record
class Link:
    index: int
    name: str
    kind: str = ""  # veth, bridge, "" for loopback and physical
    mac: str = ""
    mtu: int = 0
    admin_up: bool = False
    operstate: str = "unknown"
    master: int = 0  # index of the bridge it is a port of
    peer: int = 0  # IFLA_LINK: a veth's peer index (in the peer's namespace)
    peer_netnsid: int | None = None  # set when the peer is in another namespace
    alias: str = ""
    port_state: str = ""  # bridge port: forwarding, disabled, ...
    hairpin: bool | None = None  # bridge port only


@record
class Addr:
    index: int
    address: str
    prefixlen: int


@record
class Route:
    dst: str  # "default" or CIDR
    gateway: str = ""
    oif: int = 0
    scope: int = 0


@record
class Neigh:
    index: int
    address: str
    mac: str
    state: str


@record
class Qdisc:
    index: int
    kind: str
    handle: int
    parent: int
    rate_bps: int = 0  # tbf: bytes per second
    extra: dict[str, int] = field(default_factory=dict)


def _attrs(data: bytes, off: int = 0, want: frozenset[int] | None = None) -> dict[int, bytes]:
    """Attribute type -> payload (only the WANT types, when given)."""
    out: dict[int, bytes] = {}
    unpack = struct.unpack_from
    while off + 4 <= len(data):
        ln, typ = unpack("=HH", data, off)
        if ln < 4:
            break
        typ &= 0x3FFF  # strip NLA_F_NESTED / NET_BYTEORDER
        if want is None or typ in want:
            out[typ] = data[off + 4:off + ln]
        off += (ln + 3) & ~3
    return out


def _str(b: bytes | None) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace") if b else ""


def _u32(b: bytes | None, default: int = 0) -> int:
    return struct.unpack("=I", b[:4])[0] if b and len(b) >= 4 else default


def _mac(b: bytes | None) -> str:
    return ":".join(f"{x:02x}" for x in b) if b else ""


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    s.bind((0, 0))
    return s


def dump(msg_type: int, body: bytes, sock: socket.socket | None = None) -> list[tuple[bytes, int]]:
    """One dump request on SOCK (else a new socket in the calling thread's
    namespace): (payload, type) of every answer message."""
    s = sock or _socket()
    try:
        s.send(struct.pack("=LHHLL", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        out: list[tuple[bytes, int]] = []
        while True:
            buf = s.recv(1 << 16)
            off = 0
            while off + 16 <= len(buf):
                ln, typ, _flags, _seq, _pid = struct.unpack_from("=LHHLL", buf, off)
                if typ == NLMSG_DONE:
                    return out
                if typ == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", buf, off + 16)[0]
                    if code:
                        raise OSError(code, f"netlink dump {msg_type}: error {code}")
                    return out
                out.append((buf[off + 16:off + ln], typ))
                off += (ln + 3) & ~3
    finally:
        if sock is None:
            s.close()


def _each(sock: socket.socket | None, msg_type: int, want: frozenset[int], fmt: str, *request: int, extra: bytes = b""):
    """(header fields, WANT attributes) of each message a dump answers, for a
    request whose header is FMT (ifinfomsg, rtmsg, ...) filled with REQUEST."""
    size = struct.calcsize(fmt)
    for p, _t in dump(msg_type, struct.pack(fmt, *request) + extra, sock):
        yield struct.unpack_from(fmt, p), _attrs(p, size, want)


# IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS: the kernel leaves out the counters (most of a link's bytes)
_NO_STATS = struct.pack("=HHI", 8, 29, 1 << 3)
_LINK_ATTRS = frozenset((1, 3, 4, 5, 10, 16, 18, 20, 37))


def links(sock: socket.socket | None = None) -> list[Link]:
    found = []
    for (_fam, _typ, index, flags, _chg), a in _each(sock, RTM_GETLINK, _LINK_ATTRS, "=BxHiII", socket.AF_UNSPEC,
                                                     0, 0, 0, 0, extra=_NO_STATS):
        li = Link(index=index, name=_str(a.get(3)), mac=_mac(a.get(1)), mtu=_u32(a.get(4)), admin_up=bool(flags & 1),
                  master=_u32(a.get(10)), peer=_u32(a.get(5)), alias=_str(a.get(20)))
        if 16 in a:
            st = a[16][0]
            li.operstate = OPERSTATES[st] if st < len(OPERSTATES) else str(st)
        if 37 in a:  # IFLA_LINK_NETNSID
            li.peer_netnsid = struct.unpack("=i", a[37][:4])[0]
        info = _attrs(a.get(18, b""))
        li.kind = _str(info.get(1))
        if _str(info.get(4)) == "bridge":  # IFLA_INFO_SLAVE_KIND: a bridge port
            port = _attrs(info.get(5, b""))
            if 1 in port:
                st = port[1][0]
                li.port_state = BRPORT_STATES[st] if st < len(BRPORT_STATES) else str(st)
            if 4 in port:
                li.hairpin = bool(port[4][0])
        found.append(li)
    return found


def addrs(sock: socket.socket | None = None) -> list[Addr]:
    out = []
    for (fam, plen, _fl, _scope, index), a in _each(sock, RTM_GETADDR, frozenset((1, 2)), "=BBBBI", socket.AF_INET,
                                                    0, 0, 0, 0):
        if fam != socket.AF_INET:
            continue
        ip = a.get(2) or a.get(1)  # IFA_LOCAL, else IFA_ADDRESS
        if ip:
            out.append(Addr(index, socket.inet_ntoa(ip), plen))
    return out


def routes(sock: socket.socket | None = None) -> list[Route]:
    """IPv4 unicast routes of the main table."""
    out = []
    for head, a in _each(sock, RTM_GETROUTE, frozenset((1, 4, 5, 15)), "=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0,
                         0, 0, 0):
        _fam, dlen, _slen, _tos, table, _proto, scope, rtype, _flags = head
        if _u32(a.get(15), table) != 254 or rtype != 1:
            continue
        dst = f"{socket.inet_ntoa(a[1])}/{dlen}" if 1 in a else "default"
        out.append(Route(dst, socket.inet_ntoa(a[5]) if 5 in a else "", _u32(a.get(4)), scope))
    return out


def neighbours(sock: socket.socket | None = None) -> list[Neigh]:
    out = []
    for (fam, index, state, _fl, _typ), a in _each(sock, RTM_GETNEIGH, frozenset((1, 2)), "=BxxxiHBB", socket.AF_INET,
                                                   0, 0, 0, 0):
        if fam != socket.AF_INET or 1 not in a:
            continue
        names = [n for bit, n in NUD.items() if state & bit] or ["NONE"]
        out.append(Neigh(index, socket.inet_ntoa(a[1]), _mac(a.get(2)), "|".join(names)))
    return out


def qdiscs(sock: socket.socket | None = None) -> list[Qdisc]:
    out = []
    for (_fam, index, handle, parent, _info), a in _each(sock, RTM_GETQDISC, frozenset((1, 2)), "=BxxxiIII",
                                                         socket.AF_UNSPEC, 0, 0, 0, 0):
        q = Qdisc(index, _str(a.get(1)), handle, parent)
        if q.kind == "tbf":
            opts = _attrs(a.get(2, b""))
            if 1 in opts:  # TCA_TBF_PARMS: struct tc_ratespec rate (rate at offset 8), ...
                q.rate_bps = _u32(opts[1][8:12])
            if 4 in opts:  # TCA_TBF_RATE64 for rates above 32 bits
                q.rate_bps = struct.unpack("=Q", opts[4][:8])[0]
        elif q.kind == "netem":
            raw = a.get(2, b"")
            if len(raw) >= 24:  # struct tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter
                lat, _lim, loss, _gap, _dup, jit = struct.unpack_from("=IIIIII", raw)
                q.extra = {"latency_ticks": lat, "loss_u32": loss, "jitter_ticks": jit}
        out.append(q)
    return out


@record
class NetnsView:
    """Everything show/why read of one namespace, read in one visit."""

    links: list[Link] = field(default_factory=list)
    addrs: list[Addr] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    qdiscs: list[Qdisc] = field(default_factory=list)
    neighbours: list[Neigh] = field(default_factory=list)
    error: str = ""

    def link(self, name_or_index: str | int) -> Link | None:
        key = "index" if isinstance(name_or_index, int) else "name"
        return next((li for li in self.links if getattr(li, key) == name_or_index), None)

    def addrs_of(self, index: int) -> list[Addr]:
        return [a for a in self.addrs if a.index == index]

    def qdiscs_of(self, index: int) -> list[Qdisc]:
        return [q for q in self.qdiscs if q.index == index]


def read(netns_path: str | None, *, neigh: bool = False) -> NetnsView:
    """Read the namespace at NETNS_PATH (None: the current one); an empty view
    with `error` set when it cannot be entered (a stopped container)."""
    from nsbridge.kernel.ns import in_netns

    try:
        with in_netns(netns_path):
            sock = _socket()  # bound to this namespace: the dumps need not stay inside
        with sock:
            return NetnsView(links(sock), addrs(sock), routes(sock), qdiscs(sock), neighbours(sock) if neigh else [])
    except OSError as e:
        return NetnsView(error=f"cannot read {netns_path}: {e.strerror or e}")
