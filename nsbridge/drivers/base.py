"""The network driver interface, in the spirit of libnetwork's driverapi and
netavark's network plugins: the engine owns the store, IPAM, names, the lock
and the plan; a driver owns the kernel objects of one kind of network.

The engine asks a driver, never tests a driver's name:

    validate(opts, internal)          -> opts     the -o options, pure (Docker's texts), before the lock
    check(k, net, others)                          under the lock, before anything is made: conflicts with
                                                   the networks that exist, kernel features it lacks
    create(plan, k, net)                           the network's kernel objects, each step with its undo
    delete(k, net)                    -> [error]   remove them (already gone is success), report every error
    missing(k, net)                   -> bool      its host objects are gone (a reboot): `restore` it
    restore(plan, k, net)                          make them again (the store is unchanged)
    admit(net, endpoints, container)               refuse one endpoint more (a bridge's port limit)
    mac(ip, given)                    -> str       an endpoint's MAC (Docker's rule: 02:42 + its address)
    host_end(endpoint_id)             -> str       its device in the host namespace, if any (a veth's end)
    join(plan, k, j: Join)                         the container's interface: made, addressed, routed
    leave(ctr, ep)                                 remove it (the namespace's removal does it too)
    rules(net)                        -> [Rule]    the iptables rules the network must have (reconcile)
    devices(net)                      -> [name]    host-namespace devices it made (named `nsbridge:<net id>`)
    mode_members(net, containers)     -> [...]     containers that are on it by their network mode (host)
    inspect_options(net)              -> dict      `network inspect`'s Options

A driver whose networks reach beyond this host (scope global: overlay, through a
cluster store) also answers, with an Env saying where this host is:

    known(env)                        -> [Network] | None   the networks it knows beyond this host's store
                                                   (None: none, or it cannot say; listing them warns why)
    find(env, ref)                    -> Network | None     one of them by name or ID prefix
    claim(k, plan, name, req, ...)    -> Network   `network create`: the record, made where the driver's
                                                   networks live (caps.ipam == "driver": its subnets)
    assign(plan, k, net, ep)          -> ip        caps.ipam == "driver": an endpoint's address
    withdraw(env, net)                             `network rm`, before anything here goes: remove it where
                                                   it lives, or refuse (another host has an endpoint)
    released(env, net, eps, left)                  endpoints of this host gone (their container's namespace
                                                   removed, or disconnected); LEFT: this host's others on it
    inspect_fields(env, net)          -> dict      `network inspect`'s fields of its own (overlay: Peers)
    egress                            (name, opts) a local network its containers also join, for egress
                                                   and -p, when none of theirs gives it (docker_gwbridge)

Capabilities say the rest (scope, bridge, NAT, isolation, whose IPAM, DNS, a
per-network namespace), so the engine, reconcile, reset, `ports` and
`inspect` decide by capability. A driver module imports its kernel modules
inside its methods: read-only commands look capabilities up without pyroute2.
"""
from __future__ import annotations

from nsbridge.errors import Forbidden, InvalidArgument
from nsbridge.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from nsbridge.engine.core import Kernel
    from nsbridge.engine.plan import Plan
    from nsbridge.kernel.firewall import Rule
    from nsbridge.kernel.netlink import NsLink
    from nsbridge.model import Container, Endpoint, Network


@record(frozen=True)
class Capabilities:
    #: `network inspect`'s Scope: local (one host), global (a cluster store), swarm
    scope: str = "local"
    #: containers get an interface on it (host and null: no, they are network modes)
    endpoints: bool = True
    #: only the predefined instance exists (host, null): `network create -d` is refused
    singleton: bool = False
    #: a host bridge device per network (Network.bridge): hairpin, the default bridge
    bridge: bool = False
    #: masquerade and published ports (-p) go through its networks
    nat: bool = False
    #: the network's iptables isolation rules
    isolation: bool = False
    #: whose addresses: "engine" (nsbridge's IPAM), "driver" (its own, overlay's cluster-wide), "none"
    ipam: str = "engine"
    #: the embedded DNS (127.0.0.11) serves its user-defined networks
    dns: bool = True
    #: a namespace per network (overlay's br0 + vxlan0), marked `nsbridge:overlay:...`
    netns: bool = False
    #: device kinds it makes in the host namespace (reconcile and reset look for these)
    host_kinds: tuple[str, ...] = ()
    #: device kinds it makes inside containers, carrying the engine's group (reconcile looks there)
    container_kinds: tuple[str, ...] = ()
    #: its gateway is a container's default route (when it is the container's first such network)
    default_route: bool = True


@record
class Env:
    """Where this host is, for a driver whose networks reach beyond it (the
    engine's session gives it as Kernel.env; read-only commands make one)."""

    store: object  # the host's state store (the overlay driver's cluster membership is in its meta table)
    host_netns: str | None
    engine_id: str
    group: int = 0  # the engine's device group
    #: a context manager putting the thread in the host namespace (a cluster store is reached from there)
    entered: object = None


