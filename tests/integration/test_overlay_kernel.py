"""The overlay network's kernel objects, hand-built on two sandbox hosts joined by
an underlay: the namespace with br0 and vxlan0 (made in the host namespace and
moved in), static FDB and neighbour entries for the remote endpoint, and real
VXLAN traffic (UDP 4789) on the underlay between two veths on the overlay bridges."""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from nsbridge.kernel import ns, overlay
from nsbridge.model import mac_for
from nsbridge.sandbox import Sandbox
from tests.integration.cluster_lab import Underlay, attach_container, in_ns, overlay_mark

NET_ID = "ab" * 32
VNI = 4097


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run the README's test command (sudo ./setup.sh test)")
    ul = Underlay("nsbo" + secrets.token_hex(3))
    hosts = [Sandbox(), Sandbox()]
    try:
        for i, sb in enumerate(hosts):
            sb.cli("network", "ls", check=True)
            ul.plug(sb.name, f"192.0.2.{11 + i}")
        yield ul, hosts
    finally:
        leaks = [leak for sb in hosts for leak in sb.destroy()]
        ul.destroy()
    assert not leaks, leaks


def _container(sb: Sandbox, name: str, ip: str) -> str:
    return attach_container(sb, NET_ID, name, ip)


def _build(sb: Sandbox, local: str) -> str:
    with ns.in_netns(ns.netns_path(sb.name)):
        return overlay.create_network_ns(sb.name, NET_ID, VNI, "10.0.0.1", 24, local, overlay_mark(sb, NET_ID))


