"""The resolver's answers (nsbridge.dns.records) over a real temporary store; no root."""
from __future__ import annotations

import pytest

from nsbridge.dns.records import A, AAAA, FORWARD, LOCAL, PTR, REFUSED, Records
from nsbridge.model import Container, Endpoint, IpamConfig, Network, new_id, now_iso
from nsbridge.state.store import Store


def net(name: str, subnet: str, gateway: str, predefined: bool = False) -> Network:
    nid = new_id()
    return Network(id=nid, name=name, driver="bridge", created=now_iso(),
                   ipam=IpamConfig(subnet=subnet, gateway=gateway), bridge="br-" + nid[:12],
                   predefined=predefined)


class World:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.nets: dict[str, Network] = {}
        self.ids: dict[str, str] = {}

    def network(self, name: str, subnet: str, gateway: str, predefined: bool = False) -> Network:
        n = net(name, subnet, gateway, predefined)
        with self.store.tx():
            self.store.put_network(n)
        self.nets[name] = n
        return n

    def container(self, name: str, *eps: tuple[str, str | None, list[str]]) -> str:
        c = Container(id=new_id(), name=name, created=now_iso(), state="running")
        with self.store.tx():
            self.store.put_container(c)
            for pos, (netname, ip, aliases) in enumerate(eps):
                self.store.put_endpoint(Endpoint(container_id=c.id, network_id=self.nets[netname].id,
                                                 position=pos, ip=ip, aliases=aliases))
        self.ids[name] = c.id
        return c.id

    def records(self, netname: str) -> Records:
        return Records(self.store.db, self.nets[netname].id)


@pytest.fixture
def world(tmp_path):
    store = Store(str(tmp_path / "state.db"))
    w = World(store)
    w.network("bridge", "172.17.0.0/16", "172.17.0.1", predefined=True)
    w.network("skynet", "172.18.0.0/16", "172.18.0.1")
    w.network("backend", "172.19.0.0/16", "172.19.0.1")
    w.container("alpine-box", ("skynet", "172.18.0.2", []))
    w.container("notes-db", ("skynet", "172.18.0.3", ["db"]))
    w.container("api", ("skynet", "172.18.0.4", []), ("backend", "172.19.0.2", ["service"]))
    w.container("worker", ("backend", "172.19.0.3", []))
    for i, ip in enumerate(["172.18.0.7", "172.18.0.5", "172.18.0.6"]):
        w.container(f"web{i + 1}", ("skynet", ip, ["web"]))
    w.container("old", ("skynet", None, ["web"]))  # exited: its endpoint has no address
    w.container("legacy", ("bridge", "172.17.0.2", ["legacy-alias"]))
    yield w
    store.close()


def addrs(ans) -> list[str]:
    assert ans.action == LOCAL, ans
    return list(ans.records)


def test_names_and_aliases_on_the_querier_network(world):
    r = world.records("skynet")
    assert addrs(r.resolve("172.18.0.2", "notes-db", A)) == ["172.18.0.3"]
    assert addrs(r.resolve("172.18.0.2", "db.", A)) == ["172.18.0.3"]
    assert addrs(r.resolve("172.18.0.2", "NoTeS-Db.", A)) == ["172.18.0.3"]
    assert addrs(r.resolve("172.18.0.2", "alpine-box", A)) == ["172.18.0.2"]  # itself
    a = r.resolve("172.18.0.2", "notes-db.", A)
    assert a.rtype == A and a.ttl == 600


def test_scoping_across_two_networks(world):
    sky, back = world.records("skynet"), world.records("backend")
    # alpine-box is on skynet only: backend's containers are not its business.
    assert sky.resolve("172.18.0.2", "worker", A).action == FORWARD
    assert sky.resolve("172.18.0.2", "service", A).action == FORWARD  # api's alias on backend only
    # worker is on backend only.
    assert back.resolve("172.19.0.3", "notes-db", A).action == FORWARD
    assert back.resolve("172.19.0.3", "alpine-box", A).action == FORWARD
    # The address is the target's address on the shared network.
    assert addrs(sky.resolve("172.18.0.2", "api", A)) == ["172.18.0.4"]
    assert addrs(back.resolve("172.19.0.3", "api", A)) == ["172.19.0.2"]
    assert addrs(back.resolve("172.19.0.3", "service", A)) == ["172.19.0.2"]


