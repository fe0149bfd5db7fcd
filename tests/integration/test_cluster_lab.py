"""Sandbox hosts on an underlay with a real etcd: joining the cluster store,
leases that expire for a cut-off host and come back when it heals, the watcher
programming FDB/neighbour entries from the store, VXLAN traffic between
containers on two hosts, and what happens when etcd goes away."""
from __future__ import annotations

import json
import subprocess

import pytest

from nsbridge.cluster import layout, member
from nsbridge.cluster.etcd import Etcd
from nsbridge.cluster.registry import Registry
from nsbridge.kernel import ns, overlay
from nsbridge.model import mac_for
from nsbridge.state.store import Store
from tests.integration.cluster_lab import ETCD_ADDR, Lab, attach_container, build_overlay, in_ns, wait_for


@pytest.fixture
def lab(request):
    n = getattr(request, "param", 3)
    lb = Lab(n)
    try:
        yield lb
    finally:
        leaks = lb.destroy()
    assert not leaks, leaks


def info(sb) -> dict:
    return json.loads(sb.cli("system", "info", "--format", "{{json .Cluster}}", check=True).stdout)


def hosts_seen(sb) -> list[str]:
    c = info(sb)
    return sorted(h["Advertise"] for h in c["Hosts"]) if c and not c["Error"] else []


class HostView:
    """The registry as a host's driver will use it: its own state store and
    membership, with the thread in its namespace for every etcd call."""

    def __init__(self, sb) -> None:
        self.sb = sb
        self.st = Store(sb.env["NSBRIDGE_ROOT"] + "/state.db")

    def __enter__(self) -> Registry:
        self._ns = ns.in_netns(ns.netns_path(self.sb.name))
        self._ns.__enter__()
        m = member.membership(self.st, self.sb.name)
        self.reg = Registry(Etcd(m.store), self.st, m)
        return self.reg

    def __exit__(self, *exc) -> None:
        self.reg.etcd.close()
        self._ns.__exit__(*exc)
        self.st.close()


def announce_endpoint(sb, net: layout.ClusterNetwork, name: str) -> layout.ClusterEndpoint:
    """What `run --network OVERLAY` on SB will record: an address and an endpoint."""
    with HostView(sb) as reg:
        ep_id = f"ep-{name}"
        ip = reg.allocate_ip(net, ep_id)
        ep = layout.ClusterEndpoint(id=ep_id, network_id=net.id, container_id=f"c-{name}", name=name, ip=ip,
                                    mac=mac_for(ip), host=reg.m.host_id, vtep=reg.m.advertise)
        reg.put_endpoint(ep)
    return ep


def withdraw_endpoint(sb, ep: layout.ClusterEndpoint) -> None:
    with HostView(sb) as reg:
        reg.remove_endpoint(ep.network_id, ep.id)
        reg.release_ip(ep.network_id, ep.ip)


