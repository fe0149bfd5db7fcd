"""Published ports on the real kernel (issue 5): DNAT only, no userland proxy.

Reached with real TCP and UDP traffic from a "LAN client" namespace wired to
the sandbox host, from the sandbox host itself (its LAN address, the bridge's,
and 127.0.0.1), and from containers through the host's address (hairpin);
Docker's texts for `ps`, `port`, `inspect` and the errors; a failed `run`
leaves nothing; stop/start, rm and network rm leave exactly the ruleset they
found. Extra namespaces are named after the sandbox (its prefix), so that
`system reset` removes them even when a test fails half-way.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest

from tests.integration.helpers import TCP_SERVER, ip_of, tcp_client, wait_listening

LAN_HOST, LAN_CLIENT = "192.0.2.1", "192.0.2.10"  # TEST-NET-1, only inside our namespaces

UDP_SERVER = (
    "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', int(sys.argv[1])))\n"
    "while True:\n d,a=s.recvfrom(2048); s.sendto(b'udp from '+socket.gethostname().encode()+b' saw '+a[0].encode(), a)"
)


def udp_client(host: str, port: int, timeout: float = 1.0, tries: int = 3) -> str:
    return (
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(%s)\n"
        "for i in range(%d):\n"
        " s.sendto(b'ping', ('%s', %d))\n"
        " try:\n  print(s.recv(200).decode()); break\n"
        " except socket.timeout:\n  pass\n"
        "else:\n raise SystemExit('no answer')" % (timeout, tries, host, port)
    )


# -- namespaces of the test's own, wired to the sandbox host ---------------------------------
class Peer:
    """A namespace playing another machine, joined to the sandbox host by a veth."""

    def __init__(self, sb, suffix: str, host_addr: str, peer_addr: str, plen: int = 24) -> None:
        self.sb = sb
        self.name = f"{sb.name}-{suffix}"
        self.host_if = f"v{suffix}"[:15]
        self.addr = peer_addr
        self.host_addr = host_addr
        self.procs: list[subprocess.Popen] = []
        sb.cli("network", "ls", check=True)  # the sandbox host exists from here on
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True)  # noqa: E731
        run("ip", "netns", "add", self.name)
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        run("ip", "-n", sb.name, "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        run("ip", "-n", sb.name, "addr", "add", f"{host_addr}/{plen}", "dev", self.host_if)
        run("ip", "-n", sb.name, "link", "set", self.host_if, "up")
        run("ip", "-n", self.name, "addr", "add", f"{peer_addr}/{plen}", "dev", "eth0")
        run("ip", "-n", self.name, "link", "set", "eth0", "up")

    def run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, timeout=timeout)

    def py(self, code: str, *args: str) -> subprocess.CompletedProcess:
        return self.run("python3", "-c", code, *args)

    def serve(self, code: str, *args: str, port: int, udp: bool = False) -> None:
        p = subprocess.Popen(["ip", "netns", "exec", self.name, "python3", "-c", code, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.run("ss", "-H", "-lun" if udp else "-ltn", f"sport = :{port}").stdout.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: nothing listening on {port}")

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        subprocess.run(["ip", "-n", self.sb.name, "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@contextlib.contextmanager
def peer(sb, suffix: str, host_addr: str, peer_addr: str, plen: int = 24):
    p = Peer(sb, suffix, host_addr, peer_addr, plen)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def lan(sb):
    with peer(sb, "lan", LAN_HOST, LAN_CLIENT) as p:
        yield p


def snapshot(sb) -> dict:
    """Everything a failed `run` must leave as it found it."""
    return {
        # `ip netns list`, this sandbox's only: other sandboxes may run beside this one
        "netns": [ln for ln in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
                  if ln.split()[0] == sb.name or ln.startswith(sb.name + "-")],
        "links": links(sb),
        "rules": rules(sb),
        "containers": sb.cli("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}} {{.Ports}}",
                             check=True).stdout,
    }


def links(sb) -> list[str]:
    """The sandbox host's devices and their bridge (states may change as a bridge settles)."""
    out = []
    for ln in sb.host_run("ip", "-o", "link", check=True).stdout.splitlines():
        words = ln.split()
        name = words[1].rstrip(":").split("@")[0]
        master = words[words.index("master") + 1] if "master" in words else ""
        out.append(f"{name} {master}".strip())
    return sorted(out)


