"""Published and exposed ports: Docker's grammar, allocation and display. Pure.

Parsing follows go-connections' nat.ParsePortSpec (what `docker run -p` uses)
and the CLI's --expose loop, with their exact error texts (the CLI reports
them itself, without the daemon prefix):

  -p [IP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|/udp]
  --expose PORT[-END][/tcp|/udp]

A host port of 0 or none means "pick a free one" (Docker's ephemeral range);
a host range with a single container port means "pick one in that range".
nsbridge publishes IPv4 only, tcp and udp (no sctp).

Display: `ps` PORTS is the docker CLI's DisplayablePorts (consecutive
same-number mappings collapse: 0.0.0.0:7000-7001->7000-7001/tcp), `port`
sorts like the CLI (sortorder.NaturalLess). Docker also lists a `[::]:PORT`
twin of every 0.0.0.0 binding; nsbridge publishes IPv4 only, so never shows one.
No I/O here; imports stay light (the read-only commands render with this).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from nsbridge.errors import ClientError
from nsbridge.model import PortBinding
from nsbridge.record import record

PROTOS = ("tcp", "udp")
#: Docker's default dynamic range (its portallocator reads ip_local_port_range)
EPHEMERAL = (32768, 60999)
_DIGITS = re.compile(r"^[0-9]+$")


class PortSpecError(ClientError):
    """A malformed -p/--expose value: printed as the docker CLI does, no daemon prefix."""


@record(frozen=True)
class PublishSpec:
    """One container port of a -p value, before a host port is picked."""

    container_port: int
    proto: str
    host_ip: str  # "" = every address (or the network's host_binding_ipv4)
    host_port: int  # 0 = pick one
    host_port_end: int = 0  # > host_port: pick one in host_port..host_port_end

    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    @property
    def pick(self) -> bool:
        return self.host_port == 0 or self.host_port_end > self.host_port


# -- parsing ----------------------------------------------------------------------
def _go_uint16(s: str) -> int:
    """strconv.ParseUint(s, 10, 16), with Go's error text."""
    if not _DIGITS.match(s):
        raise ValueError(f'strconv.ParseUint: parsing "{s}": invalid syntax')
    v = int(s)
    if v > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{s}": value out of range')
    return v


def parse_port_range(ports: str) -> tuple[int, int]:
    """nat.ParsePortRange: "80" -> (80, 80), "80-81" -> (80, 81); ValueError with Go's text."""
    if ports == "":
        raise ValueError("empty string specified for ports")
    if "-" not in ports:
        v = _go_uint16(ports)
        return v, v
    parts = ports.split("-")
    if len(parts) != 2:  # Docker reads the first two and ignores the rest; refuse instead
        raise ValueError(f"invalid range specified for port: {ports}")
    start, end = _go_uint16(parts[0]), _go_uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {ports}")
    return start, end


def split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: "80/udp" -> ("udp", "80"); no proto means tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def _check_proto(proto: str) -> str:
    p = proto.lower()
    if p == "sctp":
        raise PortSpecError("invalid proto: sctp (nsbridge publishes tcp and udp only)")
    if p not in PROTOS:
        raise PortSpecError(f"invalid proto: {proto}")
    return p


def _check_ip(ip: str) -> str:
    import ipaddress

    if ip.startswith("["):
        ip = ip[1:-1] if ip.endswith("]") else ip
        raise PortSpecError(f"invalid IP address {ip}: nsbridge publishes IPv4 ports only")
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise PortSpecError(f"invalid IP address: {ip}") from None
    if addr.version != 4:
        raise PortSpecError(f"invalid IP address {ip}: nsbridge publishes IPv4 ports only")
    # never an address of the host: Docker fails only when its proxy binds one (and not
    # a multicast one for UDP); a DNAT rule for it would never match
    kind = ("multicast" if addr.is_multicast else "reserved" if addr.is_reserved
            else "\"this network\"" if addr.packed[0] == 0 and int(addr) else "")
    if kind:
        raise PortSpecError(f"invalid IP address {ip}: a {kind} address is not a host address to publish on")
    return str(addr)


