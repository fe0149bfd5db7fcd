"""The ipvlan driver, as Docker's: each container's eth<N> is an ipvlan
device on the network's parent (`-o parent=IF`, `IF.VLAN`, or a dummy). All
children share the parent's MAC; `-o ipvlan_mode=l2` (the default) switches
by MAC and ARPs as usual, l3 and l3s route on the parent without ARP or
broadcast (the default route is the device itself). `-o ipvlan_flag`:
bridge (the default), private, vepa. Needs CONFIG_IPVLAN: without it
`network create -d ipvlan` fails at once, naming it, and makes nothing."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities, Join
from nsbridge.drivers.parent import PARENT, ParentDriver
from nsbridge.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.engine.core import Kernel
    from nsbridge.engine.plan import Plan
    from nsbridge.model import Network

MODE = "ipvlan_mode"
FLAG = "ipvlan_flag"
#: IFLA_IPVLAN_MODE and IFLA_IPVLAN_FLAGS values (linux/if_link.h)
MODE_VALUES = {"l2": 0, "l3": 1, "l3s": 2}
FLAG_VALUES = {"bridge": 0, "private": 1, "vepa": 2}


class IpvlanDriver(ParentDriver):
    name = "ipvlan"
    caps = Capabilities(host_kinds=("vlan", "dummy"), container_kinds=("ipvlan",))
    options = (PARENT, MODE, FLAG)
    kind = "ipvlan"
    mode_option = MODE
    modes = ("l2", "l3", "l3s")
    dummy_prefix = "di-"

    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        super().validate(opts, internal)
        flag = opts.get(FLAG, "")
        if flag and flag not in FLAG_VALUES:
            raise InvalidArgument(f"requested ipvlan flag '{flag}' is not valid, 'bridge' is the ipvlan driver default")
        return opts

    def bad_mode(self, mode: str) -> str:
        return f"requested ipvlan mode '{mode}' is not valid, 'l2' mode is the ipvlan driver default"

    def mac(self, ip: str, given: str | None) -> str:
        return ""  # every child has the parent's MAC (Docker shows none)

    def link_data(self, net: "Network") -> list[tuple[str, object]]:
        return [("IFLA_IPVLAN_MODE", MODE_VALUES[self.mode(net)]),
                ("IFLA_IPVLAN_FLAGS", FLAG_VALUES[net.options.get(FLAG) or "bridge"])]

    def join(self, plan: "Plan", k: "Kernel", j: Join) -> None:
        if self.mode(j.net) != "l2" and j.default_route:
            # l3: no ARP, no gateway to resolve: the default route is the device (Docker's)
            j = Join(j.host, j.ctr, j.ctr_fd, j.net, j.ep, False, j.ipv6_off_by_default, j.sysctls, j.netns)
            super().join(plan, k, j)
            plan.step("endpoint.route", lambda: _device_default_route(j))
            return
        super().join(plan, k, j)


def _device_default_route(j: Join) -> None:
    from nsbridge.kernel import ns

    with ns.in_netns(j.ctr_fd):
        j.ctr.set_device_default_route(j.ep.ifname)


DRIVER = IpvlanDriver()