def test_container_on_both_networks_sees_both(world):
    sky, back = world.records("skynet"), world.records("backend")
    # api asks skynet's resolver about a container on backend, and the reverse.
    assert addrs(sky.resolve("172.18.0.4", "worker", A)) == ["172.19.0.3"]
    assert addrs(back.resolve("172.19.0.2", "notes-db", A)) == ["172.18.0.3"]
    assert addrs(sky.resolve("172.18.0.4", "service", A)) == ["172.19.0.2"]
    # Its own name: the resolver's network comes first.
    assert addrs(sky.resolve("172.18.0.4", "api", A)) == ["172.18.0.4"]
    assert addrs(back.resolve("172.19.0.2", "api", A)) == ["172.19.0.2"]
    assert sky.view("172.18.0.4") == (world.nets["skynet"].id, world.nets["backend"].id)


def test_alias_round_robin_and_exited_containers(world):
    r = world.records("skynet")
    seen = [addrs(r.resolve("172.18.0.2", "web", A)) for _ in range(4)]
    assert seen[0] == ["172.18.0.5", "172.18.0.6", "172.18.0.7"]
    assert seen[1] == ["172.18.0.6", "172.18.0.7", "172.18.0.5"]
    assert seen[2] == ["172.18.0.7", "172.18.0.5", "172.18.0.6"]
    assert seen[3] == seen[0]
    # The exited container (alias web too) is not among them, nor answered by name.
    assert r.resolve("172.18.0.2", "old", A).action == FORWARD
    assert r.resolve("172.18.0.2", world.ids["old"][:12], A).action == FORWARD


def test_short_ids(world):
    r = world.records("skynet")
    short = world.ids["notes-db"][:12]
    assert addrs(r.resolve("172.18.0.2", short, A)) == ["172.18.0.3"]
    assert addrs(r.resolve("172.18.0.2", short.upper() + ".", A)) == ["172.18.0.3"]
    assert r.resolve("172.18.0.2", world.ids["notes-db"][:11], A).action == FORWARD
    assert r.resolve("172.18.0.2", world.ids["worker"][:12], A).action == FORWARD  # not shared


def test_name_dot_network(world):
    sky, back = world.records("skynet"), world.records("backend")
    for q in ("notes-db.skynet", "NOTES-DB.SKYNET.", "db.skynet."):
        assert addrs(sky.resolve("172.18.0.2", q, A)) == ["172.18.0.3"]
    assert sky.resolve("172.18.0.2", "notes-db.backend", A).action == FORWARD
    assert sky.resolve("172.18.0.2", "api.backend", A).action == FORWARD  # not on backend itself
    assert addrs(sky.resolve("172.18.0.4", "api.backend", A)) == ["172.19.0.2"]
    assert addrs(sky.resolve("172.18.0.4", "worker.backend", A)) == ["172.19.0.3"]
    assert addrs(back.resolve("172.19.0.2", "api.skynet", A)) == ["172.18.0.4"]


def test_host_docker_internal_is_the_gateway(world):
    assert addrs(world.records("skynet").resolve("172.18.0.2", "host.docker.internal.", A)) == ["172.18.0.1"]
    assert addrs(world.records("backend").resolve("172.19.0.2", "Host.Docker.Internal", A)) == ["172.19.0.1"]
    aaaa = world.records("skynet").resolve("172.18.0.2", "host.docker.internal", AAAA)
    assert aaaa.action == LOCAL and aaaa.records == ()


def test_ptr(world):
    sky = world.records("skynet")
    a = sky.resolve("172.18.0.2", "3.0.18.172.in-addr.arpa.", PTR)
    assert a.action == LOCAL and a.rtype == PTR and a.records == ("notes-db.skynet",)
    # worker's address is on a network alpine-box is not on; api is on it.
    assert sky.resolve("172.18.0.2", "3.0.19.172.in-addr.arpa", PTR).action == FORWARD
    assert sky.resolve("172.18.0.4", "3.0.19.172.in-addr.arpa", PTR).records == ("worker.backend",)
    assert sky.resolve("172.18.0.2", "9.9.18.172.in-addr.arpa", PTR).action == FORWARD
    assert sky.resolve("172.18.0.2", "x.0.18.172.in-addr.arpa", PTR).action == FORWARD


def test_other_types_for_our_names_are_empty_noerror(world):
    r = world.records("skynet")
    for qtype in (AAAA, 15, 16, 255):
        a = r.resolve("172.18.0.2", "notes-db", qtype)
        assert a.action == LOCAL and a.records == (), qtype
    assert r.resolve("172.18.0.2", "3.0.18.172.in-addr.arpa", A).records == ()