def parse_publish(raw: str) -> list[PublishSpec]:
    """One `-p` value -> one PublishSpec per container port."""
    ip, host, cport = _split_parts(raw)
    proto, cport = split_proto_port(cport)
    if ip:
        ip = _check_ip(ip)
    if not cport:
        raise PortSpecError(f"no port specified: {raw}<empty>")
    try:
        cstart, cend = parse_port_range(cport)
    except ValueError:
        raise PortSpecError(f"invalid containerPort: {cport}") from None
    if cstart == 0:
        raise PortSpecError(f"invalid containerPort: {cport}")
    hstart = hend = 0
    if host:
        try:
            hstart, hend = parse_port_range(host)
        except ValueError:
            raise PortSpecError(f"invalid hostPort: {host}") from None
        if hstart == 0 and hend != 0:
            raise PortSpecError(f"invalid hostPort: {host}")
        if (cend - cstart) != (hend - hstart) and cend != cstart:
            raise PortSpecError(f"invalid ranges specified for container and host Ports: {cport} and {host}")
    proto = _check_proto(proto)
    out = []
    for i in range(cend - cstart + 1):
        if cstart == cend and hend != hstart:  # one container port, a host range to pick from
            out.append(PublishSpec(cstart, proto, ip, hstart, hend))
        else:
            out.append(PublishSpec(cstart + i, proto, ip, hstart + i if host else 0))
    return out


def parse_expose(raw: str) -> list[str]:
    """One `--expose` value -> keys such as "5000/tcp" (the CLI's loop in opts.parse)."""
    if ":" in raw:
        raise PortSpecError(f"invalid port format for --expose: {raw}")
    proto, port = split_proto_port(raw)
    try:
        start, end = parse_port_range(port)
    except ValueError as e:
        raise PortSpecError(f"invalid range format for --expose: {raw}, error: {e}") from None
    if start == 0:
        raise PortSpecError(f"invalid range format for --expose: {raw}, error: port 0 is not a port")
    proto = _check_proto(proto)
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def parse_all(publish: Iterable[str], expose: Iterable[str]) -> tuple[list[PublishSpec], list[str]]:
    """Every -p and --expose of one `run`: (publish specs, exposed keys in first-seen order)."""
    specs = [s for raw in publish for s in parse_publish(raw)]
    exposed = dict.fromkeys(key for raw in expose for key in parse_expose(raw))  # a set that keeps order
    return specs, list(exposed)


def publish_all_specs(specs: list[PublishSpec], exposed: list[str]) -> list[PublishSpec]:
    """-P: every exposed port without a -p of its own, on a picked host port."""
    have = {s.key() for s in specs}
    out = []
    for key in exposed:
        if key not in have:
            port, _, proto = key.partition("/")
            out.append(PublishSpec(int(port), proto or "tcp", "", 0))
    return out


# -- allocation ---------------------------------------------------------------------
def docker_order(specs: list[PublishSpec]) -> list[PublishSpec]:
    """The order Docker allocates in (go-connections' nat.SortPortMap): bindings
    with a host port first, then those it picks, by the container port's key as a
    string, so with -P `443/tcp` gets its host port before `80/tcp`."""
    return sorted(specs, key=lambda s: (s.pick, s.key() if s.pick else ""))


@record(frozen=True)
class Held:
    """A host port some binding holds: (proto, host ip, port) and who holds it."""

    proto: str
    host_ip: str
    port: int


class _Taken:
    """Held host ports indexed by (proto, port): a clash check is one lookup,
    however many ports the host holds (a scan per candidate port made picking
    cubic: `-P --expose 1-3000` took minutes under the host lock)."""

    def __init__(self, held: Iterable[Held] = ()) -> None:
        self._ips: dict[tuple[str, int], set[str]] = {}
        for h in held:
            self.add(h.proto, h.host_ip, h.port)

    def add(self, proto: str, ip: str, port: int) -> None:
        self._ips.setdefault((proto, port), set()).add("" if ip == "0.0.0.0" else ip)

    def clashes(self, proto: str, ip: str, port: int) -> bool:
        """Equal addresses clash, and every address ("" or 0.0.0.0) clashes with any."""
        ips = self._ips.get((proto, port))
        return bool(ips) and (ip in ("", "0.0.0.0") or "" in ips or ip in ips)


