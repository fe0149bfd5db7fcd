"""The cluster store client and the overlay registry against a real etcd
(Debian's etcd-server), started by the test in a namespace of its own and
reached on that namespace's loopback."""
from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from nsbridge.cluster import layout, member
from nsbridge.cluster.etcd import ClusterUnavailable, Compacted, Etcd
from nsbridge.cluster.registry import Registry
from nsbridge.errors import Conflict, Forbidden
from nsbridge.kernel import ns
from nsbridge.state.store import Store
from tests.integration.cluster_lab import EtcdServer, need_etcd


@pytest.fixture(scope="module")
def server():
    need_etcd()
    name = "nsbo" + secrets.token_hex(3) + "-etcd"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    srv = EtcdServer(name, "127.0.0.1")
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()
        subprocess.run(["ip", "netns", "del", name])


@pytest.fixture
def etcd(server):
    """A client, with the test's thread inside etcd's namespace, and a key
    prefix of the test's own."""
    with ns.in_netns(ns.netns_path(server.netns)), Etcd(server.url) as c:
        c.test_prefix = f"/t/{secrets.token_hex(4)}/"
        yield c


def test_put_get_delete_by_prefix(etcd):
    p = etcd.test_prefix
    assert etcd.get(p + "a") is None
    etcd.put(p + "a", "1")
    etcd.put(p + "b/x", "2")
    etcd.put(p + "b/y", "3")
    etcd.put(p[:-1] + "0", "outside")  # the next key after the prefix: not in it
    assert etcd.get(p + "a").value == "1"
    kvs, rev = etcd.get_prefix(p + "b/")
    assert [(kv.key, kv.value) for kv in kvs] == [(p + "b/x", "2"), (p + "b/y", "3")]
    assert rev >= kvs[-1].mod_revision
    assert etcd.delete_prefix(p + "b/") == 2
    assert etcd.delete(p + "a") == 1 and etcd.delete(p + "a") == 0
    assert etcd.get_prefix(p)[0] == []
    assert etcd.get(p[:-1] + "0").value == "outside"


def test_create_if_absent_has_one_winner(etcd):
    key = etcd.test_prefix + "name"
    assert etcd.create(key, "first")
    assert not etcd.create(key, "second")
    assert etcd.get(key).value == "first"
    # 8 threads, one connection each, racing for 20 keys: each key has exactly one winner
    wins: list[tuple[str, int]] = []

    def racer(i: int) -> None:
        with Etcd(etcd.url) as c:
            for k in range(20):
                if c.create(f"{etcd.test_prefix}race/{k}", str(i)):
                    wins.append((str(k), i))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(k for k, _ in wins) == sorted(str(k) for k in range(20))
    for k, i in wins:
        assert etcd.get(f"{etcd.test_prefix}race/{k}").value == str(i)


def test_leases_keepalive_revoke_and_expiry(etcd):
    p = etcd.test_prefix
    lease = etcd.grant(30)
    etcd.put(p + "held", "x", lease=lease)
    assert etcd.get(p + "held").lease == lease
    assert 0 < etcd.keepalive(lease) <= 30
    etcd.revoke(lease)
    assert etcd.get(p + "held") is None, "revoking a lease deletes its keys"
    assert etcd.keepalive(lease) == 0, "a revoked lease cannot be kept alive"
    etcd.revoke(lease)  # already gone: done
    short = etcd.grant(2)
    assert etcd.create(p + "short", "y", lease=short)
    time.sleep(1.2)
    assert etcd.keepalive(short) > 0  # kept alive past its first TTL
    time.sleep(1.2)
    assert etcd.get(p + "short") is not None
    deadline = time.monotonic() + 10
    while etcd.get(p + "short") is not None:
        assert time.monotonic() < deadline, "a lease not kept alive must expire"
        time.sleep(0.2)


def test_watch_from_a_revision_and_after_a_restart(etcd, server):
    p = etcd.test_prefix
    first = etcd.put(p + "1", "a")
    etcd.put(p + "2", "b")
    etcd.delete(p + "1")
    seen: list[tuple[str, str, str]] = []
    errors: list[str] = []

    def follow() -> None:
        with Etcd(etcd.url, timeout=2) as w:
            for batch in w.watch(p, first, retry=0.2, on_error=lambda e: errors.append(str(e))):
                seen.extend((e.type, e.kv.key[len(p):], e.kv.value) for e in batch)
                if seen[-1][1] == "4":
                    return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == [("PUT", "1", "a"), ("PUT", "2", "b"), ("DELETE", "1", "")]
    # etcd goes away and comes back: the watch reconnects and resumes after what it saw
    server.stop()
    time.sleep(0.5)
    server.start()
    etcd.close()
    etcd.put(p + "3", "c")
    etcd.put(p + "4", "d")
    t.join(15)
    assert not t.is_alive()
    assert seen[3:] == [("PUT", "3", "c"), ("PUT", "4", "d")], seen
    assert errors and errors[0].startswith(f"cannot reach the cluster store at {etcd.url}: "), errors


def test_watch_of_compacted_history_says_so(etcd):
    p = etcd.test_prefix
    old = etcd.put(p + "k", "1")
    now = etcd.put(p + "k", "2")
    etcd._post("kv/compaction", {"revision": str(now)})
    with pytest.raises(Compacted) as e:
        next(iter(etcd.watch_once(p, old)))
    assert e.value.revision >= now


