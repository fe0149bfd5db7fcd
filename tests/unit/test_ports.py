"""-p/--expose grammar with Docker's error texts, host port allocation, and
the `ps`/`port`/`inspect` renderings of bindings (nsbridge/ports.py, pure)."""
from __future__ import annotations

import pytest

from nsbridge import ports
from nsbridge.errors import ClientError
from nsbridge.model import PortBinding
from nsbridge.ports import ApiPort, Held, PortAllocated, PortSpecError, PublishSpec


# -- -p ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, want",
    [
        ("80", [PublishSpec(80, "tcp", "", 0)]),
        ("8080:80", [PublishSpec(80, "tcp", "", 8080)]),
        ("0:80", [PublishSpec(80, "tcp", "", 0)]),
        (":80", [PublishSpec(80, "tcp", "", 0)]),
        ("127.0.0.1:9090:90/udp", [PublishSpec(90, "udp", "127.0.0.1", 9090)]),
        ("127.0.0.1::90", [PublishSpec(90, "tcp", "127.0.0.1", 0)]),
        ("8080:80/TCP", [PublishSpec(80, "tcp", "", 8080)]),
        ("8080:80/", [PublishSpec(80, "tcp", "", 8080)]),
        ("7000-7001:7000-7001", [PublishSpec(7000, "tcp", "", 7000), PublishSpec(7001, "tcp", "", 7001)]),
        ("8000-8002:80-82/udp", [PublishSpec(80, "udp", "", 8000), PublishSpec(81, "udp", "", 8001),
                                 PublishSpec(82, "udp", "", 8002)]),
        ("5000-5001", [PublishSpec(5000, "tcp", "", 0), PublishSpec(5001, "tcp", "", 0)]),
        ("8000-8010:80", [PublishSpec(80, "tcp", "", 8000, 8010)]),
        ("65535:65535", [PublishSpec(65535, "tcp", "", 65535)]),
    ],
)
def test_parse_publish(raw, want):
    assert ports.parse_publish(raw) == want


@pytest.mark.parametrize(
    "raw, msg",
    [
        ("99999:80", "invalid hostPort: 99999"),
        ("abc", "invalid containerPort: abc"),
        ("8090-8089:80-81", "invalid hostPort: 8090-8089"),
        ("8100-8102:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8100-8102"),
        ("8080:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8080"),
        ("8200:80/sctpx", "invalid proto: sctpx"),
        ("8200:80/sctp", "invalid proto: sctp (nsbridge publishes tcp and udp only)"),
        ("8080:0", "invalid containerPort: 0"),
        ("8080:70000", "invalid containerPort: 70000"),
        ("8080:-1", "invalid containerPort: -1"),
        ("8080:+80", "invalid containerPort: +80"),
        ("8080: 80", "invalid containerPort:  80"),
        ("8080:81-80", "invalid containerPort: 81-80"),
        ("0-10:80", "invalid hostPort: 0-10"),
        ("x:80", "invalid hostPort: x"),
        ("8080:", "no port specified: 8080:<empty>"),
        ("", "no port specified: <empty>"),
        ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
        ("[::1]:8080:80", "invalid IP address ::1: nsbridge publishes IPv4 ports only"),
        ("::1:8080:80", "invalid IP address ::1: nsbridge publishes IPv4 ports only"),
    ],
)
def test_parse_publish_errors(raw, msg):
    with pytest.raises(PortSpecError) as e:
        ports.parse_publish(raw)
    assert str(e.value) == msg
    # the CLI prints these itself, as docker's CLI does: no "Error response from daemon"
    assert isinstance(e.value, ClientError) and e.value.prefix == ""


# -- --expose ---------------------------------------------------------------------------
def test_parse_expose():
    assert ports.parse_expose("5000") == ["5000/tcp"]
    assert ports.parse_expose("53/udp") == ["53/udp"]
    assert ports.parse_expose("7000-7002") == ["7000/tcp", "7001/tcp", "7002/tcp"]
    specs, exposed = ports.parse_all(["8080:80"], ["5000", "5000/tcp", "90/udp"])
    assert specs == [PublishSpec(80, "tcp", "", 8080)]
    assert exposed == ["5000/tcp", "90/udp"]


