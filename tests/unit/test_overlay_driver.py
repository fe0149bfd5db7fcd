"""The overlay driver's pure parts, no root: a host's copy of a cluster network,
other hosts' containers in the resolver's answers, and their records in the
host's store (what the watcher writes)."""
from __future__ import annotations

from nsbridge.cluster import layout, member
from nsbridge.dns.records import A, LOCAL, PTR, Records
from nsbridge.drivers import overlay as drv
from nsbridge.model import Container, Endpoint, new_id, now_iso
from nsbridge.render.tables import network_matches, network_row
from nsbridge.state.store import Store


def cluster_net() -> layout.ClusterNetwork:
    return layout.ClusterNetwork(id=new_id(), name="ov", subnet="10.0.3.0/24", gateway="10.0.3.1", vni=258,
                                 created=now_iso(), attachable=True, labels={"a": "b"}, creator="h1")


def remote(net_id: str, name: str, ip: str, aliases=()) -> layout.ClusterEndpoint:
    return layout.ClusterEndpoint(id=new_id(), network_id=net_id, container_id=new_id(), name=name, ip=ip,
                                  mac="02:42:0a:00:03:09", host="h2", vtep="192.0.2.12", aliases=list(aliases))


def test_a_hosts_copy_of_a_cluster_network_is_global_with_dockers_vxlan_option():
    cn = cluster_net()
    n = drv.to_network(cn)
    assert (n.id, n.name, n.driver, n.scope, n.attachable, n.labels) == (cn.id, "ov", "overlay", "global", True, {"a": "b"})
    assert n.options == {"com.docker.network.driver.overlay.vxlanid_list": "258"}
    assert n.ipam is not None and (n.ipam.subnet, n.ipam.gateway) == ("10.0.3.0/24", "10.0.3.1")
    assert n.has_dns and not n.predefined
    back = drv.to_cluster(n)
    assert (back.id, back.subnet, back.gateway, back.vni) == (cn.id, cn.subnet, cn.gateway, 258)
    assert network_row(n)["Scope"] == "global"
    assert network_matches(n, ["scope=global"]) and not network_matches(n, ["scope=local"])


def test_other_hosts_containers_are_answered_by_name_alias_and_ptr(tmp_path):
    st = Store(str(tmp_path / "state.db"))
    n = drv.to_network(cluster_net())
    here = Container(id=new_id(), name="here", created=now_iso(), state="running")
    with st.tx():
        st.put_network(n)
        st.put_container(here)
        st.put_endpoint(Endpoint(container_id=here.id, network_id=n.id, position=0, ip="10.0.3.2", endpoint_id="e1"))
    far = remote(n.id, "Far", "10.0.3.9", ["svc"])
    member.put_remote(st, far)
    recs = Records(st.db, n.id)
    for name in ("far", "svc", far.container_id[:12], "far.ov"):
        ans = recs.resolve(here.id, name, A)
        assert (ans.action, ans.records) == (LOCAL, ("10.0.3.9",)), name
    assert recs.resolve(here.id, "9.3.0.10.in-addr.arpa", PTR).records == ("Far.ov",)
    # a remote container is a name, never a querier this host serves
    assert far.container_id not in recs.owned() and recs.view(far.container_id) is None
    member.put_remote(st, far, gone=True)
    assert recs.resolve(here.id, "far", A).action != LOCAL


def test_set_remote_writes_exactly_the_given_endpoints_and_nothing_when_unchanged(tmp_path):
    st = Store(str(tmp_path / "state.db"))
    a, b = remote("n1", "a", "10.0.0.2"), remote("n1", "b", "10.0.0.3")
    member.set_remote(st, [a, b])
    assert sorted(st.meta_items(member.REMOTE)) == sorted(f"{member.REMOTE}n1/{e.id}" for e in (a, b))
    gen = st.generation()
    member.set_remote(st, [b, a])
    assert st.generation() == gen, "no write (the resolvers would reload) when nothing changed"
    member.set_remote(st, [b])
    assert list(st.meta_items(member.REMOTE)) == [f"{member.REMOTE}n1/{b.id}"]
    member.forget(st)
    assert st.meta_items(member.REMOTE) == {}
