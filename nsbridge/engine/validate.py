"""Validation of user input, complete before anything is touched. Pure.

Every rule raises one of the errors of nsbridge.errors with a one-line text:
Docker's where Docker has one (its daemon's with the daemon prefix, its CLI's
without: `CliInvalid`), a clear one of ours where Docker accepts nonsense.
Names are matched whole (`fullmatch`): a trailing newline is not allowed to
slip past a `$` (Python's `$` matches before a final newline).
"""
from __future__ import annotations

import ipaddress
import json
import re

from nsbridge.errors import Forbidden, InvalidArgument, NotFound
from nsbridge.ipam.pools import CIDR_RE, parse_ip, parse_subnet
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
from nsbridge.record import field, record

IFNAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}")
#: Go's strconv.Atoi accepts an optional sign and ASCII digits, nothing else
ATOI_RE = re.compile(r"[+-]?[0-9]+")
#: RFC 1123 host names as Docker validated them (runconfig, Docker <= 1.12)
HOSTNAME_RE = re.compile(r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])")
HOSTNAME_MAX = 64  # Linux HOST_NAME_MAX
#: the docker CLI's opts.ValidateDNSSearch (its domainRegexp, anchored)
DOMAIN_RE = re.compile(r"(:?(?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))(:?\.(?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])))*)\.?")
MTU_MIN, MTU_MAX = 68, 65535
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


class CliInvalid(InvalidArgument):
    """Bad input that Docker's CLI itself reports (no "Error response from daemon: ")."""

    prefix = ""


def goq(s: str) -> str:
    """Go's %q of a string (what Docker's messages quote input with)."""
    return json.dumps(s, ensure_ascii=False)


def _plain(s: str) -> bool:
    """No whitespace, no control characters: safe inside /etc/hosts and resolv.conf."""
    return bool(s) and not any(ch.isspace() or not ch.isprintable() for ch in s)


def _flag_error(value: str, flag: str, why: str) -> CliInvalid:
    """pflag's wording for a value its validator refused."""
    return CliInvalid(f"invalid argument {goq(value)} for {goq(flag)} flag: {why}")


# -- names -----------------------------------------------------------------------
def container_name(name: str) -> str:
    n = name[1:] if name.startswith("/") else name
    if not NAME_RE.fullmatch(n):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if len(n) > NAME_MAX:
        raise InvalidArgument(f"Invalid container name ({name[:20]}...): longer than {NAME_MAX} characters")
    return n


def network_name(name: str) -> str:
    """Docker's container-name rule applied to networks (Docker accepts `bad/name`)."""
    if name in PREDEFINED:
        raise Forbidden(f"operation is not permitted on predefined {name} network")
    if not name:
        raise InvalidArgument("network name must not be empty")
    if len(name) > NAME_MAX:
        raise InvalidArgument(f"invalid network name {name[:20]}...: longer than {NAME_MAX} characters")
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid network name ({name}): only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters"
        )
    return name


def hostname(name: str) -> str:
    """`-h`: what sethostname(2) takes and /etc/hosts can carry (Docker's old rule)."""
    if len(name) > HOSTNAME_MAX or not HOSTNAME_RE.fullmatch(name):
        raise InvalidArgument(f"invalid hostname format: {name}")
    return name


# -- network options ---------------------------------------------------------------
def _go_bool(key: str, value: str) -> None:
    if parse_bool(value) is None:
        raise InvalidArgument(
            f'failed to parse {key} value: {value} (strconv.ParseBool: parsing "{value}": invalid syntax)'
        )


def mtu(key: str, value: str) -> int:
    if not ATOI_RE.fullmatch(value):
        raise InvalidArgument(
            f'failed to parse {key} value: {value} (strconv.Atoi: parsing "{value}": invalid syntax)'
        )
    n = int(value)
    if not MTU_MIN <= n <= MTU_MAX:
        raise InvalidArgument(
            f"invalid {key} value: {value} (the MTU must be between {MTU_MIN} and {MTU_MAX})"
        )
    return n


def network_options(opts: dict[str, str]) -> dict[str, str]:
    for key, value in opts.items():
        if key not in KNOWN_OPTIONS:
            raise InvalidArgument(f"unknown network option {key} (known: {', '.join(KNOWN_OPTIONS)})")
        if key == OPT_MTU:
            mtu(key, value)
        elif key in (OPT_ICC, OPT_MASQ):
            _go_bool(key, value)
        elif key == OPT_BRIDGE_NAME:
            if not IFNAME_RE.fullmatch(value):
                raise InvalidArgument(
                    f"invalid {key} value: {value} (an interface name of 1-15 characters [a-zA-Z0-9_.-])"
                )
        elif key == OPT_HOST_BINDING:
            parse_ip(value, f"{key} value")
    return opts


# -- addresses -------------------------------------------------------------------
@record
class IpamRequest:
    subnet: ipaddress.IPv4Network | None = None
    gateway: str | None = None
    ip_range: ipaddress.IPv4Network | None = None


