"""The bridge driver: a Linux bridge per network, a veth per endpoint, and
the network's iptables rules. Drivers are handed the kernel objects and a
Plan; they never touch the store."""
from __future__ import annotations

from collections.abc import Sequence

from nsbridge.engine.plan import Plan
from nsbridge.errors import Conflict, KernelError
from nsbridge.kernel import ns, sysctl
from nsbridge.kernel.firewall import Firewall, Rule, network_rules
from nsbridge.kernel.netlink import ALIAS_PREFIX, NsLink
from nsbridge.model import Endpoint, Network


def rules_for(net: Network) -> list[Rule]:
    assert net.ipam is not None
    return network_rules(
        net.bridge, net.ipam.subnet, icc=net.icc, masquerade=net.masquerade, internal=net.internal
    )


#: Ports a Linux bridge takes (BR_MAX_PORTS less port 0, the bridge's own).
MAX_PORTS = 1023


def check_room(net: Network, endpoints: int, container: str) -> None:
    """Refuse an endpoint that could not reach its gateway.

    A broadcast entering through one veth port (ARP for the gateway: every
    container's first packet) is copied to every other port, and each copy
    is queued on the sending CPU's input backlog, the gateway's answer after
    them. Past net.core.netdev_max_backlog packets (1000 by default; the
    machine's setting, not per network namespace) the rest are dropped, the
    answer included: with more ports than that, a new container's ARP for
    its gateway stays INCOMPLETE and it has no network (moby#44973: Docker
    documents about 1000 containers per network as the limit). Raising the
    backlog changes the whole machine, so that is left to its administrator.
    """
    backlog = sysctl.netdev_max_backlog()
    limit = min(MAX_PORTS, backlog)
    if endpoints < limit:
        return
    if limit == MAX_PORTS:
        why = f"the kernel allows {MAX_PORTS} ports per bridge"
    else:
        why = (
            f"a broadcast from one more would overflow the kernel's per-CPU backlog "
            f"(net.core.netdev_max_backlog={backlog}) and its gateway's answers would be lost; "
            f"raise that setting (sysctl -w net.core.netdev_max_backlog={2 * MAX_PORTS}) or use another network"
        )
    raise Conflict(f"failed to create endpoint {container} on network {net.name}: "
                   f"the network has {endpoints} endpoints, its limit on this host: {why}")


def setup_network(plan: Plan, link: NsLink, fw: Firewall, net: Network) -> None:
    assert net.ipam is not None
    ipam = net.ipam
    created = plan.step(
        "network.bridge",
        lambda: link.ensure_bridge(net.bridge, ipam.gateway, net.prefixlen(), net.mtu, ALIAS_PREFIX + net.id),
    )
    if created:
        plan.undos.append(("network.bridge", lambda: link.delete_link(net.bridge)))
    rules = rules_for(net)
    plan.step("network.firewall", lambda: fw.apply(add=rules), lambda: fw.apply(delete=rules))


def teardown_network(link: NsLink, fw: Firewall, net: Network) -> list[str]:
    """Remove rules then the bridge; already gone is success; report every error."""
    errors = []
    try:
        fw.apply(delete=rules_for(net))
    except Exception as e:
        errors.append(f"remove rules of {net.name}: {e}")
    try:
        link.delete_link(net.bridge)
    except Exception as e:
        errors.append(f"remove bridge {net.bridge}: {e}")
    return errors


def join(
    plan: Plan,
    host: NsLink,
    ctr: NsLink,
    ctr_fd: int,
    net: Network,
    ep: Endpoint,
    default_route: bool,
    ipv6_off_by_default: bool = False,
    sysctls: Sequence[str] = (),
) -> None:
    """veth created in place (peer already inside, named and with its MAC),
    host end on the bridge, address and routes inside, then the endpoint's
    interface sysctls (`net.ipv4.conf.IFNAME.x=v`, IFNAME being its eth<N>)."""
    assert net.ipam is not None and ep.ip is not None
    ip, gw = ep.ip, net.ipam.gateway

    def veth() -> None:
        try:
            host.add_veth(
                ep.host_ifname, ep.ifname, ep.mac, ctr_fd, net.bridge, net.mtu, ALIAS_PREFIX + ep.endpoint_id,
                ipv6_off_by_default,
            )
        except KernelError as e:  # name the network the user knows (a full bridge, a bad MTU)
            raise KernelError(f"failed to create endpoint on network {net.name}: {e}") from None

    plan.step("endpoint.veth", veth, lambda: host.delete_link(ep.host_ifname))
    def address() -> None:
        with ns.in_netns(ctr_fd):
            ctr.configure_inside(ep.ifname, ip, net.prefixlen(), gw if default_route else None)
            for item in sysctls:
                key, _, value = item.partition("=")
                key = key.replace(".IFNAME.", f".{ep.ifname}.")
                try:
                    sysctl.write(key, value)
                except OSError as e:
                    raise KernelError(f"failed to set {key}={value} in the container: {e.strerror}") from None

    plan.step("endpoint.address", address)


def leave(ctr: NsLink, ep: Endpoint) -> None:
    """Deleting the container end deletes the pair."""
    if ep.ifname:
        ctr.delete_link(ep.ifname)
