"""nsbridge.probe on real namespaces: each probe is made in-process from inside a
container's namespace and checked against what a real ping/connect/lookup does
from the same place (a spawned `ping`, a python connect, `getent`)."""
from __future__ import annotations

import os
import threading

from nsbridge import probe
from tests.integration.helpers import ip_of
from tests.integration.test_ports import serve_tcp, serve_udp

NOWHERE = "192.0.2.1"  # TEST-NET-1: the sandbox host has no route to it


def netns(sb, name: str) -> str:
    return f"/run/netns/{sb.name}-{name}"


def files(sb, name: str) -> tuple[str, str]:
    cid = sb.cli("inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()
    d = os.path.join(sb.root, "containers", cid)
    return os.path.join(d, "resolv.conf"), os.path.join(d, "hosts")


def ping_ok(sb, ctr: str, target: str) -> bool:
    return sb.cli("exec", ctr, "/usr/bin/ping", "-c", "1", "-W", "1", target).returncode == 0


def test_icmp_tcp_udp_from_a_container(sb):
    sb.cli("network", "create", "skynet", check=True)
    serve_tcp(sb, "web", 8000, "--network", "skynet")
    serve_udp(sb, "dns", 5000, "--network", "skynet")
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    web, dns = ip_of(sb, "web"), ip_of(sb, "dns")
    here = netns(sb, "client")
    before = os.readlink("/proc/thread-self/ns/net")

    r = probe.icmp(here, web)
    assert r.ok and r.reason == probe.OK and r.detail == f"echo reply from {web}" and r.rtt_ms > 0, r
    assert ping_ok(sb, "client", web)
    r = probe.tcp(here, web, 8000)
    assert (r.ok, r.detail, r.addresses) == (True, "connected", [web]), r
    r = probe.tcp(here, web, 8001)
    assert (r.ok, r.detail, r.reason) == (False, "connection refused", probe.REFUSED), r
    r = probe.udp(here, dns, 5000, b"ping")
    assert r.ok and r.detail.startswith("answered ("), r
    r = probe.udp(here, dns, 5001, b"ping")
    assert (r.ok, r.detail) == (False, "connection refused"), r
    # the thread came back to where it was
    assert os.readlink("/proc/thread-self/ns/net") == before


def test_silence_unreachable_and_no_route_are_told_apart(sb):
    sb.cli("network", "create", "--subnet", "10.77.0.0/24", "lab", check=True)
    sb.cli("run", "-d", "--name", "box", "--network", "lab", "alpine", check=True)
    here = netns(sb, "box")
    # nobody at .200: ARP gets no answer, nothing comes back
    r = probe.icmp(here, "10.77.0.200", timeout=0.5)
    assert (r.ok, r.reason, r.detail) == (False, probe.TIMEOUT, "no answer within 0.5 s"), r
    assert not ping_ok(sb, "box", "10.77.0.200")
    r = probe.tcp(here, "10.77.0.200", 80, timeout=0.5)
    assert (r.reason, r.detail) == (probe.TIMEOUT, "no answer within 0.5 s"), r
    # the gateway (the sandbox host) has no route on: it answers with an ICMP error
    r = probe.icmp(here, NOWHERE)
    assert (r.ok, r.reason) == (False, probe.UNREACHABLE), r
    assert r.detail == "destination unreachable (network unreachable) from 10.77.0.1", r
    assert "Unreachable" in sb.cli("exec", "box", "/usr/bin/ping", "-c", "1", "-W", "1", NOWHERE).stdout
    # from the sandbox host itself the kernel refuses to send at all
    host = f"/run/netns/{sb.name}"
    r = probe.icmp(host, NOWHERE)
    assert (r.ok, r.reason, r.detail) == (False, probe.NO_ROUTE, "network is unreachable"), r
    assert "Network is unreachable" in sb.host_run("ping", "-c", "1", "-W", "1", NOWHERE).stderr
    r = probe.tcp(host, NOWHERE, 80)
    assert (r.reason, r.detail) == (probe.NO_ROUTE, "network is unreachable"), r
    # a container with no network at all
    sb.cli("run", "-d", "--name", "alone", "--network", "none", "alpine", check=True)
    r = probe.icmp(netns(sb, "alone"), "10.77.0.1")
    assert r.reason == probe.NO_ROUTE, r


def test_resolve_follows_the_containers_files(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "old", "alpine", check=True)  # default bridge: no resolver
    sb.cli("run", "-d", "--name", "linked", "--link", "old:legacy", "alpine", check=True)
    db = ip_of(sb, "db")
    resolv, hosts = files(sb, "web")
    r = probe.resolve(netns(sb, "web"), "db", resolv, hosts)
    assert (r.ok, r.addresses, r.detail) == (True, [db], f"resolved to {db}"), r
    assert sb.cli("exec", "web", "getent", "ahostsv4", "db").stdout.split()[0] == db
    # an unknown name goes upstream; a sandbox has none: the resolver says SERVFAIL
    r = probe.resolve(netns(sb, "web"), "nosuchbox", resolv, hosts)
    assert (r.ok, r.reason, r.detail) == (False, probe.DNS_ERROR, "SERVFAIL from 127.0.0.11"), r
    assert sb.cli("exec", "web", "getent", "ahostsv4", "nosuchbox").returncode != 0
    # on the default bridge only /etc/hosts (--link) names anything
    resolv, hosts = files(sb, "linked")
    r = probe.resolve(netns(sb, "linked"), "legacy", resolv, hosts)
    assert (r.ok, r.addresses) == (True, [ip_of(sb, "old")]) and "hosts file" in r.detail, r
    r = probe.resolve(netns(sb, "linked"), "db", resolv, hosts, timeout=0.5)
    assert not r.ok and r.reason != probe.OK, r
    assert sb.cli("exec", "linked", "getent", "ahostsv4", "db").returncode != 0


def test_probes_from_many_threads_keep_their_namespaces(sb):
    sb.cli("network", "create", "skynet", check=True)
    serve_tcp(sb, "web", 8000, "--network", "skynet")
    sb.cli("run", "-d", "--name", "c1", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "c2", "--network", "none", "alpine", check=True)
    web = ip_of(sb, "web")
    results: list[probe.ProbeResult] = []

    def one() -> None:
        results.append(probe.tcp(netns(sb, "c1"), web, 8000))
        # from a namespace with no route there, the same thread in between
        results.append(probe.tcp(netns(sb, "c2"), web, 8000, timeout=0.3))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((r.ok, r.reason) for r in results) == [(False, probe.NO_ROUTE)] * 8 + [(True, probe.OK)] * 8


def stub_server(sock, answers: dict[str, str], stop: threading.Event) -> None:
    """A dnslib stub on SOCK: A records from ANSWERS, NXDOMAIN for the rest."""
    from dnslib import QTYPE, RCODE, RR, A, DNSRecord

    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        q = DNSRecord.parse(data)
        a = q.reply()
        name = str(q.q.qname).rstrip(".")
        if name in answers:
            a.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(answers[name])))
        else:
            a.header.rcode = RCODE.NXDOMAIN
        sock.sendto(a.pack(), peer)


