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
    assert addrs(r.resolve(world.ids["alpine-box"], "notes-db", A)) == ["172.18.0.3"]
    assert addrs(r.resolve(world.ids["alpine-box"], "db.", A)) == ["172.18.0.3"]
    assert addrs(r.resolve(world.ids["alpine-box"], "NoTeS-Db.", A)) == ["172.18.0.3"]
    assert addrs(r.resolve(world.ids["alpine-box"], "alpine-box", A)) == ["172.18.0.2"]  # itself
    a = r.resolve(world.ids["alpine-box"], "notes-db.", A)
    assert a.rtype == A and a.ttl == 600


def test_scoping_across_two_networks(world):
    sky, back = world.records("skynet"), world.records("backend")
    # alpine-box is on skynet only: backend's containers are not its business.
    assert sky.resolve(world.ids["alpine-box"], "worker", A).action == FORWARD
    assert sky.resolve(world.ids["alpine-box"], "service", A).action == FORWARD  # api's alias on backend only
    # worker is on backend only.
    assert back.resolve(world.ids["worker"], "notes-db", A).action == FORWARD
    assert back.resolve(world.ids["worker"], "alpine-box", A).action == FORWARD
    # The address is the target's address on the shared network.
    assert addrs(sky.resolve(world.ids["alpine-box"], "api", A)) == ["172.18.0.4"]
    assert addrs(back.resolve(world.ids["worker"], "api", A)) == ["172.19.0.2"]
    assert addrs(back.resolve(world.ids["worker"], "service", A)) == ["172.19.0.2"]


def test_container_on_both_networks_sees_both(world):
    sky, back = world.records("skynet"), world.records("backend")
    # api asks skynet's resolver about a container on backend, and the reverse.
    assert addrs(sky.resolve(world.ids["api"], "worker", A)) == ["172.19.0.3"]
    assert addrs(back.resolve(world.ids["api"], "notes-db", A)) == ["172.18.0.3"]
    assert addrs(sky.resolve(world.ids["api"], "service", A)) == ["172.19.0.2"]
    # Its own name: its first network (attach order) comes first, whoever answers.
    assert addrs(sky.resolve(world.ids["api"], "api", A)) == ["172.18.0.4"]
    assert addrs(back.resolve(world.ids["api"], "api", A)) == ["172.18.0.4"]
    assert sky.view(world.ids["api"]) == (world.nets["skynet"].id, world.nets["backend"].id)
    assert back.view(world.ids["api"]) == sky.view(world.ids["api"])


def test_alias_round_robin_and_exited_containers(world):
    r = world.records("skynet")
    seen = [addrs(r.resolve(world.ids["alpine-box"], "web", A)) for _ in range(4)]
    assert seen[0] == ["172.18.0.5", "172.18.0.6", "172.18.0.7"]
    assert seen[1] == ["172.18.0.6", "172.18.0.7", "172.18.0.5"]
    assert seen[2] == ["172.18.0.7", "172.18.0.5", "172.18.0.6"]
    assert seen[3] == seen[0]
    # The exited container (alias web too) is not among them, nor answered by name.
    assert r.resolve(world.ids["alpine-box"], "old", A).action == FORWARD
    assert r.resolve(world.ids["alpine-box"], world.ids["old"][:12], A).action == FORWARD


def test_short_ids(world):
    r = world.records("skynet")
    short = world.ids["notes-db"][:12]
    assert addrs(r.resolve(world.ids["alpine-box"], short, A)) == ["172.18.0.3"]
    assert addrs(r.resolve(world.ids["alpine-box"], short.upper() + ".", A)) == ["172.18.0.3"]
    assert r.resolve(world.ids["alpine-box"], world.ids["notes-db"][:11], A).action == FORWARD
    assert r.resolve(world.ids["alpine-box"], world.ids["worker"][:12], A).action == FORWARD  # not shared