def rules(sb) -> list[str]:
    return [ln for ln in sb.host_run("iptables-save", check=True).stdout.splitlines() if not ln.startswith("#")]


def serve_tcp(sb, name: str, port: int, *opts: str) -> None:
    sb.cli("run", "-d", "--name", name, *opts, "--", "python3", "-c", TCP_SERVER, str(port), check=True)
    wait_listening(sb, name, port)


def serve_udp(sb, name: str, port: int, *opts: str) -> None:
    sb.cli("run", "-d", "--name", name, *opts, "--", "python3", "-c", UDP_SERVER, str(port), check=True)
    deadline = time.monotonic() + 5
    while not sb.cli("exec", name, "ss", "-lunH", f"sport = :{port}").stdout.strip():
        assert time.monotonic() < deadline, f"{name} not listening on udp {port}"
        time.sleep(0.05)


def host_tcp(sb, ip: str, port: int, timeout: float = 2) -> subprocess.CompletedProcess:
    return sb.host_run("python3", "-c", tcp_client(ip, port, timeout))


# -- reachability ------------------------------------------------------------------------------
def test_published_tcp_port_reached_from_lan_host_loopback_and_containers(sb, lan):
    serve_tcp(sb, "web", 8000, "-p", "8080:8000")
    hello = f"hello from {sb.cli('inspect', '--format', '{{.Config.Hostname}}', 'web', check=True).stdout.strip()}"
    # another machine on the host's LAN
    assert lan.py(tcp_client(LAN_HOST, 8080)).stdout.strip() == hello
    # the host itself: its LAN address, the bridge's address, and 127.0.0.1 (no proxy listens)
    for ip in (LAN_HOST, "172.17.0.1", "127.0.0.1"):
        r = host_tcp(sb, ip, 8080)
        assert r.stdout.strip() == hello, (ip, r.stderr)
    assert not sb.host_run("ss", "-ltnH", "sport = :8080").stdout.strip(), "nothing may listen on the host port"
    # 127.0.0.1 works through route_localnet on the bridge only, not on every interface
    assert sb.host_run("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet").stdout.strip() == "1"
    assert sb.host_run("sysctl", "-n", "net.ipv4.conf.all.route_localnet").stdout.strip() == "0"
    assert sb.host_run("sysctl", "-n", f"net.ipv4.conf.{lan.host_if}.route_localnet").stdout.strip() == "0"
    # containers through the host's address (hairpin): same bridge, and another network
    sb.cli("run", "-d", "--name", "neighbour", "alpine", check=True)
    assert sb.cli("exec", "neighbour", "python3", "-c", tcp_client(LAN_HOST, 8080)).stdout.strip() == hello
    assert sb.cli("exec", "neighbour", "python3", "-c", tcp_client("172.17.0.1", 8080)).stdout.strip() == hello
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "faraway", "--network", "skynet", "alpine", check=True)
    assert sb.cli("exec", "faraway", "python3", "-c", tcp_client(LAN_HOST, 8080)).stdout.strip() == hello
    # ...while skynet still cannot reach the container directly (isolation holds)
    assert sb.cli("exec", "faraway", "python3", "-c", tcp_client(ip_of(sb, "web"), 8000, 1)).returncode != 0
    # Docker's ps and port
    ps = sb.cli("ps", "--format", "{{.Names}} {{.Ports}}", check=True).stdout.splitlines()
    assert "web 0.0.0.0:8080->8000/tcp" in ps
    assert sb.cli("port", "web", check=True).stdout == "8000/tcp -> 0.0.0.0:8080\n"
    assert sb.cli("port", "web", "8000", check=True).stdout == "0.0.0.0:8080\n"
    assert sb.cli("port", "web", "8000/tcp", check=True).stdout == "0.0.0.0:8080\n"
    r = sb.cli("port", "web", "80")
    assert r.returncode == 1 and r.stderr == "Error: No public port '80' published for web\n"


