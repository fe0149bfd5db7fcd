"""The bridge driver: a Linux bridge per network, a veth per endpoint, and
the network's iptables rules (NAT, isolation). Drivers are handed the kernel
objects and a Plan; they never touch the store (drivers/base.py)."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities, Driver, Join, configure
from nsbridge.errors import Conflict, KernelError
from nsbridge.model import KNOWN_OPTIONS, OPT_BRIDGE_NAME, OPT_HOST_BINDING, OPT_ICC, OPT_MASQ, OPT_MTU, Endpoint, Network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.engine.core import Kernel
    from nsbridge.engine.plan import Plan
    from nsbridge.kernel.firewall import Rule
    from nsbridge.kernel.netlink import NsLink

ALIAS_PREFIX = "nsbridge:"  # (kernel/netlink.py's: not imported, it brings pyroute2)


def rules_for(net: Network) -> "list[Rule]":
    from nsbridge.kernel.firewall import network_rules

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
    from nsbridge.kernel import sysctl

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



class BridgeDriver(Driver):
    name = "bridge"
    caps = Capabilities(bridge=True, nat=True, isolation=True, host_kinds=("bridge", "veth"))
    options = KNOWN_OPTIONS

    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        from nsbridge.engine import validate

        super().validate(opts, internal)
        for key, value in opts.items():
            if key == OPT_MTU:
                validate.mtu(key, value)
            elif key in (OPT_ICC, OPT_MASQ):
                validate.go_bool(key, value)
            elif key == OPT_BRIDGE_NAME:
                validate.ifname(key, value)
            elif key == OPT_HOST_BINDING:
                validate.parse_ip(value, f"{key} value")
        return opts

    def check(self, k: "Kernel", net: Network, others: list[Network]) -> None:
        if net.bridge in {n.bridge for n in others} or k.link.index(net.bridge) is not None:
            raise Conflict(f"bridge name {net.bridge} is already in use by another interface")

    def create(self, plan: "Plan", k: "Kernel", net: Network) -> None:
        assert net.ipam is not None
        ipam = net.ipam
        link = k.link
        created = plan.step(
            "network.bridge",
            lambda: link.ensure_bridge(net.bridge, ipam.gateway, net.prefixlen(), net.mtu, ALIAS_PREFIX + net.id),
        )
        if created:
            plan.undos.append(("network.bridge", lambda: link.delete_link(net.bridge)))
        rules = rules_for(net)
        plan.step("network.firewall", lambda: k.fw.apply(add=rules), lambda: k.fw.apply(delete=rules))

    def delete(self, k: "Kernel", net: Network) -> list[str]:
        """Remove rules then the bridge; already gone is success; report every error."""
        errors = []
        try:
            k.fw.apply(delete=rules_for(net))
        except Exception as e:
            errors.append(f"remove rules of {net.name}: {e}")
        try:
            k.link.delete_link(net.bridge)
        except Exception as e:
            errors.append(f"remove bridge {net.bridge}: {e}")
        return errors

    def missing(self, k: "Kernel", net: Network) -> bool:
        # one ioctl per bridge: a dump would grow with every veth on the host
        return not k.has_link(net.bridge)

    def admit(self, net: Network, endpoints: int, container: str) -> None:
        check_room(net, endpoints, container)

    def host_end(self, endpoint_id: str) -> str:
        return "veth" + endpoint_id[:7]

    def join(self, plan: "Plan", k: "Kernel", j: Join) -> None:
        """veth created in place (peer already inside, named and with its MAC),
        host end on the bridge, address and routes inside, then the endpoint's
        interface sysctls (`net.ipv4.conf.IFNAME.x=v`, IFNAME being its eth<N>)."""
        net, ep, host = j.net, j.ep, j.host
        assert net.ipam is not None and ep.ip is not None

        def veth() -> None:
            try:
                host.add_veth(
                    ep.host_ifname, ep.ifname, ep.mac, j.ctr_fd, net.bridge, net.mtu, ALIAS_PREFIX + ep.endpoint_id,
                    j.ipv6_off_by_default,
                )
            except KernelError as e:  # name the network the user knows (a full bridge, a bad MTU)
                raise KernelError(f"failed to create endpoint on network {net.name}: {e}") from None

        plan.step("endpoint.veth", veth, lambda: host.delete_link(ep.host_ifname))
        plan.step("endpoint.address", lambda: configure(j))

    def leave(self, ctr: "NsLink", ep: Endpoint) -> None:
        """Deleting the container end deletes the pair."""
        if ep.ifname:
            ctr.delete_link(ep.ifname)

    def rules(self, net: Network) -> "list[Rule]":
        return rules_for(net)

    def devices(self, net: Network) -> list[str]:
        return [net.bridge]


DRIVER = BridgeDriver()
