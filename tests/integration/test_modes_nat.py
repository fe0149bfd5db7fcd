"""Network modes and outbound NAT on the real kernel (issue 5).

`--network host` runs in the host's namespace, `none` has loopback only,
`container:NAME` shares NAME's namespace. Outbound: a namespace plays "the
internet" behind the sandbox host (the sandbox host gets a default route
toward it, in the test only); containers reach it masqueraded behind the
host's address, with their own address when masquerade is off, and not at
all from an --internal network. TCP and UDP.
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.helpers import TCP_SERVER, ip_of, tcp_client, wait_listening
from tests.integration.test_ports import LAN_CLIENT, LAN_HOST, UDP_SERVER, peer, rules, udp_client

# "The internet": the sandbox host's uplink 198.51.100.1/24 (TEST-NET-2) toward a router at
# .2 that also owns a far address 203.0.113.10 (TEST-NET-3). Only inside our namespaces.
UPLINK_HOST, UPLINK_ROUTER, FAR = "198.51.100.1", "198.51.100.2", "203.0.113.10"

PEER_SERVER = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
    "while True:\n c,a=s.accept(); c.sendall(b'seen from '+a[0].encode()+b'\\n'); c.close()"
)
# bound to the far address: an unbound UDP socket would answer from the uplink's address, which
# conntrack cannot match to the translated request
PEER_UDP = (
    "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[2], int(sys.argv[1])))\n"
    "while True:\n d,a=s.recvfrom(2048); s.sendto(b'seen from '+a[0].encode(), a)"
)


@pytest.fixture
def internet(sb):
    with peer(sb, "inet", UPLINK_HOST, UPLINK_ROUTER) as p:
        p.run("ip", "addr", "add", f"{FAR}/32", "dev", "lo")
        sb.host_run("ip", "route", "add", "default", "via", UPLINK_ROUTER, check=True)
        p.serve(PEER_SERVER, "80", port=80)
        p.serve(PEER_UDP, "53", FAR, port=53, udp=True)
        yield p


def seen_tcp(sb, ctr: str, timeout: float = 2) -> subprocess.CompletedProcess:
    return sb.cli("exec", ctr, "python3", "-c", tcp_client(FAR, 80, timeout))


def seen_udp(sb, ctr: str, timeout: float = 1, tries: int = 3) -> subprocess.CompletedProcess:
    return sb.cli("exec", ctr, "python3", "-c", udp_client(FAR, 53, timeout, tries))


# -- outbound ------------------------------------------------------------------------------------------
def test_outbound_is_masqueraded_behind_the_host(sb, internet):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    sb.cli("run", "-d", "--name", "box", "--network", "skynet", "alpine", check=True)
    for ctr in ("web", "box"):
        r = seen_tcp(sb, ctr)
        assert r.stdout.strip() == f"seen from {UPLINK_HOST}", (ctr, r.stderr)
        r = seen_udp(sb, ctr)
        assert r.stdout.strip() == f"seen from {UPLINK_HOST}", (ctr, r.stderr)
        assert sb.cli("exec", ctr, "ping", "-c1", "-W2", FAR).returncode == 0
    # the rule that did it: one per network, its counter moved
    nat = sb.host_run("iptables", "-t", "nat", "-v", "-x", "-n", "-L", "NSBRIDGE-POSTROUTING", check=True).stdout
    masq = [ln.split() for ln in nat.splitlines()[2:] if "MASQUERADE" in ln and "/16" in ln and "DNAT" not in ln]
    assert len(masq) == 2 and all(int(m[0]) >= 3 for m in masq), nat


def test_outbound_without_masquerade_keeps_the_container_address(sb, internet):
    sb.cli("network", "create", "--subnet", "10.77.0.0/24", "-o", "com.docker.network.bridge.enable_ip_masquerade=false",
           "plain", check=True)
    sb.cli("run", "-d", "--name", "direct", "--network", "plain", "alpine", check=True)
    ip = ip_of(sb, "direct")
    # with no route back, the answer is lost: proof the source was not rewritten
    assert seen_tcp(sb, "direct", 1).returncode != 0
    internet.run("ip", "route", "add", "10.77.0.0/24", "via", UPLINK_HOST)
    assert seen_tcp(sb, "direct").stdout.strip() == f"seen from {ip}"
    assert seen_udp(sb, "direct").stdout.strip() == f"seen from {ip}"
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    assert "-s 10.77.0.0/24 ! -o" not in nat  # (published ports' hairpin masquerade is -o the bridge)


def test_internal_network_cannot_leave_its_bridge(sb, internet):
    sb.cli("network", "create", "--internal", "vault", check=True)
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "safe", "--network", "vault", "--cap-add", "NET_ADMIN", "alpine", check=True)
    sb.cli("run", "-d", "--name", "mate", "--network", "vault", "--", "python3", "-c", TCP_SERVER, "8000", check=True)
    sb.cli("run", "-d", "--name", "out", "--network", "skynet", "--", "python3", "-c", TCP_SERVER, "8000", check=True)
    wait_listening(sb, "mate", 8000)
    wait_listening(sb, "out", 8000)
    # no default route is given; even with one added by hand (NET_ADMIN, as on Docker) the firewall stops it
    routes = sb.cli("exec", "safe", "ip", "route", check=True).stdout
    assert "default" not in routes
    gw = json.loads(sb.cli("network", "inspect", "vault", check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    sb.cli("exec", "safe", "ip", "route", "add", "default", "via", gw, check=True)
    assert seen_tcp(sb, "safe", 1).returncode != 0
    assert seen_udp(sb, "safe", 0.3, 2).returncode != 0
    assert sb.cli("exec", "safe", "ping", "-c1", "-W1", FAR).returncode != 0
    assert sb.cli("exec", "safe", "python3", "-c", tcp_client(ip_of(sb, "out"), 8000, 1)).returncode != 0
    # nor in: from another network or from beyond the host
    assert sb.cli("exec", "out", "python3", "-c", tcp_client(ip_of(sb, "mate"), 8000, 1)).returncode != 0
    internet.run("ip", "route", "add", "172.18.0.0/16", "via", UPLINK_HOST)
    assert internet.py(tcp_client(ip_of(sb, "mate"), 8000, 1)).returncode != 0
    # inside the bridge all is well
    assert sb.cli("exec", "safe", "python3", "-c", tcp_client(ip_of(sb, "mate"), 8000)).stdout.startswith("hello from")
    # published ports of a container on an internal network only: nothing to reach it from outside
    sb.cli("run", "-d", "--name", "hidden", "--network", "vault", "-p", "8080:8000", "alpine", check=True)
    assert sb.cli("port", "hidden", check=True).stdout == ""
    assert "8080" not in sb.host_run("iptables-save", "-t", "nat", check=True).stdout


# -- modes ---------------------------------------------------------------------------------------------
def test_host_mode_runs_in_the_host_namespace(sb):
    with peer(sb, "lan", LAN_HOST, LAN_CLIENT) as lan:
        before = rules(sb)
        r = sb.cli("run", "-d", "--name", "hostp", "--network", "host", "-p", "9000:80",
                   "--", "python3", "-c", TCP_SERVER, "9000")
        assert r.returncode == 0
        assert r.stderr == "WARNING: Published ports are discarded when using host network mode\n"
        assert len(r.stdout.strip()) == 64
        # listening in the sandbox host itself, reachable on the host's own addresses
        deadline = time.monotonic() + 5
        while not sb.host_run("ss", "-ltnH", "sport = :9000").stdout.strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert lan.py(tcp_client(LAN_HOST, 9000)).stdout.startswith("hello from")
        # it sees the host's interfaces
        links = sb.cli("exec", "hostp", "ip", "-o", "link", check=True).stdout
        assert "docker0" in links and lan.host_if in links
        host_links = sb.host_run("ip", "-o", "link", check=True).stdout
        assert sorted(ln.split(":")[1] for ln in links.splitlines()) == sorted(
            ln.split(":")[1] for ln in host_links.splitlines())
        # the -p was discarded: no rule, nothing to show
        assert rules(sb) == before
        assert sb.cli("port", "hostp", check=True).stdout == ""
        ps = sb.cli("ps", "--format", "{{.Names}}|{{.Ports}}|{{.Networks}}", check=True).stdout.strip()
        assert ps == "hostp||host"
        sb.cli("rm", "-f", "hostp", check=True)
        assert not sb.host_run("ss", "-ltnH", "sport = :9000").stdout.strip()


def test_none_mode_has_loopback_only(sb):
    sb.cli("run", "-d", "--name", "alone", "--network", "none", "--", "python3", "-c", TCP_SERVER, "8000", check=True)
    wait_listening(sb, "alone", 8000)
    links = sb.cli("exec", "alone", "ip", "-o", "link", check=True).stdout.splitlines()
    assert len(links) == 1 and links[0].startswith("1: lo:")
    addrs = sb.cli("exec", "alone", "ip", "-o", "-4", "addr", check=True).stdout
    assert "inet 127.0.0.1/8" in addrs and len(addrs.splitlines()) == 1
    assert sb.cli("exec", "alone", "ip", "route", check=True).stdout.strip() == ""
    assert sb.cli("exec", "alone", "python3", "-c", tcp_client("127.0.0.1", 8000)).stdout.startswith("hello from")
    r = sb.cli("exec", "alone", "python3", "-c", tcp_client("172.17.0.1", 8000, 1))
    assert r.returncode != 0 and "unreachable" in r.stderr
    assert sb.cli("exec", "alone", "python3", "-c", udp_client("172.17.0.1", 53, 0.3, 1)).returncode != 0
    ps = sb.cli("ps", "--format", "{{.Names}}|{{.Networks}}", check=True).stdout.strip()
    assert ps == "alone|none"
    # run -p with none: nothing published, no bridge touched
    sb.cli("run", "-d", "--name", "alone2", "--network", "none", "-p", "8080:80", "alpine", check=True)
    assert "8080" not in sb.host_run("iptables-save", "-t", "nat", check=True).stdout


def test_container_mode_shares_the_namespace(sb):
    sb.cli("run", "-d", "--name", "web", "--", "python3", "-c", TCP_SERVER, "8000", check=True)
    wait_listening(sb, "web", 8000)
    sb.cli("run", "-d", "--name", "sidecar", "--network", "container:web", "--", "python3", "-c", UDP_SERVER, "5000",
           check=True)
    web_addrs = sb.cli("exec", "web", "ip", "-o", "addr", check=True).stdout
    side_addrs = sb.cli("exec", "sidecar", "ip", "-o", "addr", check=True).stdout
    assert side_addrs == web_addrs and "172.17.0.2/16" in side_addrs
    # one loopback: the sidecar reaches web's server there, web reaches the sidecar's
    assert sb.cli("exec", "sidecar", "python3", "-c", tcp_client("127.0.0.1", 8000)).stdout.startswith("hello from")
    r = sb.cli("exec", "web", "python3", "-c", udp_client("127.0.0.1", 5000))
    assert r.stdout.startswith("udp from "), r.stderr
    # from outside, both servers answer on web's address
    sb.cli("run", "-d", "--name", "client", "alpine", check=True)
    assert sb.cli("exec", "client", "python3", "-c", udp_client("172.17.0.2", 5000)).stdout.startswith("udp from")
    ps = sb.cli("ps", "--format", "{{.Names}}|{{.Networks}}", "--filter", "name=sidecar", check=True).stdout.strip()
    assert ps == "sidecar|"
    # it goes when web goes
    sb.cli("stop", "-t", "1", "web", check=True)
    state = sb.cli("inspect", "--format", "{{.State.Status}}", "sidecar", check=True).stdout.strip()
    assert state == "exited"