def test_published_udp_port(sb, lan):
    serve_udp(sb, "dns", 5000, "-p", "5353:5000/udp", "-p", "127.0.0.1:9090:5000/udp")
    name = sb.cli("inspect", "--format", "{{.Config.Hostname}}", "dns", check=True).stdout.strip()
    r = lan.py(udp_client(LAN_HOST, 5353))
    assert r.stdout.strip() == f"udp from {name} saw {LAN_CLIENT}", r.stderr  # DNAT keeps the client's address
    r = sb.host_run("python3", "-c", udp_client("127.0.0.1", 9090))
    assert r.stdout.strip() == f"udp from {name} saw 172.17.0.1", r.stderr  # loopback sources are masqueraded
    assert sb.host_run("python3", "-c", udp_client(LAN_HOST, 5353)).stdout.startswith(f"udp from {name}")
    # bound to 127.0.0.1 only: not from the LAN, nor from the host's other addresses
    assert lan.py(udp_client(LAN_HOST, 9090, 0.3, 2)).returncode != 0
    assert sb.host_run("python3", "-c", udp_client(LAN_HOST, 9090, 0.3, 2)).returncode != 0
    sb.cli("run", "-d", "--name", "client", "alpine", check=True)
    # through the host from the same bridge, itself included (hairpin): seen from the gateway, as
    # through Docker's userland proxy (one masquerade per network, none per port)
    for ctr in ("client", "dns"):
        r = sb.cli("exec", ctr, "python3", "-c", udp_client(LAN_HOST, 5353))
        assert r.stdout.strip() == f"udp from {name} saw 172.17.0.1", (ctr, r.stderr)
    # a TCP port of the same number is another binding: not published
    assert lan.py(tcp_client(LAN_HOST, 5353, 0.5)).returncode != 0
    assert sb.cli("port", "dns", check=True).stdout == "5000/udp -> 0.0.0.0:5353\n5000/udp -> 127.0.0.1:9090\n"
    ports = sb.cli("ps", "--format", "{{.Ports}}", "--filter", "name=dns", check=True).stdout.strip()
    assert ports == "0.0.0.0:5353->5000/udp, 127.0.0.1:9090->5000/udp"


def test_two_containers_same_container_port_on_different_host_ports(sb, lan):
    # the tutorial: two copies of one app, on 8080 and 8081 of the host
    serve_tcp(sb, "app1", 80, "-p", "8080:80")
    serve_tcp(sb, "app2", 80, "--publish", "8081:80")
    h1 = sb.cli("inspect", "--format", "{{.Config.Hostname}}", "app1", check=True).stdout.strip()
    h2 = sb.cli("inspect", "--format", "{{.Config.Hostname}}", "app2", check=True).stdout.strip()
    for _ in range(2):
        assert lan.py(tcp_client(LAN_HOST, 8080)).stdout.strip() == f"hello from {h1}"
        assert lan.py(tcp_client(LAN_HOST, 8081)).stdout.strip() == f"hello from {h2}"
    ps = sb.cli("ps", "--format", "{{.Names}} {{.Ports}}", check=True).stdout.splitlines()
    assert sorted(ps) == ["app1 0.0.0.0:8080->80/tcp", "app2 0.0.0.0:8081->80/tcp"]


