"""The overlay driver: one network across the hosts of a cluster store (etcd),
built on VXLAN, as Docker's classic overlay driver (`--cluster-store`).

Where things are:
- the network's truth is in etcd (cluster/registry.py: its name, VXLAN ID,
  subnet, addresses and endpoints, unique cluster-wide); each host keeps a
  copy of the network's record in its own store while it uses it, so that its
  containers, resolver and `inspect` work as for any network;
- the kernel objects are made on a host when its first container joins:
  the namespace `overlay@<id12>` with br0 and vxlan0 (kernel/overlay.py),
  marked as this engine's, so reset and reconcile find it by its mark; each
  container's veth goes onto that br0; the namespace goes with the host's
  last container on the network;
- the FDB/neighbour entries for other hosts' endpoints come from the store:
  programmed here when the namespace is made (the endpoints known then) and
  kept in step by the cluster watcher;
- egress and `-p` go through docker_gwbridge, a local bridge network that each
  overlay container joins as well (its default route), as Docker does.

Every etcd call runs with the thread in the host namespace (the engine's
session, or Env.entered for read-only commands): etcd is reached over the
host's underlay.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from nsbridge.cluster import layout, member
from nsbridge.drivers.base import Capabilities, Driver, Env, Join
from nsbridge.errors import Forbidden, InvalidArgument, KernelError
from nsbridge.model import OPT_MTU, Endpoint, IpamConfig, Network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.engine.core import Kernel
    from nsbridge.engine.plan import Plan

#: Docker's daemon, asked for a swarm-scoped network on a host that is in no swarm
NOT_IN_SWARM = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
OPT_VNI = "com.docker.network.driver.overlay.vxlanid_list"  # Docker's option, shown by inspect
SCOPE = "global"
#: Docker's answer to an overlay network on a host in no swarm, with how to join a cluster store
NOT_JOINED = NOT_IN_SWARM[:-1] + (" (nsbridge: overlay networks need a cluster store: "
                                  "`nsbridge system join etcd://HOST:2379 --advertise ADDR`).")


def membership(st, host_netns: str | None) -> member.Membership:
    m = member.membership(st, host_netns)
    if m is None:
        raise Forbidden(NOT_JOINED)
    return m


@contextlib.contextmanager
def registry(env: Env) -> Iterator:
    """A Registry on this host's membership, its connection closed after."""
    from nsbridge.cluster.registry import Registry

    m = membership(env.store, env.host_netns)
    with m.client() as etcd:
        yield Registry(etcd, env.store, m)


def held_registry(k: "Kernel"):
    """The session's Registry (one etcd connection for all of an operation's
    steps and undos, closed with the session)."""
    membership(k.env.store, k.env.host_netns)  # (Docker's answer, before any connection)
    return k.hold("overlay.registry", lambda: registry(k.env))


@contextlib.contextmanager
def entered(env: Env) -> Iterator[None]:
    """The thread in the host namespace (read-only commands; a session already is)."""
    with env.entered() if env.entered is not None else contextlib.nullcontext():
        yield


def joined(env: Env) -> bool:
    """Has this host joined a cluster store? (a meta read: no etcd client imported otherwise)"""
    return env.store.get_meta(member.STORE) is not None


def to_network(cn: layout.ClusterNetwork) -> Network:
    """A host's copy of a cluster network, as its store keeps it."""
    opts = dict(cn.options)
    opts[OPT_VNI] = str(cn.vni)
    return Network(id=cn.id, name=cn.name, driver="overlay", created=cn.created,
                   ipam=IpamConfig(subnet=cn.subnet, gateway=cn.gateway, ip_range=cn.ip_range or None),
                   attachable=cn.attachable, options=opts, labels=dict(cn.labels))


def to_cluster(net: Network) -> layout.ClusterNetwork:
    assert net.ipam is not None
    return layout.ClusterNetwork(id=net.id, name=net.name, subnet=net.ipam.subnet, gateway=net.ipam.gateway,
                                 vni=vni(net), ip_range=net.ipam.ip_range or "", attachable=net.attachable)


def vni(net: Network) -> int:
    return int(net.options[OPT_VNI])


def netns_of(host_netns: str | None, net: Network) -> str:
    from nsbridge.kernel import overlay

    return overlay.netns_name(host_netns, net.id)


def veth_of(endpoint_id: str) -> str:
    """An endpoint's veth end on br0, in the network's namespace (not the host's)."""
    return "veth" + endpoint_id[:7]


