"""The macvlan driver, as Docker's: each container's eth<N> is a macvlan
device on the network's parent (`-o parent=IF`, `IF.VLAN`, or a dummy), with
its own MAC (Docker's rule: 02:42 + its IPv4 address), so the container
appears on the parent's LAN as one more machine. Modes (`-o macvlan_mode`):
bridge (the default: siblings reach each other inside the kernel), private
(they do not), vepa (through the external switch, which must hairpin),
passthru (one endpoint takes the parent over). The kernel never delivers
between a parent and its macvlan children: the host reaches its containers
only through a macvlan of its own on the parent (a "shim"; README)."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities
from nsbridge.drivers.parent import PARENT, ParentDriver
from nsbridge.errors import Conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.model import Network

MODE = "macvlan_mode"
#: IFLA_MACVLAN_MODE values (linux/if_link.h)
MODE_FLAGS = {"bridge": 4, "private": 1, "vepa": 2, "passthru": 8}


class MacvlanDriver(ParentDriver):
    name = "macvlan"
    caps = Capabilities(host_kinds=("vlan", "dummy"), container_kinds=("macvlan",))
    options = (PARENT, MODE)
    kind = "macvlan"
    mode_option = MODE
    modes = ("bridge", "private", "vepa", "passthru")
    dummy_prefix = "dm-"

    def bad_mode(self, mode: str) -> str:
        return f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan driver default"

    def shared_parent(self, other: "Network", parent: str, theirs: str, mine: str) -> None:
        """Two macvlan networks share a parent only in different modes (the kernel
        keeps one mode per child); passthru takes the parent whole (Docker's texts)."""
        if mine == "passthru":
            raise Conflict(f"cannot use mode passthru, macvlan network {other.id} is already using parent interface {parent}")
        if theirs == "passthru":
            raise Conflict(f"macvlan network {other.id} is already using parent interface {parent} in mode passthru")
        if theirs == mine:
            super().shared_parent(other, parent, theirs, mine)

    def link_data(self, net: "Network") -> list[tuple[str, object]]:
        return [("IFLA_MACVLAN_MODE", MODE_FLAGS[self.mode(net)])]


DRIVER = MacvlanDriver()