def test_ranges_random_ports_and_publish_all(sb, lan):
    r = sb.cli("run", "-d", "--name", "hello-dock2", "-p", "8081:80", "-p", "127.0.0.1:9090:90/udp",
               "-p", "7000-7001:7000-7001", "--", "python3", "-c", TCP_SERVER, "7001")
    assert r.returncode == 0, r.stderr
    wait_listening(sb, "hello-dock2", 7001)
    ps = sb.cli("ps", "--format", "{{.Ports}}", check=True).stdout.strip()
    assert ps == "0.0.0.0:7000-7001->7000-7001/tcp, 0.0.0.0:8081->80/tcp, 127.0.0.1:9090->90/udp"
    assert sb.cli("port", "hello-dock2", check=True).stdout.splitlines() == [
        "80/tcp -> 0.0.0.0:8081", "90/udp -> 127.0.0.1:9090", "7000/tcp -> 0.0.0.0:7000", "7001/tcp -> 0.0.0.0:7001",
    ]
    assert lan.py(tcp_client(LAN_HOST, 7001)).stdout.startswith("hello from")
    doc = json.loads(sb.cli("inspect", "hello-dock2", check=True).stdout)[0]
    assert doc["HostConfig"]["PortBindings"] == {
        "7000/tcp": [{"HostIp": "", "HostPort": "7000"}],
        "7001/tcp": [{"HostIp": "", "HostPort": "7001"}],
        "80/tcp": [{"HostIp": "", "HostPort": "8081"}],
        "90/udp": [{"HostIp": "127.0.0.1", "HostPort": "9090"}],
    }
    assert list(doc["NetworkSettings"]["Ports"]) == ["7000/tcp", "7001/tcp", "80/tcp", "90/udp"]
    assert doc["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8081"}]
    assert doc["NetworkSettings"]["Ports"]["90/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "9090"}]
    assert doc["Config"]["ExposedPorts"] == {"7000/tcp": {}, "7001/tcp": {}, "80/tcp": {}, "90/udp": {}}

    # -p CONTAINERPORT and -P --expose: random host ports, lowest free of the dynamic range
    serve_tcp(sb, "rand", 5000, "-P", "--expose", "5000", "--expose", "6000")
    serve_tcp(sb, "rand2", 5000, "-p", "5000")
    assert sb.cli("port", "rand", check=True).stdout == "5000/tcp -> 0.0.0.0:32768\n6000/tcp -> 0.0.0.0:32769\n"
    assert sb.cli("port", "rand2", "5000", check=True).stdout == "0.0.0.0:32770\n"
    assert lan.py(tcp_client(LAN_HOST, 32768)).stdout.startswith("hello from")
    assert lan.py(tcp_client(LAN_HOST, 32770)).stdout.startswith("hello from")
    doc = json.loads(sb.cli("inspect", "rand", check=True).stdout)[0]
    assert doc["HostConfig"]["PublishAllPorts"] is True
    assert doc["HostConfig"]["PortBindings"] == {}  # as Docker: -P ports are not bindings asked for
    assert doc["NetworkSettings"]["Ports"]["5000/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "32768"}]
    # exposed without -P: listed, not published
    sb.cli("run", "-d", "--name", "exposed", "--expose", "7000-7001", "--expose", "53/udp", "alpine", check=True)
    assert sb.cli("ps", "--format", "{{.Ports}}", "--filter", "name=exposed", check=True).stdout.strip() == (
        "53/udp, 7000-7001/tcp"
    )
    assert sb.cli("port", "exposed", check=True).stdout == ""
    doc = json.loads(sb.cli("inspect", "exposed", check=True).stdout)[0]
    assert doc["NetworkSettings"]["Ports"] == {"53/udp": None, "7000/tcp": None, "7001/tcp": None}
    # a host range for one container port: the first free one in it
    serve_tcp(sb, "inrange", 80, "-p", "8081-8083:80")
    assert sb.cli("port", "inrange", check=True).stdout == "80/tcp -> 0.0.0.0:8082\n"


def test_publish_all_of_5000_exposed_ports(sb, lan):
    """`run -P --expose 1-5000` hung for minutes holding the host lock (picking
    a port rescanned the range and the held list: cubic). Now it is done in
    well under the CLI's time limit, in Docker's order (container ports as
    strings: 1, 10, 100, 1000, 1001, ...), and the rules go in one batch and out
    again with the container, by position (by their text, each deletion was
    compared with every rule before it: with 1,000 published ports in front,
    minutes)."""
    order = sorted(f"{p}/tcp" for p in range(1, 5001))
    host = {key.split("/")[0]: 32768 + i for i, key in enumerate(order)}  # container port -> host port
    sb.cli("run", "-d", "--name", "front", "-p", "20000-20999:20000-20999", "alpine", check=True)
    empty = rules(sb)
    r = sb.cli("run", "-d", "--name", "many", "-P", "--expose", "1-5000", "--", "python3", "-c", TCP_SERVER, "4999",
               timeout=60)
    assert r.returncode == 0, r.stderr
    wait_listening(sb, "many", 4999)
    for cport in ("1", "10", "1000", "999", "5000"):
        assert sb.cli("port", "many", cport, check=True).stdout == f"0.0.0.0:{host[cport]}\n", cport
    assert host["999"] == 37767  # the last of the string order
    assert len(sb.cli("port", "many", check=True).stdout.splitlines()) == 5000
    assert lan.py(tcp_client(LAN_HOST, host["4999"])).stdout.startswith("hello from")
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    assert sum(1 for ln in nat.splitlines() if ln.startswith("-A NSBRIDGE ") and " -j DNAT " in ln) == 6000
    ps = sb.cli("ps", "--format", "{{.Ports}}", "--filter", "name=many", check=True).stdout
    assert ps.count("->") == 5000 and "0.0.0.0:32768->1/tcp" in ps
    # another -p is checked against them by index: a clash is found, a free port is taken
    r = sb.cli("run", "-d", "--name", "clash", "-p", "37767:80", "alpine")
    assert r.returncode == 125 and "Bind for 0.0.0.0:37767 failed: port is already allocated" in r.stderr
    assert sb.cli("run", "-d", "--name", "next", "-p", "80", "alpine", check=True).returncode == 0
    assert sb.cli("port", "next", check=True).stdout == "80/tcp -> 0.0.0.0:37768\n"
    sb.cli("rm", "-f", "many", "next", check=True, timeout=60)
    assert rules(sb) == empty


# -- errors leave nothing -----------------------------------------------------------------------
def test_port_already_allocated_leaves_nothing(sb):
    sb.cli("run", "-d", "--name", "hello-dock", "-p", "8080:80", "-p", "127.0.0.1:9090:90/udp", "alpine", check=True)
    before = snapshot(sb)
    for spec, bind in (("8080:80", "0.0.0.0:8080"), ("127.0.0.1:8080:80", "127.0.0.1:8080"),
                       ("9090:90/udp", "0.0.0.0:9090"), ("127.0.0.1:9090:9090/udp", "127.0.0.1:9090")):
        r = sb.cli("run", "-d", "--name", "portdup", "-p", "7777:7777", "-p", spec, "alpine")
        assert r.returncode == 125
        first, *rest = r.stderr.splitlines()
        prefix = "nsbridge: Error response from daemon: driver failed programming external connectivity on endpoint portdup ("
        assert first.startswith(prefix), first
        endpoint_id, tail = first[len(prefix):].split(")", 1)
        assert len(endpoint_id) == 64
        assert tail == f": Bind for {bind} failed: port is already allocated"
        assert rest == ["", "Run 'nsbridge run --help' for more information"]
        assert snapshot(sb) == before
    # the same port twice in one run
    r = sb.cli("run", "-d", "--name", "twice", "-p", "7070:80", "-p", "7070:81", "alpine")
    assert r.returncode == 125 and "Bind for 0.0.0.0:7070 failed: port is already allocated" in r.stderr
    assert snapshot(sb) == before
    # another protocol or another address is not a clash
    sb.cli("run", "-d", "--name", "udp8080", "-p", "8080:80/udp", "-p", "127.0.0.2:9090:90/udp", "alpine", check=True)
    # a stopped container keeps its host ports but does not hold them: another may take them
    sb.cli("stop", "hello-dock", check=True)
    sb.cli("run", "-d", "--name", "taker", "-p", "8080:80", "alpine", check=True)
    before = snapshot(sb)
    r = sb.cli("start", "hello-dock")
    assert r.returncode == 1
    assert "Bind for 0.0.0.0:8080 failed: port is already allocated" in r.stderr
    assert snapshot(sb) == before
    sb.cli("rm", "-f", "taker", check=True)
    sb.cli("start", "hello-dock", check=True)
    assert sb.cli("port", "hello-dock", "80", check=True).stdout == "0.0.0.0:8080\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "99999:80"], "invalid hostPort: 99999"),
        (["-p", "abc"], "invalid containerPort: abc"),
        (["-p", "8090-8089:80-81"], "invalid hostPort: 8090-8089"),
        (["-p", "8100-8102:80-81"], "invalid ranges specified for container and host Ports: 80-81 and 8100-8102"),
        (["-p", "8200:80/sctpx"], "invalid proto: sctpx"),
        (["-p", "8080:0"], "invalid containerPort: 0"),
        (["-p", "8080:65536"], "invalid containerPort: 65536"),
        (["-p", "1.2.3.4.5:8080:80"], "invalid IP address: 1.2.3.4.5"),
        (["--expose", "80:80"], "invalid port format for --expose: 80:80"),
        (["-P", "--expose", "abc"],
         'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax'),
    ],
)
def test_malformed_specs_leave_nothing(sb, args, message):
    sb.cli("run", "-d", "--name", "keep", "-p", "8080:80", "alpine", check=True)
    before = snapshot(sb)
    r = sb.cli("run", "-d", "--name", "bad", *args, "alpine")
    assert r.returncode == 125
    # the docker CLI's own errors: no "Error response from daemon"
    assert r.stderr == f"nsbridge: {message}\n\nRun 'nsbridge run --help' for more information\n"
    assert snapshot(sb) == before
    r = sb.cli("create", "--name", "bad", *args, "alpine")
    assert r.returncode == 125 and message in r.stderr
    assert snapshot(sb) == before


