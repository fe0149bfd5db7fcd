"""The null driver: the predefined `none` network. A container on it has its
own namespace with loopback only: no endpoint, nothing to make."""
from __future__ import annotations

from nsbridge.drivers.base import Capabilities, Driver

#: Docker's daemon, for a container on `none` joining another network (or the reverse)
REFUSAL = "container cannot be connected to multiple networks with one of the networks in private (none) mode"


class NullDriver(Driver):
    name = "null"
    caps = Capabilities(endpoints=False, singleton=True, ipam="none", dns=False)
    refusal = REFUSAL


DRIVER = NullDriver()