def mtu(net: Network, advertise: str) -> int:
    from nsbridge.kernel import overlay

    given = net.options.get(OPT_MTU)
    return int(given) if given else layout.overlay_mtu(overlay.underlay_mtu(advertise))


def peers(reg, net: Network) -> list[dict]:
    """Docker's `Peers` of an overlay network: one per host with an endpoint on
    it (this host included), as {Name, IP}."""
    hosts = {h.id: h for h in member.hosts(reg.etcd)}
    seen: dict[str, dict] = {}
    for e in reg.endpoints(net.id):
        h = hosts.get(e.host)
        seen.setdefault(e.vtep, {"Name": h.name if h else e.host[:12], "IP": e.vtep})
    return sorted(seen.values(), key=lambda p: [int(x) for x in p["IP"].split(".")])


class OverlayDriver(Driver):
    name = "overlay"
    # addresses and VXLAN IDs come from the cluster store (cluster/registry.py), the bridge and
    # the VXLAN device live in the network's own namespace; docker_gwbridge gives the default route
    caps = Capabilities(scope=SCOPE, ipam="driver", netns=True, default_route=False, host_kinds=("vxlan",))
    options = (OPT_VNI, OPT_MTU)

    @property
    def egress(self):  # type: ignore[override]
        from nsbridge.kernel.overlay import GWBRIDGE_NAME, GWBRIDGE_OPTIONS

        return GWBRIDGE_NAME, dict(GWBRIDGE_OPTIONS)

    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        if internal:
            raise InvalidArgument("the overlay driver does not support --internal networks yet")
        opts = super().validate(opts, internal)
        if OPT_MTU in opts:
            from nsbridge.engine import validate

            validate.mtu(OPT_MTU, opts[OPT_MTU])
        return {k: v for k, v in opts.items() if k != OPT_VNI}  # the VXLAN ID is the store's to give

    # -- the cluster's networks --------------------------------------------------------
    def known(self, env: Env) -> list[Network] | None:
        if not joined(env):
            return None
        with entered(env), registry(env) as reg:
            return [to_network(cn) for cn in reg.networks()]

    def find(self, env: Env, ref: str) -> Network | None:
        if not joined(env):
            return None
        with entered(env), registry(env) as reg:
            cn = reg.network(ref)
        return to_network(cn) if cn is not None else None

    def claim(self, k: "Kernel", plan: "Plan", name: str, req, internal: bool, attachable: bool,
              labels: dict[str, str], opts: dict[str, str], avoid: list[str]) -> Network:
        """Claim the name, a VXLAN ID and a subnet in the cluster store (undone
        if the command fails later); no kernel object until a container of this
        host joins it."""
        if req.aux_addresses:
            raise InvalidArgument("the overlay driver does not support --aux-address")
        reg = held_registry(k)

        def claim() -> Network:
            cn = reg.create_network(name, subnet=str(req.subnet) if req.subnet else None, gateway=req.gateway,
                                    ip_range=str(req.ip_range) if req.ip_range else None, attachable=attachable,
                                    options=opts, labels=labels, avoid=avoid)
            return to_network(cn)

        return plan.step("overlay.claim", claim, lambda: reg.remove_network(name))

    def withdraw(self, env: Env, net: Network) -> None:
        """Refused while any host has an endpoint on it (Docker's text)."""
        with entered(env), registry(env) as reg:
            if reg.network(net.id) is not None:
                reg.remove_network(net.id)

    def inspect_fields(self, env: Env, net: Network) -> dict:
        """Docker's Peers: the hosts with an endpoint on it (null when the store is away)."""
        from nsbridge.cluster.etcd import ClusterError, ClusterUnavailable

        try:
            with entered(env), registry(env) as reg:
                return {"Peers": peers(reg, net)}
        except (ClusterUnavailable, ClusterError, Forbidden):
            return {"Peers": None}

    # -- endpoints ------------------------------------------------------------------------
    def assign(self, plan: "Plan", k: "Kernel", net: Network, ep: Endpoint) -> str:
        """An address unique cluster-wide (--ip if given), under this host's lease."""
        reg = held_registry(k)
        cn = to_cluster(net)
        return plan.step("overlay.address", lambda: reg.allocate_ip(cn, ep.endpoint_id, ep.ip_requested or None),
                         lambda: reg.release_ip(net.id, ep.ip or ""))

    def ensure_netns(self, plan: "Plan", k: "Kernel", reg, net: Network) -> str:
        """The network's namespace on this host (made now if missing, with the
        peers the store knows programmed); returns its path."""
        from nsbridge.cluster.watcher import desired_peers
        from nsbridge.engine import owner
        from nsbridge.kernel import ns, overlay

        env = k.env
        name = netns_of(env.host_netns, net)
        if ns.netns_exists(name):
            m = owner.read(name)
            if m is None or m.kind != "overlay" or m.engine != env.engine_id:
                raise KernelError(owner.describe(name, m) + ": cannot attach to overlay network " + net.name)
            return ns.netns_path(name)
        assert net.ipam is not None
        ipam = net.ipam
        plan.step("overlay.netns",
                  lambda: overlay.create_network_ns(env.host_netns, net.id, vni(net), ipam.gateway, net.prefixlen(),
                                                    reg.m.advertise, owner.overlay_mark(env.engine_id, net.id),
                                                    mtu(net, reg.m.advertise), group=env.group),
                  lambda: overlay.delete_network_ns(name))
        path = ns.netns_path(name)
        eps = {e.id: e for e in reg.endpoints(net.id)}

        def program() -> None:
            # added only: the watcher may be programming this namespace already, from newer
            # events (it removes what has gone, and re-syncs every namespace each TTL/3)
            for p in desired_peers(eps, reg.m.host_id).get(net.id, set()):
                overlay.add_peer(path, p)

        plan.step("overlay.peers", program)
        return path

    def join(self, plan: "Plan", k: "Kernel", j: Join) -> None:
        """A veth from the container onto the network's br0 (made first if this
        is the host's first container on it), the address inside (no default
        route: docker_gwbridge gives it), then the endpoint announced under this
        host's lease so the other hosts learn it."""
        from nsbridge.drivers.base import configure
        from nsbridge.kernel import netlink, ns
        from nsbridge.kernel.overlay import BRIDGE

        net, ep = j.net, j.ep
        reg = held_registry(k)
        path = self.ensure_netns(plan, k, reg, net)
        the_mtu = mtu(net, reg.m.advertise)
        veth = veth_of(ep.endpoint_id)

        def in_overlay(fn) -> None:
            with ns.in_netns(path):
                link = netlink.NsLink()
                try:
                    fn(link)
                finally:
                    link.close()

        def add(link) -> None:
            try:
                link.add_veth(veth, ep.ifname, ep.mac, j.ctr_fd, BRIDGE, the_mtu, netlink.ALIAS_PREFIX + ep.endpoint_id)
            except KernelError as e:
                raise KernelError(f"failed to create endpoint on network {net.name}: {e}") from None

        plan.step("endpoint.veth", lambda: in_overlay(add), lambda: in_overlay(lambda link: link.delete_link(veth)))
        plan.step("endpoint.address", lambda: configure(j))
        c_id, c_name = j.container_id, j.container_name
        assert ep.ip is not None
        rec = layout.ClusterEndpoint(id=ep.endpoint_id, network_id=net.id, container_id=c_id, name=c_name, ip=ep.ip,
                                     mac=ep.mac, host=reg.m.host_id, vtep=reg.m.advertise, aliases=list(ep.aliases))
        plan.step("overlay.announce", lambda: reg.put_endpoint(rec), lambda: reg.remove_endpoint(net.id, ep.endpoint_id))

    def released(self, env: Env, net: Network, eps: list[Endpoint], left: int) -> None:
        """Withdraw the endpoints and their addresses from the cluster store (their
        veths went with the container's namespace), and the network's namespace
        with this host's last container on it. An unreachable store is logged,
        not fatal: this host stops announcing them, and its watcher deletes keys it
        no longer announces when the store answers again."""
        from nsbridge.cluster.etcd import ClusterError, ClusterUnavailable
        from nsbridge.kernel import overlay

        try:
            with entered(env), registry(env) as reg:
                for ep in eps:
                    reg.remove_endpoint(net.id, ep.endpoint_id)
                    if ep.ip:
                        reg.release_ip(net.id, ep.ip)
        except (ClusterUnavailable, ClusterError) as err:
            import logging

            logging.getLogger("nsbridge").warning(
                "%s: this host's watcher removes its endpoints there when the store answers", err)
            with env.store.tx():
                for ep in eps:
                    env.store.delete_meta(member.ANNOUNCE + layout.endpoint_key(net.id, ep.endpoint_id))
                    if ep.ip:
                        env.store.delete_meta(member.ANNOUNCE + layout.ip_key(net.id, ep.ip))
        if not left:
            overlay.delete_network_ns(netns_of(env.host_netns, net))


DRIVER = OverlayDriver()