def test_join_leave_and_info_from_three_hosts(lab):
    h1, h2, h3 = lab.hosts
    out = h1.cli("system", "info", check=True).stdout
    assert "Cluster Store: (none" in out
    for sb in lab.hosts:
        p = sb.cli("system", "join", lab.etcd.url, "--advertise", lab.addr(sb), check=True)
        assert p.stdout == f"joined the cluster store at {lab.etcd.url} as {sb.name} (advertise {lab.addr(sb)}, ttl 20 s)\n"
    everyone = sorted(lab.addr(sb) for sb in lab.hosts)
    for sb in lab.hosts:
        assert hosts_seen(sb) == everyone
        c = info(sb)
        assert c["Store"] == lab.etcd.url and c["Advertise"] == lab.addr(sb) and c["Watcher"]["State"] == "running"
        assert [h["Self"] for h in c["Hosts"] if h["Advertise"] == lab.addr(sb)] == [True]
        assert [p for p in sb.processes() if "nsbridge.cluster.watcher" in p], "one watcher per host"
    text = h1.cli("system", "info", check=True).stdout
    assert f"Cluster Store: {lab.etcd.url}\nCluster Advertise: {lab.addr(h1)}\n" in text
    assert f"  {h1.name} {lab.addr(h1)} (this host)\n" in text and f"  {h2.name} {lab.addr(h2)}\n" in text
    assert h1.cli("system", "reconcile", check=True).stdout == "nothing to do: the store and the kernel agree\n"
    hosts_keys = [k for k in lab.etcd_keys() if k.startswith(layout.HOSTS)]
    assert len(hosts_keys) == 3
    # the same join again changes nothing; another store or address is refused in one line
    assert h1.cli("system", "join", lab.etcd.url, "--advertise", lab.addr(h1)).returncode == 0
    p = h1.cli("system", "join", "etcd://192.0.2.3:2379", "--advertise", lab.addr(h1))
    assert p.returncode == 1 and p.stderr == (
        f"Error response from daemon: this host has already joined the cluster store at {lab.etcd.url} "
        f"as {lab.addr(h1)}: run `nsbridge system leave` first\n")
    # a dead watcher is restarted by the next command; its log keeps what the dead one said
    w = info(h2)["Watcher"]
    subprocess.run(["kill", str(w["Pid"])])
    wait_for(lambda: f"nsbridge-cluster-watcher[{w['Pid']}] stopped" in open(w["Log"]).read(), 10, "the watcher to stop")
    assert info(h2)["Watcher"]["State"] == "running" and info(h2)["Watcher"]["Pid"] != w["Pid"]
    subprocess.run(["kill", "-9", str(info(h2)["Watcher"]["Pid"])])
    assert info(h2)["Watcher"]["State"] == "running"
    assert f"nsbridge-cluster-watcher[{w['Pid']}] watching {lab.etcd.url}" in open(w["Log"]).read()
    # leave: the others stop seeing the host at once; its watcher stops
    assert h3.cli("system", "leave", check=True).stdout == f"left the cluster store at {lab.etcd.url}\n"
    assert hosts_seen(h1) == sorted([lab.addr(h1), lab.addr(h2)])
    assert info(h3) is None and not [p for p in h3.processes() if "nsbridge.cluster.watcher" in p]
    p = h3.cli("system", "leave")
    assert p.returncode == 1 and p.stderr == "Error response from daemon: this host has not joined a cluster store\n"
    # reset on a member host removes its keys from the store
    h2.destroy()
    lab.hosts.remove(h2)
    assert [k for k in lab.etcd_keys() if k.startswith(layout.HOSTS)] == [layout.host_key(info(h1)["HostID"])]


