"""The overlay driver: networks across hosts through the cluster store
(nsbridge/cluster/, kernel/overlay.py: a namespace per network with br0 and
vxlan0). Not wired to `network create` yet: until it is, Docker's answer on
a host that is in no swarm."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities, Driver
from nsbridge.errors import Forbidden

#: Docker's daemon, asked for a swarm-scoped network on a host that is in no swarm
NOT_IN_SWARM = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)


class OverlayDriver(Driver):
    name = "overlay"
    # addresses and VXLAN IDs come from the cluster store (cluster/registry.py), the
    # bridge and the VXLAN device live in the network's own namespace
    caps = Capabilities(scope="global", ipam="driver", netns=True)

    def validate(self, opts: dict[str, str], internal: bool) -> dict[str, str]:
        raise Forbidden(NOT_IN_SWARM)


DRIVER = OverlayDriver()