def test_name_dot_network(world):
    sky, back = world.records("skynet"), world.records("backend")
    for q in ("notes-db.skynet", "NOTES-DB.SKYNET.", "db.skynet."):
        assert addrs(sky.resolve(world.ids["alpine-box"], q, A)) == ["172.18.0.3"]
    assert sky.resolve(world.ids["alpine-box"], "notes-db.backend", A).action == FORWARD
    assert sky.resolve(world.ids["alpine-box"], "api.backend", A).action == FORWARD  # not on backend itself
    assert addrs(sky.resolve(world.ids["api"], "api.backend", A)) == ["172.19.0.2"]
    assert addrs(sky.resolve(world.ids["api"], "worker.backend", A)) == ["172.19.0.3"]
    assert addrs(back.resolve(world.ids["api"], "api.skynet", A)) == ["172.18.0.4"]


def test_host_docker_internal_is_the_gateway(world):
    assert addrs(world.records("skynet").resolve(world.ids["alpine-box"], "host.docker.internal.", A)) == ["172.18.0.1"]
    assert addrs(world.records("backend").resolve(world.ids["worker"], "Host.Docker.Internal", A)) == ["172.19.0.1"]
    # a container on two networks: its first network's gateway
    assert addrs(world.records("backend").resolve(world.ids["api"], "host.docker.internal", A)) == ["172.18.0.1"]
    aaaa = world.records("skynet").resolve(world.ids["alpine-box"], "host.docker.internal", AAAA)
    assert aaaa.action == LOCAL and aaaa.records == ()


def test_ptr(world):
    sky = world.records("skynet")
    a = sky.resolve(world.ids["alpine-box"], "3.0.18.172.in-addr.arpa.", PTR)
    assert a.action == LOCAL and a.rtype == PTR and a.records == ("notes-db.skynet",)
    # worker's address is on a network alpine-box is not on; api is on it.
    assert sky.resolve(world.ids["alpine-box"], "3.0.19.172.in-addr.arpa", PTR).action == FORWARD
    assert sky.resolve(world.ids["api"], "3.0.19.172.in-addr.arpa", PTR).records == ("worker.backend",)
    assert sky.resolve(world.ids["alpine-box"], "9.9.18.172.in-addr.arpa", PTR).action == FORWARD
    assert sky.resolve(world.ids["alpine-box"], "x.0.18.172.in-addr.arpa", PTR).action == FORWARD


def test_other_types_for_our_names_are_empty_noerror(world):
    r = world.records("skynet")
    for qtype in (AAAA, 15, 16, 255):
        a = r.resolve(world.ids["alpine-box"], "notes-db", qtype)
        assert a.action == LOCAL and a.records == (), qtype
    assert r.resolve(world.ids["alpine-box"], "3.0.18.172.in-addr.arpa", A).records == ()


def test_refused_for_a_querier_with_no_user_network(world):
    """The querier is the container whose 127.0.0.11 the query came in on."""
    r = world.records("skynet")
    assert r.resolve("0" * 64, "notes-db", A).action == REFUSED  # unknown (removed)
    assert r.resolve(world.ids["old"], "notes-db", A).action == REFUSED  # exited: no live endpoint
    assert r.resolve(world.ids["legacy"], "example.com", A).action == REFUSED  # default bridge only
    # on another user network only: answered, with that network's names (its resolver moved)
    assert addrs(r.resolve(world.ids["worker"], "api", A)) == ["172.19.0.2"]
    assert r.resolve(world.ids["worker"], "notes-db", A).action == FORWARD


def test_each_container_is_served_by_its_first_user_network(world):
    sky, back, bridge = world.records("skynet"), world.records("backend"), world.records("bridge")
    for r in (sky, back, bridge):
        r.refresh()
    ids = world.ids
    assert set(sky.owned()) == {ids[n] for n in ("alpine-box", "notes-db", "api", "web1", "web2", "web3")}
    assert set(back.owned()) == {ids["worker"]}
    assert bridge.owned() == {}
    assert ids["old"] not in sky.owned()
    # the key is the endpoint's ID there (a restart gets a new one); the netns name on demand
    eps = world.store.endpoints_of(ids["api"])
    eps[0].endpoint_id = "e" * 64
    c = world.store.container(ids["api"])
    c.netns = "lab-api"
    with world.store.tx():
        world.store.put_endpoint(eps[0])
        world.store.put_container(c)
    sky.refresh()
    assert sky.owned()[ids["api"]] == "e" * 64
    assert sky.netns_of([ids["api"], ids["notes-db"]]) == {ids["api"]: "lab-api", ids["notes-db"]: ""}
    # the default bridge ahead of a user network does not matter; a later user network does not either
    world.container("both", ("bridge", "172.17.0.3", []), ("skynet", "172.18.0.9", []), ("backend", "172.19.0.9", []))
    sky.refresh()
    back.refresh()
    assert ids["both"] in sky.owned() and ids["both"] not in back.owned()


