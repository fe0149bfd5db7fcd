"""Pure logic of the core: IPAM, validation, containers' files, tables,
names, argument splitting, the store. No root, no kernel."""
from __future__ import annotations

import ipaddress

import pytest

from nsbridge.engine import files, validate
from nsbridge.engine.names import random_name
from nsbridge.errors import Conflict, Forbidden, InvalidArgument, NotFound
from nsbridge.ipam import allocator, pools
from nsbridge.model import Container, Endpoint, IpamConfig, Network, mac_for, new_id, now_iso
from nsbridge.render import tables
from nsbridge.state.store import Store


# -- IPAM ------------------------------------------------------------------------------
def test_default_pools_in_docker_order():
    ps = list(pools.default_pools())
    assert str(ps[0]) == "172.17.0.0/16" and str(ps[14]) == "172.31.0.0/16"
    assert str(ps[15]) == "192.168.0.0/20" and str(ps[-1]) == "192.168.240.0/20"


def test_pick_pool_lowest_free_skipping_overlaps():
    taken = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    assert str(pools.pick_pool(taken)) == "172.19.0.0/16"
    # a freed pool is taken again (lowest free, not Docker's rotation)
    assert str(pools.pick_pool([ipaddress.IPv4Network("172.18.0.0/16")])) == "172.17.0.0/16"
    everything = [ipaddress.IPv4Network("172.16.0.0/12"), ipaddress.IPv4Network("192.168.0.0/16")]
    with pytest.raises(Conflict, match="could not find an available, non-overlapping IPv4 address pool"):
        pools.pick_pool(everything)


@pytest.mark.parametrize(
    "text,err",
    [
        ("notacidr", "Invalid subnet notacidr : invalid CIDR address: notacidr"),
        ("10.0.0.0/33", "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"),
        ("10.20.0.1/24", "host bits are set"),
        ("10.0.0.0/31", "too small"),
        ("10.0.0.0", "invalid CIDR"),
    ],
)
def test_subnet_validation(text, err):
    with pytest.raises(InvalidArgument, match=err.replace("(", r"\(")):
        pools.parse_subnet(text)


def test_allocate_lowest_free_and_reuse():
    taken = {"172.18.0.2", "172.18.0.4"}
    assert allocator.allocate("172.18.0.0/16", "172.18.0.1", None, taken, "x") == "172.18.0.3"
    assert allocator.allocate("10.10.0.0/24", "10.10.0.254", "10.10.0.128/25", set(), "x") == "10.10.0.128"
    with pytest.raises(Conflict, match="no available IPv4 addresses on this network's address pools: tiny"):
        allocator.allocate("10.50.0.0/30", "10.50.0.1", None, {"10.50.0.2"}, "tiny")


def test_requested_address_checks():
    with pytest.raises(InvalidArgument, match="does not belong to any of this network's subnets"):
        allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.99.0.5", set())
    with pytest.raises(Conflict, match="Address already in use"):
        allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.200", {"10.10.0.200"})
    with pytest.raises(Conflict):
        allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.1", set())
    assert allocator.check_requested("10.10.0.0/24", "10.10.0.1", "10.10.0.9", set()) == "10.10.0.9"


def test_mac_from_ip():
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_for("10.10.0.200") == "02:42:0a:0a:00:c8"


# -- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["x", "", "bad/name", "bad name", "-lead", "n" * 65, "bad!name"])
def test_bad_network_names(name):
    with pytest.raises(InvalidArgument):
        validate.network_name(name)


@pytest.mark.parametrize("name", ["bridge", "host", "none"])
def test_predefined_network_names(name):
    with pytest.raises(Forbidden, match=f"operation is not permitted on predefined {name} network"):
        validate.network_name(name)


def test_container_name_rule_and_docker_text():
    assert validate.container_name("web-1.a_b") == "web-1.a_b"
    with pytest.raises(InvalidArgument) as e:
        validate.container_name("x")
    assert str(e.value) == "Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


