"""Every device the engine makes carries its tag (ifalias `nsbridge:<id>`)
and its engine's device group, so that reconcile and reset can find it again. The kernel ignores an alias
given when a device is created; these tests read the kernel's own answer."""
from __future__ import annotations

import json


def _links(sb) -> dict[str, dict]:
    return {li["ifname"]: li for li in json.loads(sb.host_run("ip", "-j", "-d", "link", check=True).stdout)}


def test_bridges_and_veths_carry_their_ids(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "alpine", check=True)
    sb.cli("network", "connect", "bridge", "web", check=True)
    links = _links(sb)
    nets = json.loads(sb.cli("network", "inspect", "bridge", "skynet", check=True).stdout)
    veths = {li["ifname"]: li for li in links.values() if li.get("linkinfo", {}).get("info_kind") == "veth"}
    assert len(veths) == 3  # web on two networks, db on one
    tagged = {li.get("ifalias") for li in veths.values()}
    for n in nets:
        dev = n["Options"].get("com.docker.network.bridge.name") or f"br-{n['Id'][:12]}"
        assert links[dev].get("ifalias") == f"nsbridge:{n['Id']}"
        for c in n["Containers"].values():
            assert f"nsbridge:{c['EndpointID']}" in tagged
            # and that veth is a port of this network's bridge
            port = next(v for v in veths.values() if v.get("ifalias") == f"nsbridge:{c['EndpointID']}")
            assert port["master"] == dev


def test_reconcile_removes_a_stray_tagged_veth_and_keeps_others(sb):
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    # a leftover of ours (its endpoint is gone; ours: the engine's device group), and a device
    # that is not ours, tagged alike or not
    group = json.loads(sb.cli("system", "info", "--format", "{{json .Engine}}", check=True).stdout)["DeviceGroup"]
    sb.host_run("ip", "link", "add", "vethdead", "group", str(group), "type", "veth", "peer", "name", "vethdead1",
                check=True)
    sb.host_run("ip", "link", "set", "vethdead", "alias", "nsbridge:" + "0" * 64, check=True)
    sb.host_run("ip", "link", "add", "notours", "type", "veth", "peer", "name", "notours1", check=True)
    sb.host_run("ip", "link", "add", "lookalike", "type", "veth", "peer", "name", "lookalike1", check=True)
    sb.host_run("ip", "link", "set", "lookalike", "alias", "nsbridge:" + "1" * 64, check=True)
    out = sb.cli("system", "reconcile", check=True).stdout
    assert "removed stray veth vethdead" in out
    links = _links(sb)
    assert "vethdead" not in links and "notours" in links and "lookalike" in links
    assert sb.cli("exec", "web", "true").returncode == 0
    sb.host_run("ip", "link", "del", "notours", check=True)
    sb.host_run("ip", "link", "del", "lookalike", check=True)
