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
    aux_addresses: dict[str, str] = field(default_factory=dict)


def _cidr(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text) if CIDR_RE.fullmatch(text) else None
    except ValueError:
        net = None
    if net is None:
        raise InvalidArgument(f"invalid {what} {text}: not a CIDR without host bits")
    return net


def ipam_request(
    subnet: str | None, gateway: str | None, ip_range: str | None, aux_addresses: dict[str, str] | None = None
) -> IpamRequest:
    """One subnet's IPAM settings, checked as Docker's CLI consolidates them
    (createIPAMConfig: ranges, then gateways, then aux addresses, each matched
    to the subnet) and as its daemon then refuses what cannot be a gateway."""
    req = IpamRequest()
    aux = {k: v for k, v in (aux_addresses or {}).items() if v != ""}  # the CLI skips empty values
    if subnet is None:
        if gateway is not None or ip_range is not None:
            raise CliInvalid("every ip-range or gateway must have a corresponding subnet")
        for v in aux.values():
            _aux_ip(v)
            raise CliInvalid(f"no matching subnet for aux-address {v}")
        return req
    req.subnet = parse_subnet(subnet)
    if ip_range is not None:
        rng = _cidr(ip_range, "ip-range")
        if not rng.subnet_of(req.subnet):
            raise CliInvalid(f"no matching subnet for range {ip_range}")
        req.ip_range = rng
    if gateway is not None:
        gw = parse_ip(gateway, "gateway")
        if gw not in req.subnet:
            raise CliInvalid(f"no matching subnet for gateway {gateway}")
        if gw in (req.subnet.network_address, req.subnet.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: it is the network or broadcast address of {subnet}")
        req.gateway = str(gw)
    for name, v in aux.items():
        if _aux_ip(v) not in req.subnet:
            raise CliInvalid(f"no matching subnet for aux-address {v}")
        req.aux_addresses[name] = v
    return req


def _aux_ip(value: str) -> ipaddress.IPv4Address:
    """An --aux-address value: Go's netip.ParseAddr, IPv4 only here."""
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        pass
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        raise CliInvalid(f"ParseAddr({goq(value)}): unable to parse IP") from None
    raise InvalidArgument(f"invalid aux-address {value}: nsbridge networks are IPv4 only")


def aux_addresses(items: list[str]) -> dict[str, str]:
    """--aux-address NAME=IP, repeatable (Docker's MapOpts: no `=` is a name with
    an empty value, which its CLI then skips); the last value of a name wins."""
    out: dict[str, str] = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def ipam_flags(subnets: list[str], gateways: list[str], ip_ranges: list[str]) -> tuple[str | None, str | None, str | None]:
    """`network create`'s repeatable --subnet/--gateway/--ip-range, checked in the
    order of Docker's CLI (then its daemon: a bridge takes one subnet); the one
    subnet's values, which ipam_request checks further."""
    if len(subnets) < len(ip_ranges) or len(subnets) < len(gateways):
        raise CliInvalid("every ip-range or gateway must have a corresponding subnet")
    nets = [parse_subnet(s) for s in subnets]
    for i, a in enumerate(nets):
        if any(a.overlaps(b) for b in nets[:i]):
            raise CliInvalid("multiple overlapping subnet configuration is not supported")
    for flag, values in (("range", ip_ranges), ("gateway", gateways)):
        taken: dict[int, str] = {}
        for v in values:
            addr = _cidr(v, "ip-range") if flag == "range" else parse_ip(v, "gateway")
            hits = [i for i, n in enumerate(nets) if (addr.network_address if flag == "range" else addr) in n]
            if not hits:
                raise CliInvalid(f"no matching subnet for {flag} {v}")
            i = hits[0]
            if i in taken:
                what = "ranges" if flag == "range" else "gateways"
                prep = "on" if flag == "range" else "for"
                raise CliInvalid(f"cannot configure multiple {what} ({v}, {taken[i]}) {prep} the same subnet ({subnets[i]})")
            taken[i] = v
    if len(subnets) > 1:
        raise Forbidden("bridge driver doesn't support multiple subnets")
    return (subnets or [None])[0], (gateways or [None])[0], (ip_ranges or [None])[0]


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
    """--add-host NAME=IP, NAME:IP or NAME=host-gateway, the address optionally in
    [brackets] (the docker CLI's opts.ValidateExtraHost), normalised as it is to
    NAME:IP. A name with spaces or newlines would write extra lines into /etc/hosts."""
    name, sep, ip = value.partition("=")
    if not sep:
        name, sep, ip = value.partition(":")
    if not sep or not _plain(name) or ":" in name:
        raise _flag_error(value, "--add-host", f"bad format for add-host: {goq(value)}")
    if ip != "host-gateway":
        if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]":
            ip = ip[1:-1]
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _flag_error(value, "--add-host", f"invalid IP address in add-host: {goq(ip)}") from None
    return f"{name}:{ip}"