def test_unreachable_store_is_one_line(server):
    with ns.in_netns(ns.netns_path(server.netns)):
        with Etcd("etcd://127.0.0.1:2399", timeout=1) as c, pytest.raises(ClusterUnavailable) as e:
            c.get("/x")
        assert str(e.value) == "cannot reach the cluster store at etcd://127.0.0.1:2399: [Errno 111] Connection refused"
        # a peer that accepts and never answers: a timeout, not a hang
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            with Etcd(f"etcd://127.0.0.1:{port}", timeout=0.5) as c, pytest.raises(ClusterUnavailable) as e:
                c.put("/x", "y")
            assert str(e.value) == f"cannot reach the cluster store at etcd://127.0.0.1:{port}: no answer within 0.5 s"
        finally:
            s.close()
    assert "\n" not in str(e.value)


# -- the registry: what overlay networks keep in etcd ----------------------------------
_STATE_DIR = tempfile.TemporaryDirectory(prefix="nsbridge-reg-")  # removed when the module is done


def _host(etcd: Etcd, prefix: str, i: int) -> Registry:
    """A registry as host I would have it (its own state store and lease)."""
    st = Store(f"{_STATE_DIR.name}/{prefix}-{i}-{secrets.token_hex(3)}.db")
    c = Etcd(etcd.url)  # a client per host (and per thread: a client is not shared between threads)
    m = member.Membership(store=etcd.url, advertise=f"192.0.2.{10 + i}", host_id=f"h{i}-{prefix}", ttl=30,
                          lease=c.grant(30), name=f"host{i}")
    return Registry(c, st, m)


@pytest.fixture
def clean_overlay_keys(etcd):
    etcd.delete_prefix(layout.PREFIX)
    yield
    etcd.delete_prefix(layout.PREFIX)


def test_network_names_vnis_and_subnets_are_cluster_wide(etcd, clean_overlay_keys):
    a, b = _host(etcd, "n", 1), _host(etcd, "n", 2)
    n1 = a.create_network("ov1")
    assert (n1.vni, n1.subnet, n1.gateway) == (256, "10.0.0.0/24", "10.0.0.1")
    with pytest.raises(Conflict, match="^network with name ov1 already exists$"):
        b.create_network("ov1")
    n2 = b.create_network("ov2", avoid=["10.0.1.0/24"])  # a route of host 2 is skipped
    assert (n2.vni, n2.subnet) == (257, "10.0.2.0/24")
    with pytest.raises(Conflict, match="^Pool overlaps with other one on this address space$"):
        a.create_network("ov3", subnet="10.0.0.0/16")
    assert b.network("ov1") == n1 and b.network(n1.id[:8]) == n1
    # the failed attempts left no claim behind: the next network gets 258
    assert a.create_network("ov3", subnet="10.9.0.0/16").vni == 258
    # concurrent creates of one name on several hosts: one network
    results: list[object] = []

    def create(r: Registry) -> None:
        try:
            results.append(r.create_network("same"))
        except Conflict as e:
            results.append(e)

    hosts = [_host(etcd, "c", i) for i in range(3, 9)]
    ts = [threading.Thread(target=create, args=(r,)) for r in hosts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    made = [r for r in results if isinstance(r, layout.ClusterNetwork)]
    assert len(made) == 1 and len(results) == 6
    vnis = {n.vni for n in a.networks()}
    assert len(vnis) == 4 and len(a._taken_vnis()) == 4, "losers released their VXLAN IDs"


def test_addresses_are_unique_across_hosts_under_concurrency(etcd, clean_overlay_keys):
    net = _host(etcd, "ip", 9).create_network("ipnet")
    got: list[str] = []
    hosts: list[Registry] = []

    def run(i: int) -> None:
        r = _host(etcd, "ip", i)  # its own state store (SQLite objects stay in their thread)
        hosts.append(r)
        for k in range(20):
            got.append(r.allocate_ip(net, f"ep-{i}-{k}"))
        r.st.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(got) == 60 and len(set(got)) == 60, sorted(got)
    assert "10.0.0.1" not in got and set(got) == {f"10.0.0.{i}" for i in range(2, 62)}
    for r in hosts:
        r.st = Store(r.st.path)
    with pytest.raises(Conflict, match="^Address already in use$"):
        hosts[1].allocate_ip(net, "ep-x", requested=got[0])
    # each host remembers what it announced; its lease holds it
    assert len(member.local_endpoints(hosts[0].st)) == 0
    assert len(hosts[0].st.meta_items(member.ANNOUNCE + layout.IPAM)) == 20
    etcd.revoke(hosts[2].m.lease)
    left = etcd.get_prefix(layout.ipam_prefix(net.id))[0]
    assert len(left) == 40, "a host's addresses go with its lease"


def test_network_rm_refuses_while_any_host_has_an_endpoint(etcd, clean_overlay_keys):
    a, b = _host(etcd, "rm", 1), _host(etcd, "rm", 2)
    net = a.create_network("rmnet")
    ip = b.allocate_ip(net, "ep1")
    ep = layout.ClusterEndpoint(id="ep1", network_id=net.id, container_id="c1", name="web", ip=ip,
                                mac="02:42:0a:00:00:02", host=b.m.host_id, vtep=b.m.advertise)
    b.put_endpoint(ep)
    assert a.endpoints(net.id) == [ep]
    with pytest.raises(Forbidden, match=f"^error while removing network: network rmnet id {net.id} has active endpoints$"):
        a.remove_network("rmnet")
    b.remove_endpoint(net.id, "ep1")
    b.release_ip(net.id, ip)
    a.remove_network("rmnet")
    assert etcd.get_prefix(layout.PREFIX)[0] == []
