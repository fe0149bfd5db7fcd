"""What `show` produces: one record per kernel object it read (an interface, a
rule with its counter, an endpoint, a resolver), grouped per container and per
network into a Picture, which text, json, dot and html render."""
from __future__ import annotations

from nsbridge.record import field, record


@record
class Iface:
    name: str
    index: int
    kind: str = ""
    mac: str = ""
    mtu: int = 0
    state: str = ""  # the kernel's operstate: up, down, lowerlayerdown (no carrier), unknown (lo)
    addresses: list[str] = field(default_factory=list)
    peer: str = ""  # the other end of a veth, by nsbridge names
    bridge: str = ""  # a host veth: the bridge it is a port of
    port_state: str = ""
    hairpin: bool | None = None
    qdisc: str = ""  # root qdisc when one was set: "tbf rate 10mbit"
    cmd: str = ""


@record
class RuleView:
    table: str
    rule: str  # "-A CHAIN SPEC" as iptables -S prints it
    packets: int
    cmd: str


@record
class EndpointView:
    network: str
    ifname: str
    ip: str
    mac: str
    host_veth: str
    link: str = "up"  # "down" when set so by `nsbridge link`
    impairment: str = ""
    cmd: str = ""


@record
class ResolverView:
    pid: int
    address: str  # 127.0.0.11, inside each container it serves
    state: str
    log: str
    cmd: str
    serves: int = 0  # containers whose first user network this is (it holds their 127.0.0.11:53)


@record
class ContainerView:
    name: str
    id: str
    state: str
    mode: str  # bridge/<network>, host, none, container:<name>
    netns: str = ""
    pid: int = 0
    interfaces: list[Iface] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    endpoints: list[EndpointView] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)
    dns: str = ""  # who answers 127.0.0.11:53 in its namespace
    published: list[RuleView] = field(default_factory=list)
    cmds: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@record
class NetworkView:
    name: str
    id: str
    driver: str
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    icc: bool = True
    masquerade: bool = True
    device: Iface | None = None
    ports: list[Iface] = field(default_factory=list)  # the bridge's ports (host veths)
    containers: list[str] = field(default_factory=list)
    rules: list[RuleView] = field(default_factory=list)
    resolver: ResolverView | None = None
    cmds: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@record
class Picture:
    host: str  # "sandbox host NAME" or "this machine"
    host_netns: str | None
    root: str
    networks: list[NetworkView] = field(default_factory=list)
    containers: list[ContainerView] = field(default_factory=list)
    host_rules: list[RuleView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def all_problems(self) -> list[str]:
        return [*self.problems, *(p for n in self.networks for p in n.problems),
                *(p for c in self.containers for p in c.problems)]
