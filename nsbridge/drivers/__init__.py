"""Network drivers behind one interface (base.py): bridge, host, null,
macvlan, ipvlan, overlay; one module each, chosen by `network create -d`.

`get(name)` is the driver of that name (Docker's `plugin "X" not found`
otherwise), `of(net)` a network's; both import only the driver's module,
which imports its kernel modules inside its methods, so read-only commands
ask capabilities without pyroute2."""
from __future__ import annotations

from nsbridge.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.drivers.base import Driver
    from nsbridge.model import Network

#: the driver of `network create` without -d, and of Compose networks without `driver:`
DEFAULT = "bridge"

#: driver name -> its module under nsbridge/drivers/ (Docker's `null` is the `none` network's)
MODULES = {
    "bridge": "bridge",
    "host": "host",
    "null": "null",
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "overlay": "overlay",
}


def get(name: str) -> "Driver":
    """The driver NAME (a stateless object: each module holds one, DRIVER)."""
    mod = MODULES.get(name)
    if mod is None:
        raise NotFound(f'plugin "{name}" not found')
    import importlib

    return importlib.import_module(f"nsbridge.drivers.{mod}").DRIVER


def of(net: "Network") -> "Driver":
    return get(net.driver)


def every() -> "list[Driver]":
    return [get(name) for name in MODULES]


def host_kinds() -> set[str]:
    """Device kinds any driver makes in the host namespace (reconcile, reset)."""
    return {kind for d in every() for kind in d.caps.host_kinds}
