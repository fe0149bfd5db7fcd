"""The host driver: the predefined `host` network. A container on it is in
the host's namespace (network mode host): no endpoint, nothing to make."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities, Driver
from nsbridge.model import Endpoint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.model import Container, Network

#: Docker's daemon, for connecting to (or disconnecting from) the host network
REFUSAL = "container cannot be disconnected from host network or connected to host network"


class HostDriver(Driver):
    name = "host"
    caps = Capabilities(endpoints=False, singleton=True, ipam="none", dns=False)
    refusal = REFUSAL
    detachable = False

    def mode_members(self, net: "Network", containers: "list[Container]") -> "list[tuple[Container, Endpoint]]":
        """`network inspect host` lists the running containers of network mode host."""
        return [(c, Endpoint(c.id, net.id, 0, endpoint_id=c.id, ip="")) for c in containers
                if c.network_mode == "host" and c.running]


DRIVER = HostDriver()