def test_container_mode_refuses_ports(sb):
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    before = snapshot(sb)
    r = sb.cli("run", "-d", "--name", "side", "--network", "container:web", "-p", "80:80", "alpine")
    assert r.returncode == 125
    assert "Error response from daemon: conflicting options: port publishing and the container type network mode" in r.stderr
    r = sb.cli("run", "-d", "--name", "side", "--network", "container:web", "--expose", "80", "alpine")
    assert "conflicting options: port exposing and the container type network mode" in r.stderr
    assert snapshot(sb) == before


# -- lifecycle: rules come and go exactly ----------------------------------------------------------
def test_stop_start_keeps_host_ports_and_rules_go_with_the_endpoint(sb, lan):
    empty = rules(sb)
    serve_tcp(sb, "web", 8000, "-p", "8080:8000", "-p", "8000", "-p", "5000/udp")
    published, old_ip = rules(sb), ip_of(sb, "web")
    assert len(published) == len(empty) + 5  # 3 DNAT; an accept per container port (masquerades are the network's)
    rand = sb.cli("port", "web", "8000", check=True).stdout.split()
    assert rand == ["0.0.0.0:8080", "0.0.0.0:32768"]
    sb.cli("stop", "-t", "1", "web", check=True)
    assert rules(sb) == empty
    assert lan.py(tcp_client(LAN_HOST, 8080, 0.5)).returncode != 0
    assert sb.cli("port", "web", check=True).stdout == ""
    assert sb.cli("ps", "-a", "--format", "{{.Names}}:{{.Ports}}", check=True).stdout.strip() == "web:"
    doc = json.loads(sb.cli("inspect", "web", check=True).stdout)[0]
    assert doc["NetworkSettings"]["Ports"] == {}
    assert doc["HostConfig"]["PortBindings"]["8000/tcp"] == [  # as asked for: Docker's "" for a picked port
        {"HostIp": "", "HostPort": "8080"}, {"HostIp": "", "HostPort": ""},
    ]
    # another container picking a random port does not take the stopped one's
    sb.cli("run", "-d", "--name", "other", "-p", "9000", "alpine", check=True)
    assert sb.cli("port", "other", check=True).stdout == "9000/tcp -> 0.0.0.0:32769\n"
    sb.cli("start", "web", check=True)
    wait_listening(sb, "web", 8000)
    assert sb.cli("port", "web", "8000", check=True).stdout.split() == rand
    for port in (8080, 32768):
        assert lan.py(tcp_client(LAN_HOST, port)).stdout.startswith("hello from"), port
    sb.cli("rm", "-f", "other", check=True)
    new_ip = ip_of(sb, "web")  # "other" took the old address meanwhile
    assert new_ip != old_ip
    assert sorted(rules(sb)) == sorted(r.replace(f"{old_ip}/", f"{new_ip}/").replace(f"{old_ip}:", f"{new_ip}:")
                                       for r in published)
    sb.cli("rm", "-f", "web", check=True)
    assert rules(sb) == empty