#: Go's net.ParseMAC forms of a 48-bit address: 01:23:45:67:89:ab, 01-23-45-67-89-ab, 0123.4567.89ab
MAC_RE = re.compile(r"([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})")
MAC_DOT_RE = re.compile(r"[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}")


def mac_address(value: str) -> str:
    """--mac-address: Docker's CLI takes what net.ParseMAC takes (the 8- and
    20-byte forms too, which no veth can carry); nsbridge takes an Ethernet
    address that an interface can have, in lower-case colon form."""
    v = value.strip()
    m = MAC_RE.fullmatch(v)
    if m is not None:
        octets = [g for i, g in enumerate(m.groups()) if i != 1]
    elif MAC_DOT_RE.fullmatch(v):
        h = v.replace(".", "")
        octets = [h[i : i + 2] for i in range(0, 12, 2)]
    else:
        raise CliInvalid(f"{value} is not a valid mac address")
    mac = ":".join(o.lower() for o in octets)
    if int(octets[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address {value}: a multicast address cannot be an interface's address")
    if mac == "00:00:00:00:00:00":
        raise InvalidArgument(f"invalid MAC address {value}: the all-zero address cannot be an interface's address")
    return mac


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
    """The options of `run`/`create` that need no store: hostname, env, DNS, hosts,
    links, MAC, aliases. --add-host and --mac-address are normalised in SPEC, as
    Docker's CLI sends them to its daemon."""
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
    spec.add_hosts = [extra_host(v) for v in spec.add_hosts]
    for v in spec.links:
        link(v)
    restart_policy(spec.restart)
    if spec.mac_address is not None:
        spec.mac_address = mac_address(spec.mac_address)
    if spec.aliases and not user_defined((spec.networks or ["default"])[0]):
        # the docker CLI's check, on the network's name as given
        raise CliInvalid("network-scoped aliases are only supported for user-defined networks")


# -- --network ------------------------------------------------------------------------
#: the docker CLI's test for its extended form (NetworkOpt.Set): a `key=value` anywhere
LONG_SYNTAX = re.compile(r"\w+=\w+(,\w+=\w+)*")
ENDPOINT_SYSCTLS = "com.docker.network.endpoint.sysctls"
SYSCTL_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.mpls.")


@record
class Attachment:
    """One --network value: a name, or the extended `name=NET,alias=A,ip=IP,mac-address=M,
    driver-opt=com.docker.network.endpoint.sysctls=...` form."""

    name: str
    aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    mac: str | None = None
    sysctls: list[str] = field(default_factory=list)


def endpoint_sysctls(value: str) -> list[str]:
    """`net.ipv4.conf.IFNAME.log_martians=1,...`: per-interface sysctls, IFNAME standing
    for the container's interface on that network (Docker's endpoint sysctls)."""
    out = []
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if not sep or not key.startswith(SYSCTL_PREFIXES) or ".IFNAME." not in key or not _plain(item) \
                or not re.fullmatch(r"[a-zA-Z0-9_.-]+", key):
            raise InvalidArgument(
                f"invalid interface sysctl {item!r}: expected net.ipv4|ipv6|mpls.<...>.IFNAME.<name>=<value>"
            )
        out.append(item)
    return out


def network_attachment(value: str) -> Attachment:
    """A --network value, parsed as the docker CLI's NetworkOpt does (csv fields)."""
    if not LONG_SYNTAX.search(value):
        return Attachment(value)
    import csv

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise _flag_error(value, "--network", "invalid csv") from None
    a = Attachment("")
    for f in fields:
        key, sep, val = f.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not sep or not key:
            raise _flag_error(value, "--network", f"invalid field {f}")
        if key == "name":
            a.name = val
        elif key == "alias":
            a.aliases.append(val)
        elif key == "ip":
            parse_ip(val)
            a.ip = val
        elif key == "mac-address":
            a.mac = mac_address(val)
        elif key == "driver-opt":
            opt, _, v = val.partition("=")
            if opt != ENDPOINT_SYSCTLS:
                raise InvalidArgument(f"unknown endpoint driver option {opt} (nsbridge knows {ENDPOINT_SYSCTLS})")
            a.sysctls += endpoint_sysctls(v)
        elif key == "sysctl":
            a.sysctls += endpoint_sysctls(val)
        elif key in ("ip6", "link-local-ip"):
            raise InvalidArgument(f"invalid {key} {val}: nsbridge networks are IPv4 only")
        elif key == "gw-priority":
            raise InvalidArgument("gw-priority is not supported by nsbridge: the first network reaching out gives the default route")
        else:
            raise _flag_error(value, "--network", f"invalid field key {key}")
    if not a.name:
        raise _flag_error(value, "--network", "network name not specified")
    return a


def user_defined(network: str) -> bool:
    """Docker's NetworkMode.IsUserDefined, on the name as typed."""
    return network not in ("default", "bridge", "host", "none") and not network.startswith("container:")


@record
class NetworkSpec:
    """What `run --network` asks for, parsed."""

    mode: str  # default | host | none | container | named
    names: list[str] = field(default_factory=list)
    container: str = ""
    #: network name -> its extended --network settings (only those given so)
    attachments: dict[str, Attachment] = field(default_factory=dict)


def network_mode(values: list[str]) -> NetworkSpec:
    if not values:
        return NetworkSpec("default", ["bridge"])
    atts = [network_attachment(v) for v in values]
    for a in atts:
        if a.aliases and not user_defined(a.name):
            raise CliInvalid("network-scoped aliases are only supported for user-defined networks")
    values = [a.name for a in atts]
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
    extended = {a.name: a for a in atts if a.aliases or a.ip or a.mac or a.sysctls}
    return NetworkSpec("named", seen, attachments=extended)


def first_network_flags(spec, mode: NetworkSpec) -> None:
    """--ip, --network-alias and --mac-address belong to the first network: given
    there per network too, the docker CLI refuses (applyContainerOptions)."""
    a = mode.attachments.get(mode.names[0]) if mode.names else None
    if a is None:
        return
    for mine, flag, what in ((a.aliases, spec.aliases, "--network-alias and per-network alias"),
                             (a.ip, spec.ip, "--ip and per-network IPv4 address"),
                             (a.mac, spec.mac_address, "--mac-address and per-network MAC address")):
        if mine and flag:
            raise CliInvalid(f"conflicting options: cannot specify both {what}")


def ip_for(ip: str | None, mode: NetworkSpec) -> None:
    """--ip is one network's address: with several --network, Docker (25+) quietly
    gives it to the first; say so instead."""
    if ip is not None and mode.mode == "named" and len(mode.names) > 1:
        raise CliInvalid(
            f"conflicting options: --ip is an address on one network, and {len(mode.names)} were given with "
            "--network (give each its own: --network name=NET,ip=IP)"
        )
