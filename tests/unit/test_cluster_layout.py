"""The cluster key layout and the etcd client's pure parts: no etcd, no root."""
from __future__ import annotations

import itertools

import pytest

from nsbridge.cluster import layout
from nsbridge.cluster.etcd import parse_url, prefix_end


def test_keys_live_under_one_prefix_and_parse_back():
    keys = {
        layout.network_key("web"): ("network", ("web",)),
        layout.vni_key(256): ("vni", ("256",)),
        layout.subnet_key("10.0.3.0/24"): ("subnet", ("10.0.3.0/24",)),
        layout.ip_key("n1", "10.0.0.2"): ("ip", ("n1", "10.0.0.2")),
        layout.endpoint_key("n1", "e1"): ("endpoint", ("n1", "e1")),
        layout.host_key("h1"): ("host", ("h1",)),
    }
    for key, parsed in keys.items():
        assert key.startswith("/nsbridge/v1/")
        assert layout.parse_key(key) == parsed
    assert layout.subnet_key("10.0.3.0/24") == "/nsbridge/v1/subnets/10.0.3.0-24"
    for foreign in ("/other/x", "/nsbridge/v1/", "/nsbridge/v1/endpoints/n1", "/nsbridge/v1/hosts/",
                    "/nsbridge/v1/unknown/a", "/nsbridge/v1/ipam/n1/10.0.0.2/extra"):
        assert layout.parse_key(foreign) == ("", ())
    # one network's endpoints never match another's prefix
    assert not layout.endpoint_key("n10", "e").startswith(layout.endpoints_prefix("n1"))


def test_vni_candidates_start_at_256_and_skip_taken():
    assert list(itertools.islice(layout.vni_candidates([]), 3)) == [256, 257, 258]
    assert list(itertools.islice(layout.vni_candidates([256, 258]), 3)) == [257, 259, 260]


def test_subnets_are_dockers_overlay_pool_in_24s():
    first = list(itertools.islice(layout.subnet_candidates([]), 3))
    assert first == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
    # taken subnets and overlapping routes (a /16 covering 10.0.0.0-10.0.255.255) are skipped
    got = next(layout.subnet_candidates(["10.0.0.0/24", "10.0.1.0/24"]))
    assert got == "10.0.2.0/24"
    assert next(layout.subnet_candidates(["10.0.0.0/16"])) == "10.1.0.0/24"
    assert next(layout.subnet_candidates(["10.0.0.5/32"])) == "10.0.1.0/24"


def test_overlay_mtu_is_50_below_the_underlay():
    assert layout.overlay_mtu(1500) == 1450
    assert layout.overlay_mtu(9000) == 8950


def test_records_round_trip_through_json():
    ep = layout.ClusterEndpoint(id="e", network_id="n", container_id="c", name="web", ip="10.0.0.2",
                                mac="02:42:0a:00:00:02", host="h", vtep="192.0.2.11", aliases=["w"])
    assert layout.ClusterEndpoint.from_json(ep.to_json()) == ep
    net = layout.ClusterNetwork(id="n", name="ov", subnet="10.0.0.0/24", gateway="10.0.0.1", vni=256)
    assert layout.ClusterNetwork.from_json(net.to_json()) == net
    # fields a later version adds are ignored by this one
    assert layout.ClusterHost.from_json('{"id":"h","name":"a","advertise":"192.0.2.1","new":1}').id == "h"


def test_prefix_end_and_store_urls():
    assert prefix_end("/a/") == b"/a0"
    assert prefix_end("\u00ff") == b"\xc3\xc0"  # on the UTF-8 bytes, as etcd compares keys
    assert parse_url("etcd://192.0.2.2:2379") == ("192.0.2.2", 2379)
    assert parse_url("etcd://etcd1") == ("etcd1", 2379)
    assert parse_url("http://[::1]:2379") == ("::1", 2379)
    for bad in ("192.0.2.2:2379", "etcd://", "etcd://h:0", "etcd://h:99999", "etcd://h:x", "consul://h:8500"):
        with pytest.raises(ValueError, match="invalid cluster store address"):
            parse_url(bad)


def test_the_watcher_wants_other_hosts_endpoints_only():
    from nsbridge.cluster.watcher import desired_peers
    from nsbridge.kernel.overlay import Peer

    def ep(i: int, net: str, host: str, vtep: str) -> layout.ClusterEndpoint:
        ip = f"10.0.0.{i}"
        return layout.ClusterEndpoint(id=f"e{i}", network_id=net, container_id=f"c{i}", name=f"c{i}", ip=ip,
                                      mac=f"02:42:0a:00:00:{i:02x}", host=host, vtep=vtep)

    eps = {f"k{i}": e for i, e in enumerate([
        ep(2, "n1", "me", "192.0.2.11"), ep(3, "n1", "h2", "192.0.2.12"), ep(4, "n1", "h3", "192.0.2.13"),
        ep(5, "n2", "h2", "192.0.2.12"), ep(6, "n2", "me", "192.0.2.11"),
    ])}
    want = desired_peers(eps, "me")
    assert want == {
        "n1": {Peer("10.0.0.3", "02:42:0a:00:00:03", "192.0.2.12"), Peer("10.0.0.4", "02:42:0a:00:00:04", "192.0.2.13")},
        "n2": {Peer("10.0.0.5", "02:42:0a:00:00:05", "192.0.2.12")},
    }
    assert desired_peers({}, "me") == {}