def test_bad_joins_fail_in_one_line_and_record_nothing(lab):
    h1 = lab.hosts[0]
    cases = [
        (["etcd://192.0.2.2:2379", "--advertise", "192.0.2.99"],
         "Error response from daemon: advertise address 192.0.2.99 is not an address of this host (it has: 192.0.2.11)\n"),
        (["192.0.2.2:2379", "--advertise", "192.0.2.11"],
         "Error response from daemon: invalid cluster store address '192.0.2.2:2379': expected etcd://HOST:PORT\n"),
        (["etcd://192.0.2.2:2379", "--advertise", "eth0"],
         "Error response from daemon: invalid advertise address 'eth0': expected this host's IPv4 address on the underlay\n"),
        (["etcd://192.0.2.2:2379", "--advertise", "192.0.2.11", "--ttl", "1"],
         "Error response from daemon: invalid --ttl 1: between 2 and 3600 seconds\n"),
        (["etcd://192.0.2.5:2379", "--advertise", "192.0.2.11"],
         "Error response from daemon: cannot reach the cluster store at etcd://192.0.2.5:2379: "),
    ]
    for args, err in cases:
        p = h1.cli("system", "join", *args, timeout=30)
        assert p.returncode == 1 and p.stderr.startswith(err) and p.stderr.count("\n") == 1, (args, p.stderr)
        assert info(h1) is None
    assert lab.etcd_keys() == {}
    # leave -f while the store is away forgets the membership here; joining again replaces
    # the old registration (same host name): its lease and keys go
    h2 = lab.hosts[1]
    lab.join(h2)
    old_id = info(h2)["HostID"]
    lab.etcd.stop()
    p = h2.cli("system", "leave")
    assert p.returncode == 1 and "cannot reach the cluster store" in p.stderr and info(h2) is not None
    h2.cli("system", "leave", "-f", check=True)
    assert info(h2) is None
    lab.etcd.start()
    assert list(lab.etcd_keys()) == [layout.host_key(old_id)]
    lab.join(h2)
    # another host claiming a registered address (say it has it too) is refused
    h1.host_run("ip", "addr", "add", f"{lab.addr(h2)}/32", "dev", "eth0", check=True)
    p = h1.cli("system", "join", lab.etcd.url, "--advertise", lab.addr(h2))
    assert p.returncode == 1 and p.stderr == (f"Error response from daemon: advertise address {lab.addr(h2)} is "
                                              f"already used by host {h2.name} in the cluster store\n")
    h1.host_run("ip", "addr", "del", f"{lab.addr(h2)}/32", "dev", "eth0", check=True)
    assert list(lab.etcd_keys()) == [layout.host_key(info(h2)["HostID"])] and info(h2)["HostID"] != old_id
    # reset of a member host while the store is away: done, and it says what it could not do
    lab.etcd.stop()
    p = h2.cli("system", "reset", "-f", check=True)
    assert p.stdout.splitlines()[0] == (
        "could not remove this host's keys from the cluster store (cannot reach the cluster store at "
        "etcd://192.0.2.2:2379: [Errno 111] Connection refused): they expire in 20 s")
    assert not h2.processes() and not h2.netns_names()


@pytest.mark.parametrize("lab", [3], indirect=True)
def test_a_cut_off_host_expires_and_comes_back(lab):
    h1, h2, h3 = lab.hosts
    for sb in lab.hosts:
        lab.join(sb, ttl=3)
    with HostView(h1) as reg:
        net = reg.create_network("ov")
    ep3 = announce_endpoint(h3, net, "c3")
    key3 = layout.endpoint_key(net.id, ep3.id)
    assert key3 in lab.etcd_keys()
    lab.underlay.cut(h3.name)
    # after the TTL, the others no longer see host 3 nor its endpoint and address
    wait_for(lambda: hosts_seen(h1) == sorted([lab.addr(h1), lab.addr(h2)]), 15, "host 3 to expire")
    keys = lab.etcd_keys()
    assert key3 not in keys and layout.ip_key(net.id, ep3.ip) not in keys
    assert hosts_seen(h3) == [], "the cut-off host cannot ask the store"
    lab.underlay.heal(h3.name)
    # its watcher finds the lease gone, takes a new one and puts its keys back
    wait_for(lambda: key3 in lab.etcd_keys(), 30, "host 3's endpoint to come back")
    assert hosts_seen(h1) == sorted(lab.addr(sb) for sb in lab.hosts)
    keys = lab.etcd_keys()
    assert layout.ClusterEndpoint.from_json(keys[key3]) == ep3 and keys[layout.ip_key(net.id, ep3.ip)] == ep3.id
    log = open(info(h3)["Watcher"]["Log"]).read()
    assert "lost the cluster store: cannot reach the cluster store at etcd://192.0.2.2:2379" in log
    assert "lease lost (cut off longer than 3 s)" in log and "the cluster store answers again" in log
    # it has an endpoint now: leaving is refused, as `network rm` is with endpoints
    p = h3.cli("system", "leave")
    assert p.returncode == 1 and p.stderr == ("Error response from daemon: this host has 1 endpoint(s) on overlay "
                                              "networks (containers: c3): remove them before leaving the cluster store\n")
    withdraw_endpoint(h3, ep3)
    h3.cli("system", "leave", check=True)


