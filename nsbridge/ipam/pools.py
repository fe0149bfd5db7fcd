"""Subnet pools: Docker's default address pools, lowest free first.

Docker's allocator rotates past freed pools; we always take the lowest free
one, which is what the tutorials show and what a student can predict.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator

from nsbridge.errors import Conflict, InvalidArgument

IPv4Net = ipaddress.IPv4Network


def default_pools() -> Iterator[IPv4Net]:
    """172.17-172.31 as /16s, then 192.168.0.0/16 as /20s (Docker's defaults)."""
    for b in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{b}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def overlaps(net: IPv4Net, taken: Iterable[IPv4Net]) -> bool:
    return any(net.overlaps(t) for t in taken)


def pick_pool(taken: Iterable[IPv4Net]) -> IPv4Net:
    """Lowest default pool overlapping neither a network nor a host route."""
    taken = list(taken)
    for pool in default_pools():
        if not overlaps(pool, taken):
            return pool
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")


#: dotted quad / prefix length, nothing else (no netmask or hostmask forms, no spaces)
CIDR_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}")
#: ranges that cannot be a bridge's subnet, with why
SPECIAL = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "the unspecified range 0.0.0.0/8"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "the loopback range 127.0.0.0/8"),
    # the kernel's and clouds' own (169.254.169.254 metadata, IPv4LL); Docker accepts it
    (ipaddress.IPv4Network("169.254.0.0/16"), "the link-local range 169.254.0.0/16"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "the multicast range 224.0.0.0/4"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "the reserved range 240.0.0.0/4"),
)
SMALLEST_PREFIX = 30  # a gateway and one container


def parse_subnet(text: str) -> IPv4Net:
    """A CIDR with no host bits, big enough for a gateway and one container, and
    not a special range (Docker accepts host bits; we refuse them and the rest)."""
    bad = InvalidArgument(f"Invalid subnet {text} : invalid CIDR address: {text}")
    if not CIDR_RE.fullmatch(text):
        raise bad
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise bad from None
    if iface.ip != iface.network.network_address:
        raise InvalidArgument(
            f"invalid subnet {text}: host bits are set (did you mean {iface.network}?)"
        )
    if iface.network.prefixlen > SMALLEST_PREFIX:
        raise InvalidArgument(
            f"invalid subnet {text}: too small to hold a gateway and one container (use /30 or larger)"
        )
    for special, what in SPECIAL:
        if iface.network.overlaps(special):
            raise InvalidArgument(f"invalid subnet {text}: it overlaps {what}")
    return iface.network


def parse_ip(text: str, what: str = "IP address") -> ipaddress.IPv4Address:
    """A dotted-quad IPv4 address (ipaddress refuses spaces and leading zeros)."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
