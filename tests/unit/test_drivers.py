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


# -- macvlan and ipvlan options, as Docker's daemon checks them (before anything is made) ----------
MV = drivers.get("macvlan")


@pytest.mark.parametrize("opts,text", [
    ({"macvlan_mode": "foo"}, "requested macvlan mode 'foo' is not valid, 'bridge' mode is the macvlan driver default"),
    ({"parent": "lo"}, "loopback interface is not a valid macvlan parent link"),
    ({"parent": "a/b"}, "invalid parent value: a/b"),
    ({"parent": "x" * 16}, "invalid parent value"),
    ({"com.docker.network.bridge.name": "br0"}, "unknown network option com.docker.network.bridge.name"),
])
def test_macvlan_options_refused_with_dockers_text(opts, text):
    with pytest.raises(InvalidArgument) as e:
        drivers.get("macvlan").validate(opts, False)
    assert str(e.value).startswith(text)


@pytest.mark.parametrize("opts", [{}, {"parent": "eth0"}, {"parent": "eth0.10", "macvlan_mode": "private"},
                                  *({"macvlan_mode": m} for m in ("bridge", "private", "vepa", "passthru"))])
def test_macvlan_options_accepted(opts):
    assert drivers.get("macvlan").validate(dict(opts), False) == opts


@pytest.mark.parametrize("opts,text", [
    ({"ipvlan_mode": "l4"}, "requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default"),
    ({"ipvlan_flag": "x"}, "requested ipvlan flag 'x' is not valid, 'bridge' is the ipvlan driver default"),
    ({"parent": "lo"}, "loopback interface is not a valid ipvlan parent link"),
    ({"macvlan_mode": "bridge"}, "unknown network option macvlan_mode"),
])
def test_ipvlan_options_refused_with_dockers_text(opts, text):
    with pytest.raises(InvalidArgument) as e:
        drivers.get("ipvlan").validate(opts, False)
    assert str(e.value).startswith(text)


@pytest.mark.parametrize("name,text", [
    ("eth0.10.1", "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received eth0.10.1"),
    ("eth0.x", "unable to parse a valid vlan id from: x (ex. eth0.10 for vlan 10)"),
    ("eth0.0", "vlan id must be between 1-4094, received: 0"),
    ("eth0.4095", "vlan id must be between 1-4094, received: 4095"),
])
def test_vlan_parent_names_as_docker_parses_them(name, text):
    from nsbridge.drivers.parent import _parse_vlan

    with pytest.raises(InvalidArgument, match="^" + re.escape(text) + "$"):
        _parse_vlan(name)
    assert _parse_vlan("eth0.4094") == ("eth0", 4094)


def test_parent_and_mode_defaults_and_the_dummy_parent():
    from nsbridge.drivers import macvlan

    net = Network(id="f" * 64, name="m", driver="macvlan", created="", options={"parent": "eth0"})
    assert (MV.parent(net), MV.mode(net), MV.link_data(net)) == ("eth0", "bridge", [("IFLA_MACVLAN_MODE", 4)])
    # no parent, or --internal: a dummy parent named by the network (libnetwork's dm-<id12>)
    assert MV.parent(Network(id="f" * 64, name="m", driver="macvlan", created="")) == "dm-ffffffffffff"
    assert MV.parent(Network(id="f" * 64, name="m", driver="macvlan", created="", internal=True,
                             options={"parent": "eth0"})) == "dm-ffffffffffff"
    assert drivers.get("ipvlan").parent(Network(id="e" * 64, name="i", driver="ipvlan", created="")) == "di-eeeeeeeeeeee"
    assert macvlan.MODE_FLAGS == {"bridge": 4, "private": 1, "vepa": 2, "passthru": 8}  # linux/if_link.h
    caps = MV.caps
    assert not (caps.bridge or caps.nat or caps.isolation) and caps.dns and caps.container_kinds == ("macvlan",)
    assert MV.mac("192.168.77.128", None) == "02:42:c0:a8:4d:80" and drivers.get("ipvlan").mac("10.0.0.2", None) == ""


def test_sharing_a_parent_as_docker_allows_it():
    from nsbridge.errors import Conflict

    other = Network(id="a" * 64, name="o", driver="macvlan", created="", options={"parent": "eth0"})
    with pytest.raises(Conflict, match="^network dm-aaaaaaaaaaaa is already using parent interface eth0$"):
        MV.shared_parent(other, "eth0", "bridge", "bridge")
    MV.shared_parent(other, "eth0", "bridge", "private")  # another mode: the kernel keeps one per child
    with pytest.raises(Conflict, match="^cannot use mode passthru, macvlan network a{64} is already using"):
        MV.shared_parent(other, "eth0", "bridge", "passthru")
    with pytest.raises(Conflict, match="is already using parent interface eth0 in mode passthru$"):
        MV.shared_parent(other, "eth0", "passthru", "vepa")


def test_kernel_features_read_from_the_build_config(monkeypatch):
    from nsbridge.kernel import features

    monkeypatch.setattr(features, "_config", lambda: {"CONFIG_MACVLAN": "y", "CONFIG_IPVLAN": "m", "CONFIG_DUMMY": "n"})
    assert features.require("macvlan") is None and features.require("ipvlan") is None
    why = features.require("dummy")
    assert why and "CONFIG_DUMMY" in why and "\n" not in why
    assert features.require("vlan") and "CONFIG_VLAN_8021Q" in features.require("vlan")
    monkeypatch.setattr(features, "_config", lambda: None)  # unreadable: the creation decides
    assert features.require("ipvlan") is None


def test_a_parent_made_for_a_network_is_never_shared(monkeypatch):
    """eth0.10 or dm-<id12> made for one network goes with it: a second network on it is refused in any mode."""
    from nsbridge.errors import Conflict
    from nsbridge.kernel import features

    monkeypatch.setattr(features, "require", lambda kind: None)

    class K:  # the kernel as check() reads it: eth0.10 exists (made for `other`)
        class link:
            @staticmethod
            def index(name):
                return 5 if name in ("eth0", "eth0.10") else None

    other = Network(id="a" * 64, name="o", driver="macvlan", created="", options={"parent": "eth0.10"}, device="eth0.10")
    new = Network(id="b" * 64, name="n", driver="macvlan", created="",
                  options={"parent": "eth0.10", "macvlan_mode": "private"})
    with pytest.raises(Conflict, match="^network dm-aaaaaaaaaaaa is already using parent interface eth0.10$"):
        MV.check(K, new, [other])
    other.device = ""  # the user's own eth0.10: another mode may share it
    MV.check(K, new, [other])