def spans(specs: Iterable[PublishSpec], dynamic: tuple[int, int] = EPHEMERAL) -> list[tuple[str, int, int]]:
    """(proto, lo, hi): the host ports allocating SPECS looks at (each explicit
    port, each range to pick from), merged: what to read of the ports held."""
    want = sorted(
        (s.proto, *((s.host_port, s.host_port) if not s.pick else (s.host_port, s.host_port_end) if s.host_port else dynamic))
        for s in specs
    )
    out: list[tuple[str, int, int]] = []
    for proto, lo, hi in want:
        if out and out[-1][0] == proto and lo <= out[-1][2] + 1:
            out[-1] = (proto, out[-1][1], max(hi, out[-1][2]))
        else:
            out.append((proto, lo, hi))
    return out


class PortAllocated(Exception):
    """A host port is taken (or none is left to pick): Docker's text after the endpoint."""


def allocate(
    specs: list[PublishSpec],
    default_ip: str,
    allocated: Iterable[Held],
    avoid: Iterable[Held],
    dynamic: tuple[int, int] = EPHEMERAL,
) -> list[PortBinding]:
    """Host ports for SPECS, in their order: an explicit port must not clash
    with ALLOCATED (ports published by running containers) nor with an earlier
    spec; a picked port is the lowest that clashes with neither nor with AVOID
    (ports kept by stopped containers, sockets of the host). Raises PortAllocated.
    Linear in len(SPECS) + the ranges picked from: each held list is read once,
    and picks from one range resume where the previous pick stopped (ports are
    only ever added while allocating, so the lowest free one never moves down)."""
    out: list[PortBinding] = []
    held = _Taken(allocated)
    avoided = _Taken(avoid)
    cursor: dict[tuple[str, str, int, int], int] = {}
    for s in specs:
        ip = s.host_ip or default_ip
        if ip == "0.0.0.0":
            ip = ""
        if not s.pick:
            if held.clashes(s.proto, ip, s.host_port):
                raise PortAllocated(f"Bind for {ip or '0.0.0.0'}:{s.host_port} failed: port is already allocated")
            port = s.host_port
        else:
            lo, hi = (s.host_port, s.host_port_end) if s.host_port else dynamic
            at = (s.proto, ip, lo, hi)
            port = cursor.get(at, lo)
            while port <= hi and (held.clashes(s.proto, ip, port) or avoided.clashes(s.proto, ip, port)):
                port += 1
            if port > hi:
                raise PortAllocated("all ports are allocated")
            cursor[at] = port + 1
        held.add(s.proto, ip, port)
        asked = str(s.host_port) if not s.pick else f"{s.host_port}-{s.host_port_end}" if s.host_port else ""
        out.append(PortBinding(s.container_port, s.proto, ip, port, asked))
    return out


def first_taken(bindings: Iterable[PortBinding], allocated: Iterable[Held]) -> PortBinding | None:
    """The first of BINDINGS (kept by a stopped container) that a port in
    ALLOCATED now clashes with: `start` must not take it."""
    taken = _Taken(allocated)
    return next((b for b in bindings if taken.clashes(b.proto, b.host_ip, b.host_port)), None)


def listening(proc_net_text: str, proto: str) -> list[Held]:
    """Host sockets from /proc/net/tcp or /proc/net/udp text: TCP listeners and
    every bound UDP socket (so a picked port never shadows a host service)."""
    out = []
    for line in proc_net_text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4:
            continue
        local, state = f[1], f[3]
        if proto == "tcp" and state != "0A":
            continue
        hexip, _, hexport = local.partition(":")
        if len(hexip) != 8:
            continue
        b = bytes.fromhex(hexip)[::-1]
        ip = ".".join(str(x) for x in b)
        out.append(Held(proto, "" if ip == "0.0.0.0" else ip, int(hexport, 16)))
    return out


