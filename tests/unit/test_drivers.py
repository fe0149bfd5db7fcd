"""The driver interface (nsbridge/drivers/): the registry, capabilities, and
that the engine decides by them rather than by a driver's name."""
from __future__ import annotations

import pathlib
import re

import pytest

from nsbridge import drivers
from nsbridge.drivers.base import Driver
from nsbridge.errors import Forbidden, InvalidArgument, NotFound
from nsbridge.model import Network

PKG = pathlib.Path(drivers.__file__).resolve().parent.parent


def test_every_registered_driver_is_one_module_with_a_driver_object():
    for name, mod in drivers.MODULES.items():
        assert (PKG / "drivers" / f"{mod}.py").is_file()
        d = drivers.get(name)
        assert isinstance(d, Driver) and d.name == name
        assert d.caps.scope in ("local", "global", "swarm") and d.caps.ipam in ("engine", "driver", "none")


def test_unknown_driver_is_dockers_plugin_not_found():
    with pytest.raises(NotFound, match=r'^plugin "weave" not found$'):
        drivers.get("weave")


@pytest.mark.parametrize("name", ["host", "null"])
def test_singletons_refuse_a_second_network_as_docker(name):
    with pytest.raises(Forbidden, match=f'^only one instance of "{name}" network is allowed$'):
        drivers.get(name).validate({}, False)


def test_capabilities_drive_the_model():
    bridge = Network(id="a" * 64, name="n", driver="bridge", created="")
    default = Network(id="b" * 64, name="bridge", driver="bridge", created="", predefined=True)
    host = Network(id="c" * 64, name="host", driver="host", created="", predefined=True)
    assert bridge.has_dns and bridge.nat and not bridge.is_default_bridge
    assert default.is_default_bridge and not default.has_dns
    assert not host.has_dns and not host.caps.endpoints
    assert drivers.get("overlay").caps.scope == "global" and drivers.get("overlay").caps.netns


def test_bridge_options_are_the_bridge_drivers():
    with pytest.raises(InvalidArgument, match="unknown network option parent"):
        drivers.get("bridge").validate({"parent": "eth0"}, False)


def test_no_driver_name_is_tested_outside_the_drivers():
    """The engine, reconcile, reset, ports and inspect ask the driver (issue 12)."""
    pat = re.compile(r"""driver\s*(==|!=|in\s*\(|not in)\s*["'(]""")
    found = []
    for path in PKG.rglob("*.py"):
        if path.parent.name == "drivers" or path.parent.parent.name == "drivers":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pat.search(line):
                found.append(f"{path.relative_to(PKG)}:{i}: {line.strip()}")
    assert not found, found