@pytest.mark.parametrize("lab", [3], indirect=True)
def test_watcher_programs_peers_and_traffic_crosses_hosts(lab):
    h1, h2, h3 = lab.hosts
    for sb in lab.hosts:
        lab.join(sb, ttl=5)
    with HostView(h1) as reg:
        net = reg.create_network("ov")
    plen = int(net.subnet.split("/")[1])
    p1 = build_overlay(h1, net.id, net.vni, net.gateway, plen, lab.addr(h1))
    p2 = build_overlay(h2, net.id, net.vni, net.gateway, plen, lab.addr(h2))
    ep1, ep2 = announce_endpoint(h1, net, "c1"), announce_endpoint(h2, net, "c2")
    c1 = attach_container(h1, net.id, "c1", ep1.ip, plen)
    c2 = attach_container(h2, net.id, "c2", ep2.ip, plen)
    peer1 = overlay.Peer(ep1.ip, ep1.mac, lab.addr(h1))
    peer2 = overlay.Peer(ep2.ip, ep2.mac, lab.addr(h2))
    # each host's watcher programs the other's endpoint (and never its own)
    wait_for(lambda: overlay.programmed(p1) == {peer2}, 10, "host 1's watcher to program c2")
    wait_for(lambda: overlay.programmed(p2) == {peer1}, 10, "host 2's watcher to program c1")
    assert overlay.flood_targets(p1) == {lab.addr(h2)}
    neigh = in_ns(overlay.netns_name(h1.name, net.id), "ip", "neigh", "show", "dev", "vxlan0").stdout
    assert f"{ep2.ip} lladdr {ep2.mac} PERMANENT" in neigh
    ping = in_ns(c1, "ping", "-c", "2", "-W", "2", ep2.ip)
    assert ping.returncode == 0, ping.stdout
    # a host whose overlay namespace appears later gets every peer at once
    ep3 = announce_endpoint(h3, net, "c3")
    wait_for(lambda: len(overlay.programmed(p1)) == 2, 10, "host 1 to learn c3")
    p3 = build_overlay(h3, net.id, net.vni, net.gateway, plen, lab.addr(h3))
    wait_for(lambda: overlay.programmed(p3) == {peer1, peer2}, 10, "host 3's watcher to sync its new namespace")
    # an endpoint removed from the store is removed from every host's tables
    withdraw_endpoint(h3, ep3)
    wait_for(lambda: overlay.programmed(p1) == {peer2} and overlay.flood_targets(p1) == {lab.addr(h2)}, 10,
             "c3 to be removed on host 1")
    # losing etcd: traffic keeps flowing, store-needing commands fail in one line
    lab.etcd.stop()
    assert in_ns(c1, "ping", "-c", "2", "-W", "2", ep2.ip).returncode == 0
    c = info(h1)
    assert c["Error"].startswith(f"cannot reach the cluster store at etcd://{ETCD_ADDR}:2379: ")
    text = h1.cli("system", "info", check=True).stdout
    assert f" Hosts: unknown: cannot reach the cluster store at etcd://{ETCD_ADDR}:2379: " in text
    p = h3.cli("system", "leave")
    assert p.returncode == 1 and p.stderr.startswith(
        f"Error response from daemon: cannot reach the cluster store at etcd://{ETCD_ADDR}:2379: ")
    assert p.stderr.count("\n") == 1 and info(h3) is not None, "a failed leave changes nothing"
    assert overlay.programmed(p1) == {peer2}, "the kernel keeps what it had"
    lab.etcd.start()
    wait_for(lambda: "the cluster store answers again" in open(info(h1)["Watcher"]["Log"]).read(), 15,
             "host 1's watcher to see the store again")
    ep4 = announce_endpoint(h2, net, "c4")
    wait_for(lambda: overlay.Peer(ep4.ip, ep4.mac, lab.addr(h2)) in overlay.programmed(p1), 10,
             "the watch to resume after etcd came back")
    assert c2