def test_resolve_search_list_nxdomain_and_dead_server(sb, tmp_path):
    """resolv.conf's search list and ndots, NXDOMAIN, and a nameserver that is
    not there, against a stub listening inside the container's own namespace."""
    import socket

    sb.cli("run", "-d", "--name", "box", "--network", "none", "alpine", check=True)
    here = netns(sb, "box")
    sock = probe.open_socket(here, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    stop = threading.Event()
    t = threading.Thread(target=stub_server, args=(sock, {"db.lab.example": "10.9.0.5"}, stop))
    t.start()
    try:
        conf = tmp_path / "resolv.conf"
        conf.write_text("search lab.example\nnameserver 127.0.0.1\n")
        r = probe.resolve(here, "db", str(conf))
        assert (r.ok, r.addresses) == (True, ["10.9.0.5"]), r
        r = probe.resolve(here, "web", str(conf))
        assert (r.ok, r.reason, r.detail) == (False, probe.NXDOMAIN, "NXDOMAIN"), r
        conf.write_text("nameserver 127.0.0.2\n")  # nobody there: ICMP port unreachable
        r = probe.resolve(here, "db", str(conf))
        assert (r.ok, r.reason, r.detail) == (False, probe.REFUSED, "connection refused (127.0.0.2:53)"), r
    finally:
        stop.set()
        t.join()
        sock.close()