@pytest.mark.parametrize(
    "opts,err",
    [
        ({"com.docker.network.driver.mtu": "abc"}, 'strconv.Atoi: parsing "abc": invalid syntax'),
        ({"com.docker.network.driver.mtu": "10"}, "between 68 and 65535"),
        ({"com.docker.network.bridge.enable_icc": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ({"foo": "bar"}, "unknown network option foo"),
        ({"com.docker.network.bridge.name": "waytoolongbridgename0"}, "interface name"),
        ({"com.docker.network.bridge.host_binding_ipv4": "1.2.3"}, "invalid"),
    ],
)
def test_network_options(opts, err):
    with pytest.raises(InvalidArgument, match=err.replace("(", r"\(").replace(")", r"\)")):
        validate.network_options(opts)


def test_ipam_request_rules():
    with pytest.raises(InvalidArgument, match="every ip-range or gateway must have a corresponding subnet"):
        validate.ipam_request(None, "10.31.0.1", None)
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway 10.31.0.1"):
        validate.ipam_request("10.30.0.0/24", "10.31.0.1", None)
    with pytest.raises(InvalidArgument, match="no matching subnet for range 10.41.0.0/25"):
        validate.ipam_request("10.40.0.0/24", None, "10.41.0.0/25")
    req = validate.ipam_request("10.10.0.0/24", "10.10.0.254", "10.10.0.128/25")
    assert req.gateway == "10.10.0.254" and str(req.ip_range) == "10.10.0.128/25"


def test_network_mode_parsing():
    assert validate.network_mode([]).names == ["bridge"]
    assert validate.network_mode(["host"]).mode == "host"
    assert validate.network_mode(["container:web"]).container == "web"
    assert validate.network_mode(["a", "b", "a"]).names == ["a", "b"]
    with pytest.raises(InvalidArgument, match="private \\(none\\) mode"):
        validate.network_mode(["none", "skynet"])
    with pytest.raises(NotFound):
        validate.network_mode([""])


# -- containers' files -------------------------------------------------------------------------
def test_hosts_file_as_docker_writes_it():
    text = files.hosts_file([files.HostsEntry("10.1.2.3", ["foo"])], files.HostsEntry("172.17.0.7", ["f24c4023af55"]))
    assert text == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        "10.1.2.3\tfoo\n172.17.0.7\tf24c4023af55\n"
    )


def test_resolv_conf_variants():
    up = files.parse_resolv_conf("nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch lab.example\noptions edns0\n")
    assert up.nameservers == ["9.9.9.9"]
    assert files.resolv_conf("127.0.0.11", up, [], [], []) == (
        "search lab.example\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
    )
    # on a user network --dns servers are the resolver's upstreams, not lines; the user's ndots wins
    assert files.resolv_conf("127.0.0.11", up, ["1.1.1.1", "2001:db8::53"], ["x.example"], ["ndots:2"]) == (
        "search x.example\nnameserver 127.0.0.11\noptions ndots:2\n"
    )
    assert files.resolv_conf(None, up, ["1.1.1.1"], ["x.example"], []) == (
        "search x.example\nnameserver 1.1.1.1\noptions edns0\n"
    )


# -- tables -------------------------------------------------------------------------------------
def test_network_table_layout_matches_docker():
    rows = [["9516bc1e1b71", "bridge", "bridge", "local"], ["25b88e27441f", "host", "host", "local"]]
    out = tables.table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows)
    assert out.splitlines() == [
        "NETWORK ID     NAME      DRIVER    SCOPE",
        "9516bc1e1b71   bridge    bridge    local",
        "25b88e27441f   host      host      local",
    ]


@pytest.mark.parametrize(
    "secs,text",
    [(0.3, "Less than a second"), (1, "1 second"), (38, "38 seconds"), (61, "About a minute"),
     (600, "10 minutes"), (3600, "About an hour"), (7200, "2 hours"), (86400 * 3, "3 days")],
)
def test_human_duration(secs, text):
    assert tables.human_duration(secs) == text


def test_command_column_truncation():
    c = Container(id=new_id(), name="x1", created=now_iso(), cmd=["httpd", "-f", "-p", "80", "-h", "/www"])
    assert tables.command_text(c, False) == '"httpd -f -p 80 -h /…"'


def test_network_filters():
    n = Network(id="ab" * 32, name="lab", driver="bridge", created=now_iso(), labels={"course": "net101"})
    assert tables.network_matches(n, ["name=la", "driver=bridge"])
    assert tables.network_matches(n, ["label=course=net101"]) and tables.network_matches(n, ["label=course"])
    assert not tables.network_matches(n, ["label=course=other"])
    assert not tables.network_matches(n, ["driver=null"])


def test_random_names_are_docker_style_and_free():
    name = random_name({"boring_wozniak"})
    left, right = name.rstrip("0123456789").split("_")
    assert left and right
    assert random_name(lambda n: False) != "boring_wozniak"


# -- argument splitting ----------------------------------------------------------------------
def test_run_grammar_split():
    from nsbridge.cli.main import build_parser
    from nsbridge.cli.argsplit import split_global

    p = build_parser("run")
    argv, rest, dd = split_global(p, ["run", "-itd", "--name=web", "-p", "8080:80", "nginx", "ping", "-c1", "x"])
    assert argv == ["run", "-itd", "--name=web", "-p", "8080:80"] and rest == ["nginx", "ping", "-c1", "x"] and not dd
    argv, rest, dd = split_global(p, ["--root", "/r", "run", "-d", "--", "python3", "-m", "http.server"])
    assert argv == ["--root", "/r", "run", "-d"] and rest == ["python3", "-m", "http.server"] and dd
    a = p.parse_args(["run", "-itd", "--net=my_bridge", "--name=db"])
    assert a.interactive and a.tty and a.detach and a.network == ["my_bridge"] and a.name == "db"


# -- store --------------------------------------------------------------------------------------
def test_store_roundtrip_lookup_and_generation(tmp_path):
    st = Store(str(tmp_path / "state.db"))
    n = Network(id="ab" + "0" * 62, name="skynet", driver="bridge", created=now_iso(),
                ipam=IpamConfig("172.18.0.0/16", "172.18.0.1"), bridge="br-ab0000000000")
    c = Container(id="cd" + "1" * 62, name="web", created=now_iso())
    g0 = st.generation()
    with st.tx():
        st.put_network(n)
        st.put_container(c)
        st.put_endpoint(Endpoint(c.id, n.id, 0, ip="172.18.0.2", aliases=["w"]))
    assert st.generation() == g0 + 1
    assert st.find_network("skynet").ipam.gateway == "172.18.0.1"
    assert st.find_network("ab0").id == n.id and st.find_container("cd1").name == "web"
    assert st.find_container("/web").id == c.id
    assert st.taken_ips(n.id) == {"172.18.0.2"}
    assert st.endpoints_of(c.id)[0].aliases == ["w"]
    with pytest.raises(RuntimeError), st.tx():
        st.delete_container(c.id)
        raise RuntimeError("rolled back")
    assert st.find_container("web") is not None and st.generation() == g0 + 1
    st.close()
