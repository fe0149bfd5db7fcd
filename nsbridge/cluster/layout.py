"""Where nsbridge keeps its cluster-wide state in etcd: pure functions, no I/O.

Everything lives under one prefix, so `etcdctl get --prefix /nsbridge/v1/`
shows it all and one delete removes it:

    /nsbridge/v1/networks/NAME          network record (JSON); created if absent:
                                        one name cluster-wide
    /nsbridge/v1/vxlan/VNI              network id; VXLAN IDs from 256, each
                                        taken by creating its key
    /nsbridge/v1/subnets/A.B.C.D-LEN    network id; no two overlay networks
                                        share a subnet
    /nsbridge/v1/ipam/NETID/IP          endpoint id; an address is taken by
                                        creating its key (no duplicates across
                                        hosts), under the owner host's lease
    /nsbridge/v1/endpoints/NETID/EPID   endpoint record (JSON), under the owner
                                        host's lease: gone TTL after the host is
    /nsbridge/v1/hosts/HOSTID           host record (JSON), under its lease

Values of records are JSON objects; the record classes below read and write them.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Iterator

from nsbridge.record import asdict, field, fields, record

PREFIX = "/nsbridge/v1/"
NETWORKS = PREFIX + "networks/"
VXLAN = PREFIX + "vxlan/"
SUBNETS = PREFIX + "subnets/"
IPAM = PREFIX + "ipam/"
ENDPOINTS = PREFIX + "endpoints/"
HOSTS = PREFIX + "hosts/"

VNI_FIRST = 256  # Docker's overlay driver starts at 256 (libnetwork's vxlanIDStart)
VNI_LAST = (1 << 24) - 1
#: Docker's default global address pool: 10.0.0.0/8 handed out as /24s
OVERLAY_POOL = ipaddress.IPv4Network("10.0.0.0/8")
OVERLAY_PREFIXLEN = 24
VXLAN_PORT = 4789  # IANA's VXLAN port, as Docker's
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


# -- keys ----------------------------------------------------------------------
def network_key(name: str) -> str:
    return NETWORKS + name


def vni_key(vni: int) -> str:
    return f"{VXLAN}{vni}"


def subnet_key(subnet: str) -> str:
    return SUBNETS + subnet.replace("/", "-")


def ipam_prefix(network_id: str) -> str:
    return f"{IPAM}{network_id}/"


def ip_key(network_id: str, ip: str) -> str:
    return ipam_prefix(network_id) + ip


def endpoints_prefix(network_id: str) -> str:
    return f"{ENDPOINTS}{network_id}/"


def endpoint_key(network_id: str, endpoint_id: str) -> str:
    return endpoints_prefix(network_id) + endpoint_id


def host_key(host_id: str) -> str:
    return HOSTS + host_id


def parse_key(key: str) -> tuple[str, tuple[str, ...]]:
    """(kind, parts) of one of our keys: ('endpoint', (netid, epid)),
    ('host', (hostid,)), ('network', (name,)), ('ip', (netid, ip)),
    ('vni', (vni,)), ('subnet', (cidr,)); ('', ()) for anything else."""
    if not key.startswith(PREFIX):
        return "", ()
    kind, _, rest = key[len(PREFIX):].partition("/")
    parts = tuple(rest.split("/")) if rest else ()
    want = {"networks": ("network", 1), "vxlan": ("vni", 1), "subnets": ("subnet", 1), "ipam": ("ip", 2),
            "endpoints": ("endpoint", 2), "hosts": ("host", 1)}
    if kind not in want or len(parts) != want[kind][1] or not all(parts):
        return "", ()
    name = want[kind][0]
    if name == "subnet":
        parts = (parts[0].replace("-", "/"),)
    return name, parts


# -- allocation: candidates in order, the caller creates the key of the first it can --
def vni_candidates(taken: Iterable[int]) -> Iterator[int]:
    """Free VXLAN IDs from 256 up, lowest first."""
    used = set(taken)
    return (v for v in range(VNI_FIRST, VNI_LAST + 1) if v not in used)


def subnet_candidates(taken: Iterable[str]) -> Iterator[str]:
    """/24s of 10.0.0.0/8, lowest first, that overlap no subnet in TAKEN
    (other overlay networks', the host's own routes)."""
    nets = [ipaddress.IPv4Network(t, strict=False) for t in taken]
    for sub in OVERLAY_POOL.subnets(new_prefix=OVERLAY_PREFIXLEN):
        if not any(sub.overlaps(t) for t in nets):
            yield str(sub)


def overlay_mtu(underlay_mtu: int) -> int:
    """The VXLAN device's (and the overlay's) MTU: what the underlay carries
    less the encapsulation."""
    return underlay_mtu - VXLAN_OVERHEAD


# -- records -----------------------------------------------------------------
class _Json:
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str):
        d = json.loads(text)
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@record(frozen=True)
class ClusterHost(_Json):
    id: str
    name: str  # the host's name (hostname, or the sandbox host's namespace)
    advertise: str  # underlay address: the VXLAN tunnel endpoint other hosts send to
    joined: str = ""


@record(frozen=True)
class ClusterNetwork(_Json):
    id: str
    name: str
    subnet: str
    gateway: str
    vni: int
    created: str = ""
    attachable: bool = False
    ip_range: str = ""
    options: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)


@record(frozen=True)
class ClusterEndpoint(_Json):
    id: str
    network_id: str
    container_id: str
    name: str  # the container's name, for the resolvers
    ip: str
    mac: str
    host: str  # owner host's id
    vtep: str  # owner host's advertise address
    aliases: list = field(default_factory=list)
