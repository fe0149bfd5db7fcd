"""Subnet pools: Docker's default address pools, lowest free first.

Docker's allocator rotates past freed pools; we always take the lowest free
one, which is what the tutorials show and what a student can predict.
"""
from __future__ import annotations

import ipaddress
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


def parse_subnet(text: str) -> IPv4Net:
    """A CIDR with no host bits (Docker accepts host bits; we refuse them)."""
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise InvalidArgument(f"Invalid subnet {text} : invalid CIDR address: {text}") from None
    if "/" not in text:
        raise InvalidArgument(f"Invalid subnet {text} : invalid CIDR address: {text}")
    if iface.ip != iface.network.network_address:
        raise InvalidArgument(
            f"invalid subnet {text}: host bits are set (did you mean {iface.network}?)"
        )
    if iface.network.prefixlen > 30:
        raise InvalidArgument(
            f"invalid subnet {text}: too small to hold a gateway and one container (use /30 or larger)"
        )
    return iface.network


def parse_ip(text: str, what: str = "IP address") -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