# -- display ------------------------------------------------------------------------
def display_ip(b: PortBinding) -> str:
    return b.host_ip or "0.0.0.0"


@record(frozen=True)
class ApiPort:
    """types.Port of the Engine API: what `ps` formats."""

    private: int
    proto: str
    ip: str = ""
    public: int = 0


def api_ports(bindings: list[PortBinding], exposed: list[str]) -> list[ApiPort]:
    """A running container's ports: every binding, plus exposed ports not published."""
    out = [ApiPort(b.container_port, b.proto, display_ip(b), b.host_port) for b in bindings]
    bound = {b.key() for b in bindings}
    for key in exposed:
        if key not in bound:
            port, _, proto = key.partition("/")
            out.append(ApiPort(int(port), proto or "tcp"))
    return out


def displayable_ports(ports: list[ApiPort]) -> str:
    """The docker CLI's DisplayablePorts (cli/command/formatter/container.go)."""
    ports = sorted(ports, key=lambda p: (p.private, p.ip, p.public, p.proto))
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for p in ports:
        key = p.proto
        if p.ip:
            if p.public != p.private:
                mappings.append(f"{p.ip}:{p.public}->{p.private}/{p.proto}")
                continue
            key = f"{p.ip}/{p.proto}"
        g = groups.get(key)
        if g is None:
            groups[key] = [p.private, p.private]
            order.append(key)
            continue
        if p.private == g[1] + 1:
            g[1] = p.private
            continue
        result.append(_form_group(key, g[0], g[1]))
        groups[key] = [p.private, p.private]
    result += [_form_group(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def _form_group(key: str, start: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(start) if start == last else f"{start}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


_RUNS = re.compile(r"\d+|\D+")


def natural_key(s: str) -> list[tuple[int, int | str, int]]:
    """Sort key equivalent to sortorder.NaturalLess: digit runs compare as
    numbers (and before other characters), fewer leading zeros first."""
    out: list[tuple[int, int | str, int]] = []
    for t in _RUNS.findall(s):  # a run of other characters compares as its characters would, one by one
        if t[0].isdigit():
            stripped = t.lstrip("0")
            out.append((0, int(stripped or "0"), len(t) - len(stripped)))
        else:
            out.append((1, t, 0))
    return out


def port_lines(bindings: list[PortBinding], port: str | None, name: str) -> list[str]:
    """`port NAME [PORT[/PROTO]]` as the docker CLI prints it (bindings of a running container)."""
    if port:
        num, _, proto = port.partition("/")
        proto = proto or "tcp"
        try:
            _go_uint16(num)
        except ValueError as e:
            raise ClientError(f"Error: invalid port ({num}): {e}") from None
        found = [b for b in bindings if str(b.container_port) == num and b.proto == proto]
        if not found:
            raise ClientError(f"Error: No public port '{port}' published for {name}")
        lines = [f"{display_ip(b)}:{b.host_port}" for b in found]
    else:
        lines = [f"{b.key()} -> {display_ip(b)}:{b.host_port}" for b in bindings]
    return sorted(lines, key=natural_key)


def port_maps(bindings: list[PortBinding], exposed: list[str], running: bool, from_publish_all: set[str]):
    """(NetworkSettings.Ports, HostConfig.PortBindings, Config.ExposedPorts) as
    Docker shows them; keys sorted as Go marshals a map (by string)."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    requested: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        if b.key() not in from_publish_all:
            asked = str(b.host_port) if b.requested is None else b.requested
            requested.setdefault(b.key(), []).append({"HostIp": b.host_ip, "HostPort": asked})
        if running:
            ports.setdefault(b.key(), []).append({"HostIp": display_ip(b), "HostPort": str(b.host_port)})
    keys = {b.key() for b in bindings} | set(exposed)
    if running:
        for k in keys:
            ports.setdefault(k, None)
    return (
        {k: ports[k] for k in sorted(ports)},
        {k: requested[k] for k in sorted(requested)},
        {k: {} for k in sorted(keys)},
    )
