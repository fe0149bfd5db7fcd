"""Plain data: networks, containers, endpoints, port bindings. No I/O here.

The store persists these as rows; the engine builds them; render turns them
into Docker-shaped JSON. Everything is JSON-serialisable through to_dict /
from_dict so the store can keep the less-queried fields as one blob.
"""
from __future__ import annotations

import os
import re

from nsbridge.record import asdict, field, fields, record

# Docker's rule for container names; nsbridge applies it to networks too.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_MAX = 64

PREDEFINED = ("bridge", "host", "none")

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
KNOWN_OPTIONS = (OPT_BRIDGE_NAME, OPT_ICC, OPT_MASQ, OPT_HOST_BINDING, OPT_MTU)


def new_id() -> str:
    """64 hex characters, as Docker's object IDs."""
    return os.urandom(32).hex()


def now_iso() -> str:
    """Docker's RFC 3339 timestamp with nanoseconds ('...T15:19:30.643645103Z')."""
    import time

    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def mac_for(ip: str) -> str:
    """Docker's MAC: 02:42 followed by the four IPv4 bytes."""
    import ipaddress

    b = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool; None when the text is not a boolean."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


@record
class IpamConfig:
    subnet: str
    gateway: str
    ip_range: str | None = None
    #: whether --gateway was given (kept in records; inspect shows Gateway either way)
    gateway_given: bool = False
    #: --aux-address NAME=IP: addresses IPAM never hands out (Docker's AuxiliaryAddresses)
    aux_addresses: dict[str, str] = field(default_factory=dict)


@record
class Network:
    id: str
    name: str
    driver: str  # bridge | host | null
    created: str
    ipam: IpamConfig | None = None
    internal: bool = False
    attachable: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: kernel device of a bridge network (docker0, br-<id12>, or the bridge.name option)
    bridge: str = ""
    predefined: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def opt_bool(self, key: str, default: bool = True) -> bool:
        v = self.options.get(key)
        if v is None:
            return default
        b = parse_bool(v)
        return default if b is None else b

    @property
    def icc(self) -> bool:
        return self.opt_bool(OPT_ICC)

    @property
    def masquerade(self) -> bool:
        return self.opt_bool(OPT_MASQ)

    @property
    def mtu(self) -> int | None:
        v = self.options.get(OPT_MTU)
        return int(v) if v else None

    @property
    def is_default_bridge(self) -> bool:
        return self.predefined and self.driver == "bridge"

    @property
    def has_dns(self) -> bool:
        """User-defined bridges get an embedded resolver; the default bridge does not."""
        return self.driver == "bridge" and not self.predefined

    def prefixlen(self) -> int:
        assert self.ipam is not None
        return int(self.ipam.subnet.rsplit("/", 1)[1])


@record
class Endpoint:
    """One container's attachment to one network; live fields are empty when released."""

    container_id: str
    network_id: str
    position: int  # attach order: eth<position> while live
    ip_requested: str | None = None
    aliases: list[str] = field(default_factory=list)
    # live part (None/"" when the container is not running)
    endpoint_id: str = ""
    ip: str | None = None
    mac: str = ""
    ifname: str = ""  # eth0, eth1, ... inside the container
    host_ifname: str = ""  # veth on the bridge
    last_ip: str | None = None  # kept while released, so `start` gets it back if still free


@record
class PortBinding:
    container_port: int
    proto: str  # tcp | udp
    host_ip: str  # "" means all addresses
    host_port: int  # 0 until allocated
    #: HostPort as asked for, for HostConfig.PortBindings: "8080", "8000-8010", or "" (picked);
    #: None in records made before it was kept (then the port itself is shown)
    requested: str | None = None

    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


@record
class Container:
    id: str
    name: str
    created: str
    image: str = ""
    cmd: list[str] = field(default_factory=list)
    hostname: str = ""
    #: bridge (default) | <network name> | host | none | container:<id>
    network_mode: str = "default"
    state: str = "created"  # created | running | exited
    pid: int = 0
    pid_start: int = 0  # /proc/<pid>/stat start time, guards against pid reuse
    exit_code: int = 0
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    netns: str = ""  # name under /run/netns while it exists
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    env: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "name:alias" on the default bridge
    ports: list[PortBinding] = field(default_factory=list)
    publish_all: bool = False
    exposed: list[str] = field(default_factory=list)  # "5000/tcp"
    restart_policy: str = "no"
    stopped_by_user: bool = False  # `unless-stopped` stays down after a reboot only then
    standin: str = ""  # catalog entry the container runs instead of a command
    #: --mac-address as given (Config.MacAddress); applied through endpoint_macs
    mac_address: str = ""
    #: network id -> the MAC its endpoint there gets (--mac-address on the first network,
    #: `--network name=N,mac-address=M`); others are derived from the address
    endpoint_macs: dict[str, str] = field(default_factory=dict)
    #: network id -> its endpoint's interface sysctls (`net.ipv4.conf.IFNAME.x=v`)
    endpoint_sysctls: dict[str, list[str]] = field(default_factory=dict)
    #: the image's ENTRYPOINT and CMD (from the catalog, recorded at create as Docker
    #: records Config): what `ps` and `inspect` show; the container runs `cmd` or a stand-in
    entrypoint: list[str] = field(default_factory=list)
    image_cmd: list[str] = field(default_factory=list)
    #: `network connect --link NAME:ALIAS`: network id -> its links (names its resolver maps)
    net_links: dict[str, list[str]] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)  # as given (HostConfig.CapAdd)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    labels: dict[str, str] = field(default_factory=dict)  # Config.Labels (compose's com.docker.compose.*)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.state == "running"

    def forget_network(self, network_id: str) -> bool:
        """Drop what the container keeps for one network (on disconnect); True if anything."""
        found = [d.pop(network_id, None) is not None for d in (self.net_links, self.endpoint_macs, self.endpoint_sysctls)]
        return any(found)

    @property
    def shown_command(self) -> list[str]:
        """Path and Args as Docker shows them: the image's entrypoint, then the
        given command or the image's own."""
        return [*self.entrypoint, *(self.cmd or self.image_cmd)]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "Container":
        d = dict(d)
        d["ports"] = [PortBinding(**p) for p in d.get("ports", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def network_to_dict(n: Network) -> dict[str, object]:
    return asdict(n)


def network_from_dict(d: dict[str, object]) -> Network:
    d = dict(d)
    if d.get("ipam"):
        d["ipam"] = IpamConfig(**d["ipam"])
    return Network(**d)