@pytest.mark.parametrize(
    "raw, msg",
    [
        ("80:80", "invalid port format for --expose: 80:80"),
        ("abc", 'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax'),
        ("70000", 'invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out of range'),
        ("81-80", "invalid range format for --expose: 81-80, error: invalid range specified for port: 81-80"),
        ("80/sctpx", "invalid proto: sctpx"),
    ],
)
def test_parse_expose_errors(raw, msg):
    with pytest.raises(PortSpecError) as e:
        ports.parse_expose(raw)
    assert str(e.value) == msg


def test_publish_all_adds_exposed_ports_without_a_binding():
    specs = ports.parse_publish("8080:80")
    extra = ports.publish_all_specs(specs, ["80/tcp", "5000/tcp", "53/udp"])
    assert extra == [PublishSpec(5000, "tcp", "", 0), PublishSpec(53, "udp", "", 0)]


# -- allocation -------------------------------------------------------------------------------
def test_allocate_explicit_and_picked():
    specs = ports.parse_publish("8080:80") + ports.parse_publish("5000") + ports.parse_publish("127.0.0.1::53/udp")
    got = ports.allocate(specs, "", [], [], dynamic=(32768, 60999))
    assert got == [
        PortBinding(80, "tcp", "", 8080, "8080"),
        PortBinding(5000, "tcp", "", 32768, ""),
        PortBinding(53, "udp", "127.0.0.1", 32768, ""),  # another protocol: the same number is free
    ]


def test_allocate_picks_lowest_free_avoiding_held_kept_and_host_sockets():
    allocated = [Held("tcp", "", 32768)]
    avoid = [Held("tcp", "10.0.0.1", 32769), Held("tcp", "", 32770)]
    got = ports.allocate(ports.parse_publish("80") + ports.parse_publish("81"), "", allocated, avoid)
    assert [b.host_port for b in got] == [32771, 32772]
    # a host range picks within the range
    got = ports.allocate(ports.parse_publish("8000-8002:80"), "", [Held("tcp", "", 8000)], [])
    assert got == [PortBinding(80, "tcp", "", 8001, "8000-8002")]
    with pytest.raises(PortAllocated) as e:
        ports.allocate(ports.parse_publish("8000-8001:80"), "", [Held("tcp", "", 8000), Held("tcp", "", 8001)], [])
    assert str(e.value) == "all ports are allocated"


def test_allocate_conflicts_by_proto_and_overlapping_address():
    held = [Held("tcp", "", 8080), Held("udp", "127.0.0.1", 9090)]
    with pytest.raises(PortAllocated) as e:
        ports.allocate(ports.parse_publish("8080:80"), "", held, [])
    assert str(e.value) == "Bind for 0.0.0.0:8080 failed: port is already allocated"
    with pytest.raises(PortAllocated) as e:
        ports.allocate(ports.parse_publish("127.0.0.2:8080:80"), "", held, [])
    assert str(e.value) == "Bind for 127.0.0.2:8080 failed: port is already allocated"
    with pytest.raises(PortAllocated):
        ports.allocate(ports.parse_publish("9090:90/udp"), "", held, [])
    # other protocol, or disjoint specific addresses: fine
    assert ports.allocate(ports.parse_publish("8080:80/udp"), "", held, [])[0].host_port == 8080
    assert ports.allocate(ports.parse_publish("127.0.0.2:9090:90/udp"), "", held, [])[0].host_port == 9090
    # twice in one run
    with pytest.raises(PortAllocated):
        ports.allocate(ports.parse_publish("7070:80") + ports.parse_publish("7070:81"), "", [], [])
    # the network's host_binding_ipv4 is the default address
    got = ports.allocate(ports.parse_publish("8080:80"), "127.0.0.1", [Held("tcp", "10.1.1.1", 8080)], [])
    assert got == [PortBinding(80, "tcp", "127.0.0.1", 8080, "8080")]
    assert ports.allocate(ports.parse_publish("0.0.0.0:8081:80"), "", [], [])[0].host_ip == ""


class ReadOnce(list):
    """A held list that may be read once: a second read fails the test at once."""

    reads = 0

    def __iter__(self):
        self.reads += 1
        assert self.reads == 1, "the held list was read again (a rescan per pick: cubic)"
        return super().__iter__()