@record
class Join:
    """One endpoint being made: what `join` is handed."""

    host: "NsLink"  # a socket in the host namespace
    ctr: "NsLink"  # a socket in the container's namespace
    ctr_fd: int  # the container's namespace, as an fd
    net: "Network"
    ep: "Endpoint"  # ip, mac, endpoint_id, ifname, host_ifname already chosen
    default_route: bool
    ipv6_off_by_default: bool = False
    sysctls: "Sequence[str]" = field(default_factory=tuple)
    netns: str = ""  # the container's namespace path (an undo inside it opens it again)
    container_id: str = ""  # whose endpoint (a cluster store announces it to other hosts)
    container_name: str = ""


class Driver:
    """Defaults for a driver with no kernel objects of its own."""

    name = ""
    caps = Capabilities()
    #: `-o` keys it knows
    options: tuple[str, ...] = ()
    #: Docker's text when a container is connected to a network without endpoints (host, null)
    refusal = ""
    #: a container may be disconnected from it (not from host: the container would have no namespace)
    detachable = True

    # -- networks ------------------------------------------------------------------
    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        if self.caps.singleton:
            raise Forbidden(f'only one instance of "{self.name}" network is allowed')
        for key in opts:
            if key not in self.options:
                known = f" (known: {', '.join(self.options)})" if self.options else ""
                raise InvalidArgument(f"unknown network option {key}{known}")
        return opts

    def check(self, k: "Kernel", net: "Network", others: "list[Network]") -> None:
        pass

    def create(self, plan: "Plan", k: "Kernel", net: "Network") -> None:
        pass

    def delete(self, k: "Kernel", net: "Network") -> list[str]:
        return []

    def missing(self, k: "Kernel", net: "Network") -> bool:
        return False

    def restore(self, plan: "Plan", k: "Kernel", net: "Network") -> None:
        self.create(plan, k, net)

    # -- endpoints -----------------------------------------------------------------
    def admit(self, net: "Network", endpoints: int, container: str) -> None:
        pass

    def mac(self, ip: str, given: str | None) -> str:
        """An endpoint's MAC: GIVEN (--mac-address), else Docker's rule (02:42 + the address)."""
        from nsbridge.model import mac_for

        return given or mac_for(ip)

    def host_end(self, endpoint_id: str) -> str:
        """The name of an endpoint's device in the host namespace ("": it has none)."""
        return ""

    def join(self, plan: "Plan", k: "Kernel", j: Join) -> None:
        raise NotImplementedError(f"{self.name} networks have no endpoints")

    def leave(self, ctr: "NsLink", ep: "Endpoint") -> None:
        if ep.ifname:
            ctr.delete_link(ep.ifname)

    # -- what the rest of nsbridge reads ---------------------------------------------
    def rules(self, net: "Network") -> "list[Rule]":
        return []

    def devices(self, net: "Network") -> list[str]:
        return []

    def mode_members(self, net: "Network", containers: "list[Container]") -> "list[tuple[Container, Endpoint]]":
        return []

    def inspect_options(self, net: "Network") -> dict[str, str]:
        return dict(net.options)

    # -- networks beyond this host (scope global) -----------------------------------------
    egress: "tuple[str, dict[str, str]] | None" = None

    def known(self, env: Env) -> "list[Network] | None":
        return None

    def find(self, env: Env, ref: str) -> "Network | None":
        return None

    def claim(self, k: "Kernel", plan: "Plan", name: str, req, internal: bool, attachable: bool,
              labels: dict[str, str], opts: dict[str, str], avoid: list[str]) -> "Network":
        raise NotImplementedError(f"{self.name} networks are made by the engine")

    def assign(self, plan: "Plan", k: "Kernel", net: "Network", ep: "Endpoint") -> str:
        raise NotImplementedError(f"{self.name} networks take their addresses from the engine")

    def withdraw(self, env: Env, net: "Network") -> None:
        pass

    def released(self, env: Env, net: "Network", eps: "list[Endpoint]", left: int) -> None:
        pass

    def inspect_fields(self, env: Env, net: "Network") -> dict:
        return {}


def configure(j: Join, alias: str = "") -> None:
    """Inside the container: ALIAS (the mark of a device made inside), address,
    up, the default route (for its first network), in one request; then the
    endpoint's interface sysctls. Every driver's endpoint ends with this."""
    from nsbridge.errors import KernelError
    from nsbridge.kernel import ns, sysctl

    net, ep = j.net, j.ep
    assert net.ipam is not None and ep.ip is not None
    with ns.in_netns(j.ctr_fd):
        j.ctr.configure_inside(ep.ifname, ep.ip, net.prefixlen(), net.ipam.gateway if j.default_route else None, alias)
        for item in j.sysctls:
            key, _, value = item.partition("=")
            key = key.replace(".IFNAME.", f".{ep.ifname}.")
            try:
                sysctl.write(key, value)
            except OSError as e:
                raise KernelError(f"failed to set {key}={value} in the container: {e.strerror}") from None