def test_refused_outside_the_subnet_and_gateway_is_a_querier(world):
    r = world.records("skynet")
    assert r.resolve("10.0.0.5", "notes-db", A).action == REFUSED
    assert r.resolve("172.19.0.3", "notes-db", A).action == REFUSED  # worker, on backend
    assert r.resolve("::1", "notes-db", A).action == REFUSED
    assert r.resolve("172.18.0.1", "example.com", A).action == FORWARD
    # The gateway (the host) sees this network's names only.
    assert addrs(r.resolve("172.18.0.1", "notes-db", A)) == ["172.18.0.3"]
    assert r.resolve("172.18.0.1", "worker", A).action == FORWARD
    # An unknown address inside the subnet is treated the same way.
    assert addrs(r.resolve("172.18.200.9", "db", A)) == ["172.18.0.3"]


def test_default_bridge_has_no_names(world):
    assert world.records("bridge").resolve("172.17.0.2", "legacy", A).action == REFUSED
    r = world.records("skynet")
    assert r.resolve("172.18.0.2", "legacy", A).action == FORWARD
    # Even a container on the default bridge and a user network sees no legacy names.
    world.container("both", ("bridge", "172.17.0.3", []), ("skynet", "172.18.0.9", []))
    assert r.resolve("172.18.0.9", "legacy-alias", A).action == FORWARD
    assert addrs(r.resolve("172.18.0.9", "db", A)) == ["172.18.0.3"]


def test_answers_follow_each_store_write(world):
    store, r = world.store, world.records("skynet")
    assert addrs(r.resolve("172.18.0.2", "db", A)) == ["172.18.0.3"]
    gen = r.generation
    # stop: the endpoint loses its address
    eps = store.endpoints_of(world.ids["notes-db"])
    eps[0].ip = None
    with store.tx():
        store.put_endpoint(eps[0])
    assert r.resolve("172.18.0.2", "db", A).action == FORWARD
    assert r.generation != gen
    # start again, and connect worker to skynet with an alias
    eps[0].ip = "172.18.0.3"
    with store.tx():
        store.put_endpoint(eps[0])
        store.put_endpoint(Endpoint(container_id=world.ids["worker"], network_id=world.nets["skynet"].id,
                                    position=1, ip="172.18.0.8", aliases=["db"]))
    assert addrs(r.resolve("172.18.0.2", "db", A)) == ["172.18.0.3", "172.18.0.8"]
    assert addrs(r.resolve("172.18.0.2", "worker", A)) == ["172.18.0.8"]
    # rename
    c = store.container(world.ids["notes-db"])
    c.name = "database"
    with store.tx():
        store.put_container(c)
    assert addrs(r.resolve("172.18.0.2", "database", A)) == ["172.18.0.3"]
    assert r.resolve("172.18.0.2", "notes-db", A).action == FORWARD
    assert r.resolve("172.18.0.2", "3.0.18.172.in-addr.arpa", PTR).records == ("database.skynet",)
    # rm
    with store.tx():
        store.delete_container(world.ids["notes-db"])
    assert r.resolve("172.18.0.2", "database", A).action == FORWARD
    assert addrs(r.resolve("172.18.0.2", "db", A)) == ["172.18.0.8"]


def test_removed_network_refuses(world):
    r = world.records("backend")
    assert addrs(r.resolve("172.19.0.3", "api", A)) == ["172.19.0.2"]
    with world.store.tx():
        world.store.delete_network(world.nets["backend"].id)
    assert r.resolve("172.19.0.3", "api", A).action == REFUSED


def test_network_connect_links_name_a_container_for_the_linking_one_only(world):
    """`network connect --link notes-db:c1 skynet alpine-box`: alpine-box (and only it)
    resolves c1 to notes-db's address on skynet (Docker's endpoint alias)."""
    c = world.store.container(world.ids["alpine-box"])
    c.net_links = {world.nets["skynet"].id: ["notes-db:c1"], world.nets["backend"].id: ["worker:w"]}
    with world.store.tx():
        world.store.put_container(c)
    r = world.records("skynet")
    assert addrs(r.resolve("172.18.0.2", "c1", A)) == ["172.18.0.3"]
    assert addrs(r.resolve("172.18.0.2", "C1.", A)) == ["172.18.0.3"]
    assert r.resolve("172.18.0.4", "c1", A).action == FORWARD  # another querier: not its name
    assert addrs(r.resolve("172.18.0.2", "notes-db", A)) == ["172.18.0.3"]  # names still answer
    assert r.resolve("172.18.0.2", "w", A).action == FORWARD  # a link on a network it is not on
    assert r.view("172.18.0.2") != r.view("172.18.0.4")  # the server caches per view