def test_default_bridge_has_no_names(world):
    assert world.records("bridge").resolve(world.ids["legacy"], "legacy", A).action == REFUSED
    r = world.records("skynet")
    assert r.resolve(world.ids["alpine-box"], "legacy", A).action == FORWARD
    # Even a container on the default bridge and a user network sees no legacy names.
    world.container("both", ("bridge", "172.17.0.3", []), ("skynet", "172.18.0.9", []))
    assert r.resolve(world.ids["both"], "legacy-alias", A).action == FORWARD
    assert addrs(r.resolve(world.ids["both"], "db", A)) == ["172.18.0.3"]


def test_answers_follow_each_store_write(world):
    store, r = world.store, world.records("skynet")
    assert addrs(r.resolve(world.ids["alpine-box"], "db", A)) == ["172.18.0.3"]
    gen = r.generation
    # stop: the endpoint loses its address
    eps = store.endpoints_of(world.ids["notes-db"])
    eps[0].ip = None
    with store.tx():
        store.put_endpoint(eps[0])
    assert r.resolve(world.ids["alpine-box"], "db", A).action == FORWARD
    assert r.generation != gen
    # start again, and connect worker to skynet with an alias
    eps[0].ip = "172.18.0.3"
    with store.tx():
        store.put_endpoint(eps[0])
        store.put_endpoint(Endpoint(container_id=world.ids["worker"], network_id=world.nets["skynet"].id,
                                    position=1, ip="172.18.0.8", aliases=["db"]))
    assert addrs(r.resolve(world.ids["alpine-box"], "db", A)) == ["172.18.0.3", "172.18.0.8"]
    assert addrs(r.resolve(world.ids["alpine-box"], "worker", A)) == ["172.18.0.8"]
    # rename
    c = store.container(world.ids["notes-db"])
    c.name = "database"
    with store.tx():
        store.put_container(c)
    assert addrs(r.resolve(world.ids["alpine-box"], "database", A)) == ["172.18.0.3"]
    assert r.resolve(world.ids["alpine-box"], "notes-db", A).action == FORWARD
    assert r.resolve(world.ids["alpine-box"], "3.0.18.172.in-addr.arpa", PTR).records == ("database.skynet",)
    # rm
    with store.tx():
        store.delete_container(world.ids["notes-db"])
    assert r.resolve(world.ids["alpine-box"], "database", A).action == FORWARD
    assert addrs(r.resolve(world.ids["alpine-box"], "db", A)) == ["172.18.0.8"]


def test_removed_network_refuses(world):
    r = world.records("backend")
    assert addrs(r.resolve(world.ids["worker"], "api", A)) == ["172.19.0.2"]
    with world.store.tx():
        world.store.delete_network(world.nets["backend"].id)
    assert r.resolve(world.ids["worker"], "api", A).action == REFUSED


def test_network_connect_links_name_a_container_for_the_linking_one_only(world):
    """`network connect --link notes-db:c1 skynet alpine-box`: alpine-box (and only it)
    resolves c1 to notes-db's address on skynet (Docker's endpoint alias)."""
    c = world.store.container(world.ids["alpine-box"])
    c.net_links = {world.nets["skynet"].id: ["notes-db:c1"], world.nets["backend"].id: ["worker:w"]}
    with world.store.tx():
        world.store.put_container(c)
    r = world.records("skynet")
    box, api = world.ids["alpine-box"], world.ids["api"]
    assert addrs(r.resolve(box, "c1", A)) == ["172.18.0.3"]
    assert addrs(r.resolve(box, "C1.", A)) == ["172.18.0.3"]
    assert r.resolve(api, "c1", A).action == FORWARD  # another querier: not its name
    assert addrs(r.resolve(box, "notes-db", A)) == ["172.18.0.3"]  # names still answer
    assert r.resolve(box, "w", A).action == FORWARD  # a link on a network it is not on
    assert r.view(box) != r.view(api)  # the server caches per view
