"""Container addresses: the lowest free one from .2 (or from the ip-range).

A freed address is reused at once, as Docker does.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Collection

from nsbridge.errors import Conflict, InvalidArgument


def usable(subnet: str, ip_range: str | None) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(ip_range or subnet)


def allocate(
    subnet: str, gateway: str, ip_range: str | None, taken: Collection[str], network_label: str
) -> str:
    """Lowest free host address; skips network, broadcast and gateway.

    Works on integers and probes TAKEN (strings) only per candidate, so the
    cost does not grow with the number of containers on the network."""
    net = ipaddress.IPv4Network(subnet)
    rng = usable(subnet, ip_range)
    skip = {int(net.network_address), int(net.broadcast_address), int(ipaddress.IPv4Address(gateway))}
    for i in range(int(rng.network_address), int(rng.broadcast_address) + 1):
        if i in skip:
            continue
        a = str(ipaddress.IPv4Address(i))
        if a not in taken:
            return a
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {network_label}")


def check_requested(subnet: str, gateway: str, ip: str, taken: Collection[str]) -> str:
    """Validate an address asked for with --ip."""
    try:
        a = ipaddress.IPv4Address(ip)
    except ValueError:
        raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
    net = ipaddress.IPv4Network(subnet)
    if a not in net:
        raise InvalidArgument(f"Invalid address {ip}: It does not belong to any of this network's subnets")
    if a in (net.network_address, net.broadcast_address):
        raise InvalidArgument(f"Invalid address {ip}: it is the network or broadcast address of {subnet}")
    if ip == gateway or ip in taken:
        raise Conflict("Address already in use")
    return ip
