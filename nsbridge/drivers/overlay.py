"""The overlay driver: one network across the hosts of a cluster store (etcd),
built on VXLAN, as Docker's classic overlay driver (`--cluster-store`).

Where things are:
- the network's truth is in etcd (cluster/registry.py: its name, VXLAN ID,
  subnet, addresses and endpoints, unique cluster-wide); each host keeps a
  copy of the network's record in its own store (scope `global`) while it
  uses it, so that its containers, resolver and `inspect` work as for any
  network;
- the kernel objects are made on a host when its first container joins:
  the namespace `overlay@<id12>` with br0 and vxlan0 (kernel/overlay.py),
  marked as this engine's, so reset and reconcile find it by its mark; each
  container's veth goes onto that br0;
- the FDB/neighbour entries for other hosts' endpoints come from the store:
  programmed here when the namespace is made (the endpoints known then) and
  kept in step by the cluster watcher;
- egress and `-p` go through docker_gwbridge, a local bridge network that each
  overlay container joins as well (its default route), as Docker does.

Every etcd call runs with the thread in the host namespace (the engine's
session): etcd is reached over the host's underlay.
"""
from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator

from nsbridge.cluster import layout, member
from nsbridge.engine.plan import Plan
from nsbridge.errors import Forbidden, KernelError
from nsbridge.model import OPT_MTU, Endpoint, IpamConfig, Network

OPT_VNI = "com.docker.network.driver.overlay.vxlanid_list"  # Docker's option, shown by inspect
SCOPE = "global"
#: Docker's answer to an overlay network on a host in no swarm, with how to join a cluster store
NOT_JOINED = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
              "node to swarm and try again. (nsbridge: overlay networks need a cluster store: "
              "`nsbridge system join etcd://HOST:2379 --advertise ADDR`)")


def membership(st, host_netns: str | None) -> member.Membership:
    m = member.membership(st, host_netns)
    if m is None:
        raise Forbidden(NOT_JOINED)
    return m


@contextlib.contextmanager
def registry(st, host_netns: str | None) -> Iterator:
    """A Registry on this host's membership, its connection closed after."""
    from nsbridge.cluster.registry import Registry

    m = membership(st, host_netns)
    with m.client() as etcd:
        yield Registry(etcd, st, m)


def to_network(cn: layout.ClusterNetwork) -> Network:
    """A host's copy of a cluster network, as its store keeps it."""
    opts = dict(cn.options)
    opts[OPT_VNI] = str(cn.vni)
    return Network(id=cn.id, name=cn.name, driver="overlay", created=cn.created,
                   ipam=IpamConfig(subnet=cn.subnet, gateway=cn.gateway, ip_range=cn.ip_range or None),
                   attachable=cn.attachable, options=opts, labels=dict(cn.labels), scope=SCOPE)


def to_cluster(net: Network) -> layout.ClusterNetwork:
    assert net.ipam is not None
    return layout.ClusterNetwork(id=net.id, name=net.name, subnet=net.ipam.subnet, gateway=net.ipam.gateway,
                                 vni=vni(net), ip_range=net.ipam.ip_range or "", attachable=net.attachable)


def vni(net: Network) -> int:
    return int(net.options[OPT_VNI])


def create(reg, name: str, subnet, gateway, ip_range, attachable: bool, labels: dict, options: dict,
           avoid: list[str]) -> Network:
    """Create the network in the cluster store (name, VNI and subnet claimed
    there); no kernel object until a container of this host joins it."""
    opts = {k: v for k, v in options.items() if k != OPT_VNI}
    cn = reg.create_network(name, subnet=str(subnet) if subnet else None, gateway=gateway,
                            ip_range=str(ip_range) if ip_range else None, attachable=attachable,
                            options=opts, labels=labels, avoid=avoid)
    return to_network(cn)


# -- endpoints ---------------------------------------------------------------------------
def netns_of(host_netns: str | None, net: Network) -> str:
    from nsbridge.kernel import overlay

    return overlay.netns_name(host_netns, net.id)


def mtu(net: Network, advertise: str) -> int:
    from nsbridge.kernel import overlay

    given = net.options.get(OPT_MTU)
    return int(given) if given else layout.overlay_mtu(overlay.underlay_mtu(advertise))


def ensure_netns(plan: Plan, reg, host_netns: str | None, eid: str, group: int, net: Network) -> str:
    """The network's namespace on this host (made now if missing, with the
    peers the store knows programmed); returns its path."""
    from nsbridge.engine import owner
    from nsbridge.kernel import ns, overlay

    name = netns_of(host_netns, net)
    if ns.netns_exists(name):
        m = owner.read(name)
        if m is None or m.kind != "overlay" or m.engine != eid:
            raise KernelError(owner.describe(name, m) + ": cannot attach to overlay network " + net.name)
        return ns.netns_path(name)
    assert net.ipam is not None
    plan.step("overlay.netns",
              lambda: overlay.create_network_ns(host_netns, net.id, vni(net), net.ipam.gateway, net.prefixlen(),
                                                reg.m.advertise, owner.overlay_mark(eid, net.id), mtu(net, reg.m.advertise),
                                                group=group),
              lambda: overlay.delete_network_ns(name))
    path = ns.netns_path(name)
    from nsbridge.cluster.watcher import desired_peers

    eps = {e.id: e for e in reg.endpoints(net.id)}

    def peers() -> None:
        # added only: the watcher may be programming this namespace already, from newer events
        # (it removes what has gone, and re-syncs every namespace each TTL/3)
        for p in desired_peers(eps, reg.m.host_id).get(net.id, set()):
            overlay.add_peer(path, p)

    plan.step("overlay.peers", peers)
    return path