def test_allocate_5000_picks_reads_each_held_list_once_and_keeps_spec_order():
    """`run -P --expose 1-5000` hung for minutes: every candidate port of every
    pick rescanned the held lists. Now one read each, and the picks follow the
    order of the specs (exposed ports as given), lowest free first."""
    _, exposed = ports.parse_all([], ["1-5000"])
    specs = ports.publish_all_specs(ports.parse_publish("80"), exposed)
    assert [s.container_port for s in specs[:3]] == [1, 2, 3] and len(specs) == 4999  # 80/tcp has its -p
    allocated = ReadOnce(Held("tcp", "", p) for p in range(32768, 40000, 2))  # every even port below 40000
    avoid = ReadOnce([Held("tcp", "127.0.0.1", 40010), Held("udp", "", 40011)])  # a host socket clashes with 0.0.0.0
    got = ports.allocate(ports.parse_publish("80") + specs, "", allocated, avoid, dynamic=(32768, 60999))
    assert [b.container_port for b in got] == [80] + [p for p in range(1, 5001) if p != 80]
    picked = [b.host_port for b in got]
    free = [p for p in range(32768, 61000) if not (p < 40000 and p % 2 == 0) and p != 40010]
    assert picked == free[:5000]
    assert len(set(picked)) == 5000 and allocated.reads == avoid.reads == 1
    # a range with too few free ports: Docker's text, after as many reads
    with pytest.raises(PortAllocated) as e:
        ports.allocate(specs, "", ReadOnce(), ReadOnce(), dynamic=(40000, 44997))
    assert str(e.value) == "all ports are allocated"


def test_start_check_finds_a_kept_port_taken_meanwhile():
    kept = [PortBinding(80, "tcp", "", 8080), PortBinding(81, "udp", "127.0.0.1", 9090)]
    assert ports.first_taken(kept, [Held("tcp", "10.0.0.1", 8081), Held("udp", "127.0.0.2", 9090)]) is None
    assert ports.first_taken(kept, [Held("udp", "", 9090)]) == kept[1]
    assert ports.first_taken(kept, ReadOnce([Held("tcp", "10.0.0.1", 8080)])) == kept[0]


def test_spans_are_the_merged_host_ports_an_allocation_looks_at():
    specs = ports.parse_all(["8080:80", "8081:81", "9000-9010:90", "53:53/udp", "5000"], [])[0]
    assert ports.spans(specs, (32768, 60999)) == [
        ("tcp", 8080, 8081), ("tcp", 9000, 9010), ("tcp", 32768, 60999), ("udp", 53, 53)
    ]


def test_listening_sockets_from_proc_net():
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"
        "   1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n"
        "   2: 0100007F:0051 0200007F:1234 01 00000000:00000000 00:00000000 00000000     0        0 3\n"
    )
    assert ports.listening(tcp, "tcp") == [Held("tcp", "", 8080), Held("tcp", "127.0.0.1", 80)]
    udp = (
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
        "  1: 010012AC:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0 0\n"
    )
    assert ports.listening(udp, "udp") == [Held("udp", "172.18.0.1", 53)]


# -- display ----------------------------------------------------------------------------------
HELLO_DOCK2 = [
    PortBinding(80, "tcp", "", 8081),
    PortBinding(90, "udp", "127.0.0.1", 9090),
    PortBinding(7000, "tcp", "", 7000),
    PortBinding(7001, "tcp", "", 7001),
]


def test_ps_ports_like_docker():
    # containers.txt's hello-dock2, without the [::] twins (nsbridge publishes IPv4 only)
    assert ports.displayable_ports(ports.api_ports(HELLO_DOCK2, [])) == (
        "0.0.0.0:7000-7001->7000-7001/tcp, 0.0.0.0:8081->80/tcp, 127.0.0.1:9090->90/udp"
    )
    assert ports.displayable_ports(ports.api_ports([PortBinding(5000, "tcp", "", 32769)], ["5000/tcp"])) == (
        "0.0.0.0:32769->5000/tcp"
    )
    # exposed only: grouped by protocol; a gap splits the group
    got = ports.displayable_ports(ports.api_ports([], ["5000/tcp", "5001/tcp", "5003/tcp", "53/udp"]))
    assert got == "5000-5001/tcp, 53/udp, 5003/tcp"
    assert ports.displayable_ports([ApiPort(8080, "tcp", "0.0.0.0", 8080)]) == "0.0.0.0:8080->8080/tcp"


