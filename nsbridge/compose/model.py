"""A compose project as nsbridge understands it. Plain records, no I/O:
parse.py builds them, plan.py turns them into engine steps, render.py prints
them back (`compose config`)."""
from __future__ import annotations

from nsbridge.record import field, record


@record
class ServiceNetwork:
    """One entry of a service's `networks:` (the key names a top-level network)."""

    key: str
    aliases: list[str] = field(default_factory=list)
    ipv4_address: str | None = None
    mac_address: str | None = None
    #: Compose attaches networks by priority (highest first), then by name
    priority: int = 0


@record
class Impairment:
    """x-nsbridge's `impair: {NET: {...}}` for one network of a service
    (tc's units as written: rate 1mbit, delay 50ms, jitter 5ms, loss 5%)."""

    rate: str | None = None
    delay: str | None = None
    jitter: str | None = None
    loss: str | None = None


@record
class Service:
    name: str
    image: str = ""
    #: the image comes from `build:` only (named `<project>-<service>` as Compose names it)
    built: bool = False
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    container_name: str | None = None
    hostname: str | None = None
    #: in Compose's attach order (priority, then name: eth0 first); empty with network_mode
    networks: list[ServiceNetwork] = field(default_factory=list)
    #: host | none | bridge | service:NAME | container:NAME (None: networks)
    network_mode: str | None = None
    ports: list[str] = field(default_factory=list)  # `-p` syntax: [IP:][HOST:]CONTAINER[/PROTO]
    expose: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # NAME:IP
    links: list[str] = field(default_factory=list)  # SERVICE[:ALIAS]
    #: service -> condition (service_started, service_healthy, service_completed_successfully)
    depends_on: dict[str, str] = field(default_factory=dict)
    environment: list[str] = field(default_factory=list)  # NAME=VALUE or NAME
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    restart: str = "no"
    mac_address: str | None = None
    scale: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    stdin_open: bool = False
    #: x-nsbridge: network key -> impairment; network key -> "up" | "down"
    impair: dict[str, Impairment] = field(default_factory=dict)
    link_state: dict[str, str] = field(default_factory=dict)


@record
class NetworkDef:
    key: str  # the name in the file
    name: str  # the engine's name (`<project>_<key>` unless `name:` or external)
    driver: str = "bridge"
    driver_opts: dict[str, str] = field(default_factory=dict)
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    external: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@record
class Project:
    name: str
    working_dir: str
    files: list[str] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, NetworkDef] = field(default_factory=dict)
    #: one line per thing nsbridge read and does not honour
    warnings: list[str] = field(default_factory=list)

    def network_of(self, key: str) -> NetworkDef:
        return self.networks[key]