def test_rm_and_network_rm_remove_exactly_their_rules(sb, lan):
    baseline = rules(sb)
    sb.cli("network", "create", "-o", "com.docker.network.bridge.name=br-shop", "shop", check=True)
    with_net = rules(sb)
    serve_tcp(sb, "aa", 80, "--network", "shop", "-p", "8080:80", "-p", "8081:80")
    serve_tcp(sb, "bb", 80, "--network", "shop", "-p", "9090:80")
    serve_tcp(sb, "cc", 80, "-p", "7070:80")
    assert lan.py(tcp_client(LAN_HOST, 8081)).stdout.startswith("hello from")
    sb.cli("rm", "-f", "aa", check=True)
    assert lan.py(tcp_client(LAN_HOST, 8080, 0.5)).returncode != 0
    assert lan.py(tcp_client(LAN_HOST, 9090)).stdout.startswith("hello from")
    with_b_c = rules(sb)
    assert not any("8080" in r or "8081" in r for r in with_b_c)
    sb.cli("rm", "-f", "bb", "cc", check=True)
    assert rules(sb) == with_net
    sb.cli("network", "rm", "shop", check=True)
    assert rules(sb) == baseline


def test_host_binding_ipv4_option_sets_the_default_address(sb, lan):
    sb.cli("network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "local", check=True)
    serve_tcp(sb, "web", 80, "--network", "local", "-p", "8080:80", "-p", f"{LAN_HOST}:8081:80")
    assert sb.cli("port", "web", check=True).stdout == "80/tcp -> 127.0.0.1:8080\n80/tcp -> 192.0.2.1:8081\n"
    assert host_tcp(sb, "127.0.0.1", 8080).stdout.startswith("hello from")
    assert lan.py(tcp_client(LAN_HOST, 8080, 0.5)).returncode != 0
    assert lan.py(tcp_client(LAN_HOST, 8081)).stdout.startswith("hello from")
    assert host_tcp(sb, "127.0.0.1", 8081, 0.5).returncode != 0
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    assert "-A NSBRIDGE -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination" in nat


def test_ports_follow_the_first_network_and_move_on_disconnect(sb, lan):
    sb.cli("network", "create", "front", check=True)
    sb.cli("network", "create", "back", check=True)
    serve_tcp(sb, "web", 80, "--network", "front", "--network", "back", "-p", "8080:80")
    front_ip = ip_of(sb, "web", "front")
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    assert f"--dport 8080 -j DNAT --to-destination {front_ip}:80" in nat
    sb.cli("network", "disconnect", "front", "web", check=True)
    back_ip = ip_of(sb, "web", "back")
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    assert f"--to-destination {back_ip}:80" in nat and front_ip not in nat
    assert lan.py(tcp_client(LAN_HOST, 8080)).stdout.startswith("hello from")


def test_reconcile_restores_a_deleted_port_rule(sb):
    serve_tcp(sb, "web", 80, "-p", "8080:80")
    ip = ip_of(sb, "web")
    published = rules(sb)
    sb.host_run("iptables", "-t", "nat", "-D", "NSBRIDGE", "-p", "tcp", "-m", "tcp", "--dport", "8080",
                "-j", "DNAT", "--to-destination", f"{ip}:80", check=True)
    assert host_tcp(sb, "127.0.0.1", 8080, 0.5).returncode != 0
    out = sb.cli("system", "reconcile", check=True).stdout
    assert "restored rule -A NSBRIDGE -p tcp -m tcp --dport 8080" in out
    assert sorted(rules(sb)) == sorted(published)
    assert host_tcp(sb, "127.0.0.1", 8080).stdout.startswith("hello from")


def test_a_published_port_reads_neither_the_ruleset_nor_every_container(sb, monkeypatch):
    """`run -p` grew from 46 ms to 550 ms as published ports accumulated on the host:
    each one read the whole ruleset (iptables-save, 50 ms at a thousand ports) and
    decoded every container to list the ports held. Now run, stop, start and rm of a
    container with published ports do neither (tools/bench.py scale measures the cost
    at 10 and at 1,000 published ports); a ruleset that disagrees with the store is
    still handled, by a checked batch."""
    from nsbridge.engine.containers import RunSpec
    from nsbridge.kernel.firewall import Firewall
    from nsbridge.state.store import Store

    sb.cli("network", "ls", check=True)  # the sandbox host, with its base rules
    empty = rules(sb)
    e = sb.engine()
    try:
        for i in range(3):
            e.run(RunSpec(name=f"w{i}", publish=[f"{8000 + i}:80"]))
        e.stop("w2")  # keeps 8002 for itself
        read: list[str] = []
        save, containers = Firewall.save, Store.containers
        monkeypatch.setattr(Firewall, "save", lambda self: read.append("iptables-save") or save(self))
        monkeypatch.setattr(Store, "containers", lambda self: read.append("every container") or containers(self))
        e.run(RunSpec(name="new", publish=["9000:80", "80"]))
        assert [b.host_port for b in e.container("new").ports] == [9000, 32768]
        e.stop("new")
        e.start("new")
        with pytest.raises(Exception, match="Bind for 0.0.0.0:8001 failed: port is already allocated"):
            e.run(RunSpec(name="clash", publish=["8001:80"]))
        e.rm(["new"], force=True)
        assert read == []
        monkeypatch.undo()
        # a port rule removed behind the engine's back: the unchecked batch fails, the checked one does it
        e.run(RunSpec(name="again", publish=["9000:80"]))
        ip = e.container_inspect("again")["NetworkSettings"]["IPAddress"]
        sb.host_run("iptables", "-t", "nat", "-D", "NSBRIDGE", "-p", "tcp", "-m", "tcp", "--dport", "9000",
                    "-j", "DNAT", "--to-destination", f"{ip}:80", check=True)
        e.rm(["again", "w0", "w1", "w2"], force=True)
    finally:
        e.close()
    assert rules(sb) == empty


def test_create_then_start_and_attached_run_with_rm(sb, lan):
    empty = rules(sb)
    r = sb.cli("create", "--name", "later", "-p", "8080:8000", "-p", "9000", "--", "python3", "-c", TCP_SERVER, "8000")
    assert r.returncode == 0, r.stderr
    assert rules(sb) == empty  # created, not running: nothing published yet
    assert sb.cli("port", "later", check=True).stdout == ""
    sb.cli("start", "later", check=True)
    wait_listening(sb, "later", 8000)
    assert sb.cli("port", "later", check=True).stdout == "8000/tcp -> 0.0.0.0:8080\n9000/tcp -> 0.0.0.0:32768\n"
    assert lan.py(tcp_client(LAN_HOST, 8080)).stdout.startswith("hello from")
    sb.cli("restart", "-t", "1", "later", check=True)
    wait_listening(sb, "later", 8000)
    assert lan.py(tcp_client(LAN_HOST, 8080)).stdout.startswith("hello from")
    sb.cli("rm", "-f", "later", check=True)
    assert rules(sb) == empty
    # attached, --rm: the rules go when the command exits
    r = sb.cli("run", "--rm", "--name", "brief", "-p", "8081:80", "--", "true")
    assert r.returncode == 0, r.stderr
    assert rules(sb) == empty
    assert sb.cli("ps", "-a", "-q", check=True).stdout == ""


def test_container_reaches_itself_through_its_published_port(sb):
    serve_tcp(sb, "web", 8000, "-p", "8080:8000")
    r = sb.cli("exec", "web", "python3", "-c", tcp_client("172.17.0.1", 8080, 1))
    assert r.stdout.startswith("hello from")


def test_publish_all_publishes_the_images_exposed_port(sb, lan):
    # the tutorials' `docker run -d -P nginx` and `-p 8080:80 nginx`, with the image's stand-in
    sb.cli("run", "-d", "--name", "web", "-P", "nginx", check=True)
    sb.cli("run", "-d", "--name", "web2", "-p", "8080:80", "nginx", check=True)
    assert sb.cli("port", "web", check=True).stdout == "80/tcp -> 0.0.0.0:32768\n"
    doc = json.loads(sb.cli("inspect", "web", check=True).stdout)[0]
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert doc["HostConfig"]["PortBindings"] == {}
    fetch = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())"
    for port in (32768, 8080):
        deadline = time.monotonic() + 5
        while True:
            r = lan.py(fetch, f"http://{LAN_HOST}:{port}/")
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "Welcome to nginx!" in r.stdout, r.stderr


def test_a_picked_port_is_never_one_a_host_process_listens_on(sb):
    sb.cli("run", "-d", "--name", "hostsrv", "--network", "host", "--", "python3", "-c", TCP_SERVER, "32768", check=True)
    deadline = time.monotonic() + 5
    while not sb.host_run("ss", "-ltnH", "sport = :32768").stdout.strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sb.cli("run", "-d", "--name", "rand", "-p", "80", "-p", "53/udp", "alpine", check=True)
    assert sb.cli("port", "rand", check=True).stdout == "53/udp -> 0.0.0.0:32768\n80/tcp -> 0.0.0.0:32769\n"