def test_port_lines_like_docker():
    assert ports.port_lines(HELLO_DOCK2, None, "hello-dock2") == [
        "80/tcp -> 0.0.0.0:8081",
        "90/udp -> 127.0.0.1:9090",
        "7000/tcp -> 0.0.0.0:7000",
        "7001/tcp -> 0.0.0.0:7001",
    ]
    assert ports.port_lines(HELLO_DOCK2, "80", "x") == ["0.0.0.0:8081"]
    assert ports.port_lines(HELLO_DOCK2, "90/udp", "x") == ["127.0.0.1:9090"]
    with pytest.raises(ClientError) as e:
        ports.port_lines(HELLO_DOCK2, "90", "web")
    assert str(e.value) == "Error: No public port '90' published for web"
    with pytest.raises(ClientError) as e:
        ports.port_lines([], "abc", "web")
    assert str(e.value) == 'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax'
    assert ports.port_lines([], None, "web") == []


def test_natural_sort():
    words = ["b10", "b9", "a", "10", "9", "b09", "b010"]
    assert sorted(words, key=ports.natural_key) == ["9", "10", "a", "b9", "b09", "b10", "b010"]


def test_port_maps_for_inspect():
    running, bindings, exposed = ports.port_maps(HELLO_DOCK2, ["5000/tcp"], True, set())
    assert list(running) == ["5000/tcp", "7000/tcp", "7001/tcp", "80/tcp", "90/udp"]  # Go sorts map keys as strings
    assert running["5000/tcp"] is None
    assert running["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8081"}]
    assert running["90/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "9090"}]
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8081"}]
    assert bindings["90/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "9090"}]
    assert list(exposed) == list(running)
    stopped, bindings2, exposed2 = ports.port_maps(HELLO_DOCK2, [], False, set())
    assert stopped == {} and bindings2 == bindings and len(exposed2) == 4
    # -P bindings are not in HostConfig.PortBindings (Docker allocates them at start)
    _, b, _ = ports.port_maps([PortBinding(5000, "tcp", "", 32768)], ["5000/tcp"], True, {"5000/tcp"})
    assert b == {}


def test_port_bindings_say_what_was_asked_for_ports_what_was_picked():
    got = ports.allocate(
        ports.parse_publish("80") + ports.parse_publish("8000-8002:81") + ports.parse_publish("8080:82"), "", [], [],
        dynamic=(32768, 60999),
    )
    running, bindings, _ = ports.port_maps(got, [], True, set())
    assert bindings == {
        "80/tcp": [{"HostIp": "", "HostPort": ""}],
        "81/tcp": [{"HostIp": "", "HostPort": "8000-8002"}],
        "82/tcp": [{"HostIp": "", "HostPort": "8080"}],
    }
    assert running["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "32768"}]
    assert running["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8000"}]
    # a binding recorded before `requested` was kept shows its port, as it did
    _, old, _ = ports.port_maps([PortBinding(80, "tcp", "", 32768)], [], True, set())
    assert old == {"80/tcp": [{"HostIp": "", "HostPort": "32768"}]}


def test_docker_allocates_in_string_order_of_the_port_keys():
    """-P with EXPOSE 80 and 443: Docker (nat.SortPortMap) walks "443/tcp" before
    "80/tcp", so 443 gets the first free host port; explicit host ports go first."""
    specs = ports.publish_all_specs([], ["80/tcp", "443/tcp"])
    got = ports.allocate(ports.docker_order(specs), "", [], [], (32768, 60999))
    assert [(b.container_port, b.host_port) for b in got] == [(443, 32768), (80, 32769)]
    fixed = ports.parse_publish("8080:80")
    order = ports.docker_order([*ports.publish_all_specs(fixed, ["5000/tcp", "9000/tcp", "80/tcp"]), *fixed])
    assert [s.key() for s in order] == ["80/tcp", "5000/tcp", "9000/tcp"] and not order[0].pick