def join(plan: Plan, reg, host_netns: str | None, eid: str, group: int, ctr, ctr_fd: int, net: Network,
         ep: Endpoint, container_id: str, container_name: str, mac: str | None, aliases: list[str]) -> None:
    """An address from the cluster store, a veth from the container onto the
    network's br0 (no default route: docker_gwbridge gives that), and the
    endpoint announced under this host's lease so the other hosts learn it."""
    from nsbridge.kernel import netlink, ns
    from nsbridge.model import mac_for

    path = ensure_netns(plan, reg, host_netns, eid, group, net)
    cn = to_cluster(net)
    ip = plan.step("overlay.address", lambda: reg.allocate_ip(cn, ep.endpoint_id, ep.ip_requested or None),
                   lambda: reg.release_ip(net.id, ep.ip or ""))
    ep.ip = ip
    ep.mac = mac or mac_for(ip)
    the_mtu = mtu(net, reg.m.advertise)

    def veth() -> None:
        with ns.in_netns(path):
            link = netlink.NsLink()
            try:
                from nsbridge.kernel.overlay import BRIDGE

                link.add_veth(ep.host_ifname, ep.ifname, ep.mac, ctr_fd, BRIDGE, the_mtu,
                              netlink.ALIAS_PREFIX + ep.endpoint_id, ipv6_off_by_default=False)
            except KernelError as e:
                raise KernelError(f"failed to create endpoint on network {net.name}: {e}") from None
            finally:
                link.close()

    def unveth() -> None:
        with ns.in_netns(path):
            link = netlink.NsLink()
            try:
                link.delete_link(ep.host_ifname)
            finally:
                link.close()

    plan.step("endpoint.veth", veth, unveth)
    with ns.in_netns(ctr_fd):
        plan.step("endpoint.address", lambda: ctr.configure_inside(ep.ifname, ip, net.prefixlen(), None))
    rec = layout.ClusterEndpoint(id=ep.endpoint_id, network_id=net.id, container_id=container_id,
                                 name=container_name, ip=ip, mac=ep.mac, host=reg.m.host_id, vtep=reg.m.advertise,
                                 aliases=list(aliases))
    plan.step("overlay.announce", lambda: reg.put_endpoint(rec), lambda: reg.remove_endpoint(net.id, ep.endpoint_id))


def leave(reg, net_id: str, ep: Endpoint) -> None:
    """Withdraw the endpoint and its address from the cluster store (the veth
    went with the container's namespace)."""
    reg.remove_endpoint(net_id, ep.endpoint_id)
    if ep.ip:
        reg.release_ip(net_id, ep.ip)


def forget_locally(st, net_id: str, ep: Endpoint) -> None:
    """The store cannot be reached: stop announcing the endpoint (the watcher
    deletes keys of this host's lease that it no longer announces once the
    store answers again)."""
    with st.tx():
        st.delete_meta(member.ANNOUNCE + layout.endpoint_key(net_id, ep.endpoint_id))
        if ep.ip:
            st.delete_meta(member.ANNOUNCE + layout.ip_key(net_id, ep.ip))


def remove_netns_if_unused(host_netns: str | None, net: Network, local_live: int) -> bool:
    """The namespace goes with this host's last container on the network."""
    from nsbridge.kernel import overlay

    if local_live:
        return False
    return overlay.delete_network_ns(netns_of(host_netns, net))


# -- what inspect shows ------------------------------------------------------------------
def peers(reg, net: Network) -> list[dict]:
    """Docker's `Peers` of an overlay network: one per host with an endpoint on
    it (this host included), as {Name, IP}."""
    hosts = {h.id: h for h in member.hosts(reg.etcd)}
    seen: dict[str, dict] = {}
    for e in reg.endpoints(net.id):
        h = hosts.get(e.host)
        seen.setdefault(e.vtep, {"Name": h.name if h else e.host[:12], "IP": e.vtep})
    return sorted(seen.values(), key=lambda p: [int(x) for x in p["IP"].split(".")])


def check_subnet(subnet) -> None:
    if subnet is not None and ipaddress.IPv4Network(str(subnet)).num_addresses < 4:
        from nsbridge.errors import InvalidArgument

        raise InvalidArgument(f"invalid subnet {subnet}: too small for an overlay network")