def ipam_request(subnet: str | None, gateway: str | None, ip_range: str | None) -> IpamRequest:
    req = IpamRequest()
    if subnet is None:
        if gateway is not None or ip_range is not None:
            raise CliInvalid("every ip-range or gateway must have a corresponding subnet")
        return req
    req.subnet = parse_subnet(subnet)
    if gateway is not None:
        gw = parse_ip(gateway, "gateway")
        if gw not in req.subnet:
            raise CliInvalid(f"no matching subnet for gateway {gateway}")
        if gw in (req.subnet.network_address, req.subnet.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: it is the network or broadcast address of {subnet}")
        req.gateway = str(gw)
    if ip_range is not None:
        try:
            rng = ipaddress.IPv4Network(ip_range) if CIDR_RE.fullmatch(ip_range) else None
        except ValueError:
            rng = None
        if rng is None:
            raise InvalidArgument(f"invalid ip-range {ip_range}: not a CIDR without host bits")
        if not rng.subnet_of(req.subnet):
            raise CliInvalid(f"no matching subnet for range {ip_range}")
        req.ip_range = rng
    return req


# -- labels and -o -----------------------------------------------------------------
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


# -- run / create options -------------------------------------------------------------
def dns_server(value: str) -> str:
    """--dns: an IP address (the docker CLI's opts.ValidateIPAddress)."""
    try:
        return str(ipaddress.ip_address(value.strip(" ")))
    except ValueError:
        raise _flag_error(value, "--dns", f"{value} is not an ip address") from None


def dns_search(value: str) -> str:
    """--dns-search: a domain, or `.` for none (the docker CLI's opts.ValidateDNSSearch)."""
    v = value.strip(" ")
    if v == ".":
        return v
    if not re.search(r"[a-zA-Z]", v) or not DOMAIN_RE.fullmatch(v) or len(v) >= 255:
        raise _flag_error(value, "--dns-search", f"{value} is not a valid domain")
    return v


def dns_option(value: str) -> str:
    """--dns-option: one resolv.conf option word (Docker takes anything; a space or
    newline would write other options or lines into the container's resolv.conf)."""
    if not _plain(value):
        raise _flag_error(value, "--dns-option", "a resolv.conf option is one word without spaces")
    return value


def extra_host(value: str) -> str:
    """--add-host NAME:IP|host-gateway (the docker CLI's opts.ValidateExtraHost, which
    also lets a name with spaces or newlines write extra lines into /etc/hosts)."""
    name, sep, ip = value.partition(":")
    if not sep or not _plain(name):
        raise _flag_error(value, "--add-host", f"bad format for add-host: {goq(value)}")
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _flag_error(value, "--add-host", f"invalid IP address in add-host: {goq(ip)}") from None
    return value


def link(value: str) -> tuple[str, str]:
    """--link NAME[:ALIAS] (the docker CLI's opts.ParseLink; an alias with a space or
    newline would also write extra names or lines into /etc/hosts)."""
    if not value:
        raise _flag_error(value, "--link", "empty string specified for links")
    parts = value.split(":")
    if len(parts) > 2 or not all(_plain(p) for p in parts):
        raise _flag_error(value, "--link", f"bad format for links: {value}")
    return parts[0], parts[-1]


def restart_policy(value: str) -> str:
    """--restart NAME[:COUNT]: the docker CLI's ParseRestartPolicy, then the daemon's check."""
    parts = value.split(":")
    if len(parts) > 2:
        raise CliInvalid("invalid restart policy format")
    name = parts[0]
    count = 0
    if len(parts) == 2:
        if not ATOI_RE.fullmatch(parts[1]):
            raise CliInvalid("maximum retry count must be an integer")
        count = int(parts[1])
    if name not in RESTART_POLICIES and name != "":
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if count < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    return value


def env_var(value: str) -> str:
    """-e NAME[=VALUE] (the docker CLI's opts.ValidateEnv: a name is needed; the kernel
    and Python refuse an empty one only when the process starts)."""
    if not value.partition("=")[0]:
        raise _flag_error(value, "-e, --env", f"invalid environment variable: {value}")
    return value


def run_options(spec) -> None:
    """The options of `run`/`create` that need no store: hostname, env, DNS, hosts, links."""
    for v in spec.env:
        env_var(v)
    if spec.hostname is not None:
        hostname(spec.hostname)
    for v in spec.dns:
        dns_server(v)
    for v in spec.dns_search:
        dns_search(v)
    for v in spec.dns_options:
        dns_option(v)
    for v in spec.add_hosts:
        extra_host(v)
    for v in spec.links:
        link(v)
    restart_policy(spec.restart)


# -- --network ------------------------------------------------------------------------
@record
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


def ip_for(ip: str | None, mode: NetworkSpec) -> None:
    """--ip is one network's address: with several --network, Docker (25+) quietly
    gives it to the first; say so instead."""
    if ip is not None and mode.mode == "named" and len(mode.names) > 1:
        raise CliInvalid(
            f"conflicting options: --ip is an address on one network, and {len(mode.names)} were given with "
            "--network (give the others theirs with `network connect --ip`)"
        )