def test_vxlan_between_two_hosts(two_hosts):
    ul, (h1, h2) = two_hosts
    n1, n2 = _build(h1, "192.0.2.11"), _build(h2, "192.0.2.12")
    assert n1 == f"{h1.name}-overlay@{NET_ID[:12]}"
    p1, p2 = ns.netns_path(n1), ns.netns_path(n2)
    info = overlay.vxlan_info(p1)
    assert info["vni"] == VNI and info["port"] == 4789 and info["local"] == "192.0.2.11"
    assert info["learning"] == 0 and info["proxy"] == 1 and info["mtu"] == 1450 and info["master"]
    assert info["alias"] == f"nsbridge:{NET_ID}"
    links = {line.split(": ")[1].split("@")[0] for line in in_ns(n1, "ip", "-o", "link").stdout.splitlines()}
    assert links == {"lo", "br0", "vxlan0"}
    assert "10.0.0.1/24" in in_ns(n1, "ip", "-o", "addr", "show", "br0").stdout
    # made in the host namespace: its UDP socket is there, not in the overlay namespace
    assert ":4789" in h1.host_run("ss", "-uanH").stdout
    assert ":4789" not in in_ns(n1, "ss", "-uanH").stdout
    assert h1.host_run("ip", "link", "show", overlay.vxlan_host_name(VNI, NET_ID)).returncode != 0

    c1 = _container(h1, "c1", "10.0.0.2")
    c2 = _container(h2, "c2", "10.0.0.3")
    # no peers programmed: learning is off, nothing crosses
    assert in_ns(c1, "ping", "-c", "1", "-W", "1", "10.0.0.3").returncode != 0
    overlay.add_peer(p1, overlay.Peer("10.0.0.3", mac_for("10.0.0.3"), "192.0.2.12"))
    overlay.add_peer(p2, overlay.Peer("10.0.0.2", mac_for("10.0.0.2"), "192.0.2.11"))
    overlay.add_peer(p2, overlay.Peer("10.0.0.2", mac_for("10.0.0.2"), "192.0.2.11"))  # idempotent
    fdb = [" ".join(x.split()) for x in in_ns(n1, "bridge", "fdb", "show", "dev", "vxlan0").stdout.splitlines()]
    mine = [x.replace(" link-netnsid 0", "") for x in fdb if "dst" in x]
    assert sorted(mine) == sorted(["00:00:00:00:00:00 dst 192.0.2.12 self permanent",
                                   f"{mac_for('10.0.0.3')} dst 192.0.2.12 self permanent"]), fdb
    neigh = in_ns(n1, "ip", "neigh", "show", "dev", "vxlan0").stdout
    assert f"10.0.0.3 lladdr {mac_for('10.0.0.3')} PERMANENT" in neigh
    assert overlay.programmed(p2) == {overlay.Peer("10.0.0.2", mac_for("10.0.0.2"), "192.0.2.11")}

    cap = subprocess.Popen(["ip", "netns", "exec", ul.netns, "tcpdump", "-i", "ul0", "-n", "-l", "-c", "4",
                            "udp", "port", "4789"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time

        time.sleep(1.0)  # tcpdump's socket is open
        ping = in_ns(c1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.3")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        out, _ = cap.communicate(timeout=10)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    lines = [x for x in out.splitlines() if "VXLAN" in x or ".4789" in x]
    assert len(lines) >= 4, out
    assert any("192.0.2.11" in x and "192.0.2.12.4789" in x for x in lines), out
    # TCP too, across the tunnel (and the MTU: 1450 inside, 1500 on the underlay)
    srv = subprocess.Popen(["ip", "netns", "exec", c2, "python3", "-c",
                            "import socket;s=socket.socket();s.bind(('0.0.0.0',8080));s.listen(1);"
                            "c,_=s.accept();c.sendall(b'x'*100000);c.close()"])
    try:
        got = in_ns(c1, "python3", "-c",
                    "import socket,time\nfor i in range(50):\n try:\n  c=socket.create_connection(('10.0.0.3',8080),2);break\n"
                    " except OSError: time.sleep(0.1)\nn=0\nwhile True:\n b=c.recv(65536)\n if not b: break\n n+=len(b)\nprint(n)",
                    timeout=20)
        assert got.stdout.strip() == "100000", got.stderr
    finally:
        srv.kill()
        srv.wait()

    # remove: the peer is gone from both tables, flooding to its host stops
    peer3 = overlay.Peer("10.0.0.3", mac_for("10.0.0.3"), "192.0.2.12")
    overlay.remove_peer(p1, peer3, last_on_host=True)
    overlay.remove_peer(p1, peer3, last_on_host=True)  # already gone: fine
    assert overlay.programmed(p1) == set() and overlay.flood_targets(p1) == set()
    assert in_ns(c1, "ping", "-c", "1", "-W", "1", "10.0.0.3").returncode != 0
    # sync: exactly what is wanted, stale entries removed
    stale = overlay.Peer("10.0.0.9", mac_for("10.0.0.9"), "192.0.2.13")
    overlay.add_peer(p1, stale)
    added, removed = overlay.sync_peers(p1, {peer3})
    assert added == [peer3] and removed == [stale]
    assert overlay.programmed(p1) == {peer3} and overlay.flood_targets(p1) == {"192.0.2.12"}
    assert in_ns(c1, "ping", "-c", "1", "-W", "2", "10.0.0.3").returncode == 0
    assert overlay.delete_network_ns(n1) and not overlay.delete_network_ns(n1)


def test_failed_build_leaves_nothing(two_hosts):
    _ul, (h1, _h2) = two_hosts
    from nsbridge.errors import Conflict, KernelError

    with ns.in_netns(ns.netns_path(h1.name)):
        with pytest.raises(KernelError, match="no device of this host has the advertise address 192.0.2.99"):
            overlay.create_network_ns(h1.name, NET_ID, VNI, "10.0.0.1", 24, "192.0.2.99", overlay_mark(h1, NET_ID))
        # a VNI that another vxlan device already holds with the same port: the kernel refuses
        overlay.create_network_ns(h1.name, NET_ID, VNI, "10.0.0.1", 24, "192.0.2.11", overlay_mark(h1, NET_ID))
        with pytest.raises(Conflict, match="^failed to create vxlan device vx-001001-cdcdc: VXLAN ID 4097 "):
            overlay.create_network_ns(h1.name, "cd" * 32, VNI, "10.0.1.1", 24, "192.0.2.11",
                                      overlay_mark(h1, "cd" * 32))
    assert not ns.netns_exists(overlay.netns_name(h1.name, "cd" * 32))
    assert h1.host_run("ip", "link", "show", overlay.vxlan_host_name(VNI, "cd" * 32)).returncode != 0


def test_gateway_bridge_is_a_local_bridge_network_as_dockers(sb):
    """docker_gwbridge: the overlay containers' way out, a local bridge with icc off."""
    opts = [x for k, v in overlay.GWBRIDGE_OPTIONS.items() for x in ("-o", f"{k}={v}")]
    sb.cli("network", "create", *opts, overlay.GWBRIDGE_NAME, check=True)
    assert sb.host_run("ip", "link", "show", "docker_gwbridge").returncode == 0
    rules = sb.host_run("iptables-save").stdout
    assert "-i docker_gwbridge -o docker_gwbridge -j DROP" in rules  # icc off
    assert "MASQUERADE" in rules
    sb.cli("network", "rm", overlay.GWBRIDGE_NAME, check=True)
