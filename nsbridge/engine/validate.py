"""Validation of user input, complete before anything is touched. Pure."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from nsbridge.errors import Forbidden, InvalidArgument, NotFound
from nsbridge.ipam.pools import parse_ip, parse_subnet
from nsbridge.model import (
    KNOWN_OPTIONS,
    NAME_MAX,
    NAME_RE,
    OPT_BRIDGE_NAME,
    OPT_HOST_BINDING,
    OPT_ICC,
    OPT_MASQ,
    OPT_MTU,
    PREDEFINED,
    parse_bool,
)

IFNAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$")


def container_name(name: str) -> str:
    n = name[1:] if name.startswith("/") else name
    if not NAME_RE.match(n) or len(n) > NAME_MAX:
        if len(n) > NAME_MAX and NAME_RE.match(n):
            raise InvalidArgument(f"Invalid container name ({name}): longer than {NAME_MAX} characters")
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return n


def network_name(name: str) -> str:
    """Docker's container-name rule applied to networks (Docker accepts `bad/name`)."""
    if name in PREDEFINED:
        raise Forbidden(f"operation is not permitted on predefined {name} network")
    if not name:
        raise InvalidArgument("network name must not be empty")
    if len(name) > NAME_MAX:
        raise InvalidArgument(f"invalid network name {name[:20]}...: longer than {NAME_MAX} characters")
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid network name ({name}): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"
        )
    return name


def _go_bool(key: str, value: str) -> None:
    if parse_bool(value) is None:
        raise InvalidArgument(
            f'failed to parse {key} value: {value} (strconv.ParseBool: parsing "{value}": invalid syntax)'
        )


def network_options(opts: dict[str, str]) -> dict[str, str]:
    for key, value in opts.items():
        if key not in KNOWN_OPTIONS:
            raise InvalidArgument(f"unknown network option {key} (known: {', '.join(KNOWN_OPTIONS)})")
        if key == OPT_MTU:
            try:
                mtu = int(value)
            except ValueError:
                raise InvalidArgument(
                    f'failed to parse {key} value: {value} (strconv.Atoi: parsing "{value}": invalid syntax)'
                ) from None
            if not 68 <= mtu <= 65535:
                raise InvalidArgument(f"invalid {key} value: {value} (the MTU must be between 68 and 65535)")
        elif key in (OPT_ICC, OPT_MASQ):
            _go_bool(key, value)
        elif key == OPT_BRIDGE_NAME:
            if not IFNAME_RE.match(value):
                raise InvalidArgument(
                    f"invalid {key} value: {value} (an interface name of 1-15 characters [a-zA-Z0-9_.-])"
                )
        elif key == OPT_HOST_BINDING:
            parse_ip(value, f"{key} value")
    return opts


@dataclass
class IpamRequest:
    subnet: ipaddress.IPv4Network | None = None
    gateway: str | None = None
    ip_range: ipaddress.IPv4Network | None = None


def ipam_request(subnet: str | None, gateway: str | None, ip_range: str | None) -> IpamRequest:
    req = IpamRequest()
    if subnet is None:
        if gateway or ip_range:
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        return req
    req.subnet = parse_subnet(subnet)
    if gateway is not None:
        gw = parse_ip(gateway, "gateway")
        if gw not in req.subnet:
            raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        if gw in (req.subnet.network_address, req.subnet.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: it is the network or broadcast address of {subnet}")
        req.gateway = str(gw)
    if ip_range is not None:
        try:
            rng = ipaddress.IPv4Network(ip_range)
        except ValueError:
            raise InvalidArgument(f"invalid ip-range {ip_range}: not a CIDR without host bits") from None
        if not rng.subnet_of(req.subnet):
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
        req.ip_range = rng
    return req


def labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


def key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k or not sep:
            raise InvalidArgument(f"invalid {what} {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


@dataclass
class NetworkSpec:
    """What `run --network` asks for, parsed."""

    mode: str  # default | host | none | container | named
    names: list[str] = field(default_factory=list)
    container: str = ""


def network_mode(values: list[str]) -> NetworkSpec:
    if not values:
        return NetworkSpec("default", ["bridge"])
    specials = [v for v in values if v in ("host", "none") or v.startswith("container:")]
    if specials and len(values) > 1:
        raise InvalidArgument(
            "container cannot be connected to multiple networks with one of the networks in private (none) mode"
            if "none" in values
            else f"conflicting options: --network {specials[0]} cannot be combined with other networks"
        )
    v = values[0]
    if v == "host":
        return NetworkSpec("host", ["host"])
    if v == "none":
        return NetworkSpec("none", ["none"])
    if v.startswith("container:"):
        ref = v.split(":", 1)[1]
        if not ref:
            raise InvalidArgument("invalid container format container:<name|id>")
        return NetworkSpec("container", [], ref)
    seen = []
    for n in values:
        if not n:
            raise NotFound("network  not found")
        if n not in seen:
            seen.append(n)
    return NetworkSpec("named", seen)
