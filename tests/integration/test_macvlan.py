"""macvlan and ipvlan networks (issue 12), on a LAN: a namespace plays the
physical network, and the sandbox host's `eth0` is a veth into it (the
parent). What the kernel does is the lesson: containers reach each other and
the LAN with MACs of their own; the host does not reach its own macvlan
children through the parent until it has a macvlan of its own (a shim)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from nsbridge.kernel import features
from nsbridge.sandbox import Lan
from tests.integration.helpers import assert_consistent, ip_of
from tests.integration.test_hostile_input import assert_unchanged, snapshot

D = "Error response from daemon: "


@pytest.fixture
def lan(sb):
    sb.cli("network", "ls", check=True)  # the sandbox host exists
    with Lan(sb.name) as lan:
        yield lan


def mvnet(sb, lan, name="lan", *extra):
    return sb.cli("network", "create", "-d", "macvlan", "--subnet", lan.subnet, "--gateway", lan.machine,
                  "--ip-range", f"{lan.prefix}.128/25", "-o", "parent=eth0", *extra, name)


def links_in(sb, ctr: str) -> list[dict]:
    """`ip -j -d link` inside a container (from outside: the container has no NET_ADMIN need)."""
    p = subprocess.run(["ip", "-n", f"{sb.name}-{ctr}", "-j", "-d", "link"], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def test_containers_reach_each_other_and_the_lan_with_macs_of_their_own(sb, lan):
    assert mvnet(sb, lan).returncode == 0
    sb.cli("run", "-d", "--name", "ca", "--network", "lan", "alpine", check=True)
    sb.cli("run", "-d", "--name", "cb", "--network", "lan", "--ip", f"{lan.prefix}.200", "alpine", check=True)
    a, b = ip_of(sb, "ca"), ip_of(sb, "cb")
    assert a == f"{lan.prefix}.128" and b == f"{lan.prefix}.200"
    # eth0 is a macvlan on the host's eth0, made in place, marked, with Docker's MAC
    eth0 = next(li for li in links_in(sb, "ca") if li["ifname"] == "eth0")
    assert eth0["linkinfo"]["info_kind"] == "macvlan" and eth0["linkinfo"]["info_data"]["mode"] == "bridge"
    assert eth0["address"] == "02:42:c0:a8:4d:80" and eth0["ifalias"].startswith("nsbridge:")
    assert eth0["group"] != "default"
    route = sb.cli("exec", "ca", "ip", "route", check=True).stdout
    assert route.splitlines()[0].startswith(f"default via {lan.machine} dev eth0")
    # each other by name (the embedded DNS serves macvlan networks), and the LAN
    assert sb.cli("exec", "ca", "ping", "-c1", "-W2", "cb").returncode == 0
    assert sb.cli("exec", "cb", "ping", "-c1", "-W2", "ca").returncode == 0
    assert sb.cli("exec", "ca", "nslookup", "cb").stdout.count(b) == 1
    assert sb.cli("exec", "ca", "ping", "-c1", "-W2", lan.machine).returncode == 0
    # the LAN machine reaches them and knows their MACs: they are machines on its LAN
    for ip in (a, b):
        assert lan.run("ping", "-c1", "-W2", ip).returncode == 0
    neigh = lan.run("ip", "neigh", "show", "dev", "lan0").stdout
    macs = {ip: json.loads(sb.cli("inspect", "--format", "{{json .NetworkSettings.Networks.lan.MacAddress}}", n,
                                  check=True).stdout) for n, ip in (("ca", a), ("cb", b))}
    for ip, mac in macs.items():
        assert re.search(rf"^{re.escape(ip)} lladdr {mac}\b", neigh, re.M), neigh
    # no bridge, no veth, no NAT, no isolation rules for it
    default = sb.cli("network", "inspect", "--format", '{{index .Options "com.docker.network.bridge.name"}}', "bridge",
                     check=True).stdout.strip()
    host_links = {li["ifname"] for li in json.loads(sb.host_run("ip", "-j", "link", check=True).stdout)}
    assert host_links == {"lo", "eth0", default}
    assert lan.subnet not in sb.host_run("iptables-save", check=True).stdout
    # the host does not reach its own macvlan children through the parent ...
    assert sb.host_run("ping", "-c1", "-W1", a).returncode != 0
    # ... until it has a macvlan of its own on the parent (the README's shim)
    shim = [["ip", "link", "add", "mv-shim", "link", "eth0", "type", "macvlan", "mode", "bridge"],
            ["ip", "addr", "add", f"{lan.prefix}.254/32", "dev", "mv-shim"],
            ["ip", "link", "set", "mv-shim", "up"],
            ["ip", "route", "add", f"{lan.prefix}.128/25", "dev", "mv-shim"]]
    for cmd in shim:
        sb.host_run(*cmd, check=True)
    assert sb.host_run("ping", "-c1", "-W2", a).returncode == 0
    sb.host_run("ip", "link", "del", "mv-shim", check=True)
    # inspect as Docker's
    net = json.loads(sb.cli("network", "inspect", "lan", check=True).stdout)[0]
    assert (net["Driver"], net["Scope"], net["Options"], net["Internal"]) == ("macvlan", "local", {"parent": "eth0"}, False)
    assert {c["Name"]: c["MacAddress"] for c in net["Containers"].values()} == {"ca": macs[a], "cb": macs[b]}
    assert sb.cli("network", "ls", "--filter", "driver=macvlan", "--format", "{{.Name}} {{.Driver}}",
                  check=True).stdout.split() == ["lan", "macvlan"]
    assert_consistent(sb, foreign=("eth0",))


def test_connect_disconnect_and_names_across_drivers(sb, lan):
    mvnet(sb, lan).check_returncode()
    sb.cli("network", "create", "back", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "lan", "nginx", check=True)
    sb.cli("run", "-d", "--name", "cc", "--network", "back", "alpine", check=True)
    assert lan.run("ping", "-c1", "-W1", f"{lan.prefix}.150").returncode != 0  # (cc reaches the LAN through NAT only)
    sb.cli("network", "connect", "--ip", f"{lan.prefix}.150", "lan", "cc", check=True)
    assert ip_of(sb, "cc", "lan") == f"{lan.prefix}.150"
    eth1 = next(li for li in links_in(sb, "cc") if li["ifname"] == "eth1")
    assert eth1["linkinfo"]["info_kind"] == "macvlan" and eth1["address"] == "02:42:c0:a8:4d:96"
    assert "web" in sb.cli("exec", "cc", "wget", "-q", "-O", "-", "http://web/", check=True).stdout
    assert lan.run("ping", "-c1", "-W2", f"{lan.prefix}.150").returncode == 0
    assert_consistent(sb, foreign=("eth0",))
    sb.cli("network", "disconnect", "lan", "cc", check=True)
    assert not any(li["ifname"] == "eth1" for li in links_in(sb, "cc"))
    assert sb.cli("exec", "cc", "ping", "-c1", "-W1", "web").returncode != 0
    # stop and start: the same address, a macvlan again
    sb.cli("restart", "-t", "0", "web", check=True)
    assert ip_of(sb, "web") == f"{lan.prefix}.128"
    assert lan.run("ping", "-c1", "-W2", f"{lan.prefix}.128").returncode == 0
    assert_consistent(sb, foreign=("eth0",))


def test_reset_leaves_no_macvlan_device(sb, lan):
    mvnet(sb, lan).check_returncode()
    for n in ("ca", "cb"):
        sb.cli("run", "-d", "--name", n, "--network", "lan", "alpine", check=True)
    names = sb.netns_names()
    assert len(names) == 3
    sb.cli("system", "reset", "-f", check=True)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    assert not any(n in left for n in names)  # the containers (their macvlans with them) and the sandbox host
    assert "macvlan" not in lan.run("ip", "-d", "-o", "link").stdout
    assert lan.run("ping", "-c1", "-W1", f"{lan.prefix}.128").returncode != 0


def test_bad_options_fail_with_dockers_text_and_change_nothing(sb, lan):
    mvnet(sb, lan).check_returncode()
    before = snapshot(sb)
    sub = ["--subnet", "10.99.0.0/24"]
    cases = [
        (["-o", "macvlan_mode=foo", "-o", "parent=eth0"],
         "requested macvlan mode 'foo' is not valid, 'bridge' mode is the macvlan driver default"),
        (["-o", "parent=lo"], "loopback interface is not a valid macvlan parent link"),
        (["-o", "parent=eth9"], "invalid subinterface vlan name eth9, example formatting is eth0.10"),
        (["-o", "parent=eth9.10"], "-o parent interface does was not found on the host: eth9"),
        (["-o", "parent=eth0.5000"], "vlan id must be between 1-4094, received: 5000"),
        (["-o", "parent=eth0.x"], "unable to parse a valid vlan id from: x (ex. eth0.10 for vlan 10)"),
        (["-o", "parent=eth0"], None),  # the same parent in the same mode: Docker's text names dm-<id12>
        (["-o", "parent=eth0", "-o", "macvlan_mode=passthru"], None),
        (["-o", "foo=bar"], "unknown network option foo"),
    ]
    lan_id = json.loads(sb.cli("network", "inspect", "lan", check=True).stdout)[0]["Id"]
    for extra, text in cases:
        r = sb.cli("network", "create", "-d", "macvlan", *sub, *extra, "bad")
        if text is None:
            text = (f"network dm-{lan_id[:12]} is already using parent interface eth0" if "passthru" not in " ".join(extra)
                    else f"cannot use mode passthru, macvlan network {lan_id} is already using parent interface eth0")
        assert r.returncode != 0 and text in r.stderr.strip().splitlines()[0], (extra, r.stderr)
        assert r.stderr.startswith(f"nsbridge: {D}") or r.stderr.startswith(D), r.stderr
    # an overlapping subnet: Docker's IPAM text
    r = sb.cli("network", "create", "-d", "macvlan", "--subnet", f"{lan.prefix}.0/25", "-o", "parent=eth0",
               "-o", "macvlan_mode=private", "bad")
    assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr
    assert_unchanged(before, snapshot(sb))
    # a kernel without 802.1Q or dummy devices: one line naming the option, nothing made
    for extra, kind in ((["-o", "parent=eth0.10"], "vlan"), ([], "dummy")):
        r = sb.cli("network", "create", "-d", "macvlan", *sub, *extra, "sub")
        if features.has(features.OPTION_OF_KIND[kind]) is False:
            assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
            assert features.OPTION_OF_KIND[kind] in r.stderr, r.stderr
            assert_unchanged(before, snapshot(sb))
        else:
            assert r.returncode == 0, r.stderr
            dev = "eth0.10" if kind == "vlan" else f"dm-{r.stdout.strip()[:12]}"
            assert sb.host_run("ip", "link", "show", dev).returncode == 0
            sb.cli("network", "rm", "sub", check=True)
            assert sb.host_run("ip", "link", "show", dev).returncode != 0  # it goes with the network


def test_another_mode_may_share_the_parent(sb, lan):
    mvnet(sb, lan).check_returncode()
    r = sb.cli("network", "create", "-d", "macvlan", "--subnet", "10.99.0.0/24", "-o", "parent=eth0",
               "-o", "macvlan_mode=private", "priv")
    assert r.returncode == 0, r.stderr
    sb.cli("run", "-d", "--name", "p1", "--network", "priv", "alpine", check=True)
    sb.cli("run", "-d", "--name", "p2", "--network", "priv", "alpine", check=True)
    mode = next(li for li in links_in(sb, "p1") if li["ifname"] == "eth0")["linkinfo"]["info_data"]["mode"]
    assert mode == "private"
    # private: siblings on the parent do not reach each other (no hairpinning switch here)
    assert sb.cli("exec", "p1", "ping", "-c1", "-W1", ip_of(sb, "p2")).returncode != 0
    assert json.loads(sb.cli("network", "inspect", "priv", check=True).stdout)[0]["Options"] == {
        "parent": "eth0", "macvlan_mode": "private"}


IPVLAN = features.has("CONFIG_IPVLAN")


def ipvnet(sb, lan, mode="l2"):
    return sb.cli("network", "create", "-d", "ipvlan", "--subnet", lan.subnet, "--gateway", lan.machine,
                  "--ip-range", f"{lan.prefix}.128/25", "-o", "parent=eth0", "-o", f"ipvlan_mode={mode}", "ipv")


@pytest.mark.skipif(IPVLAN is not False, reason="this kernel has ipvlan (CONFIG_IPVLAN): the refusal cannot be seen here")
def test_ipvlan_without_the_kernel_feature_fails_at_once_and_makes_nothing(sb, lan):
    before = snapshot(sb)
    r = ipvnet(sb, lan)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "CONFIG_IPVLAN" in r.stderr, r.stderr
    assert_unchanged(before, snapshot(sb))
    # its options are still checked first, with Docker's texts
    r = sb.cli("network", "create", "-d", "ipvlan", "-o", "ipvlan_mode=l4", "x")
    assert "requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default" in r.stderr


@pytest.mark.skipif(IPVLAN is not True, reason="NOT RUN: this kernel has no ipvlan (built without CONFIG_IPVLAN)")
@pytest.mark.parametrize("mode", ["l2", "l3"])
def test_ipvlan_containers_share_the_parents_mac_and_reach_the_lan(sb, lan, mode):
    assert ipvnet(sb, lan, mode).returncode == 0
    sb.cli("run", "-d", "--name", "ca", "--network", "ipv", "alpine", check=True)
    sb.cli("run", "-d", "--name", "cb", "--network", "ipv", "alpine", check=True)
    parent_mac = json.loads(sb.host_run("ip", "-j", "link", "show", "eth0", check=True).stdout)[0]["address"]
    eth0 = next(li for li in links_in(sb, "ca") if li["ifname"] == "eth0")
    assert eth0["linkinfo"]["info_kind"] == "ipvlan" and eth0["address"] == parent_mac
    assert sb.cli("exec", "ca", "ping", "-c1", "-W2", "cb").returncode == 0
    if mode == "l2":
        assert sb.cli("exec", "ca", "ping", "-c1", "-W2", lan.machine).returncode == 0
    assert json.loads(sb.cli("network", "inspect", "ipv", check=True).stdout)[0]["Driver"] == "ipvlan"
    assert_consistent(sb, foreign=("eth0",))
