"""`nsbridge why A B`: every cause the issue lists, each set up for real and
checked against what a real ping / connect / lookup from A does, and the
evidence it gives (the rule whose counter went up by the probe, the routes,
the sockets, the link)."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from nsbridge.dns import embedded
from nsbridge.kernel import shaping
from nsbridge.kernel.ns import in_netns, netns_path
from tests.integration.helpers import ip_of
from tests.integration.test_ports import serve_tcp, serve_udp


def why(sb, *args: str) -> dict:
    p = sb.cli("why", *args, "--format", "json")
    v = json.loads(p.stdout)
    assert p.returncode == (0 if v["reachable"] else 1), p.stderr
    return v


def pings(sb, ctr: str, target: str) -> bool:
    return sb.cli("exec", ctr, "/usr/bin/ping", "-c", "1", "-W", "1", target).returncode == 0


def pings_again(sb, ctr: str, target: str, within: float = 6.0) -> bool:
    """After a link comes back up, the sender's ARP entry for the target may
    still be finishing the failed cycle it began while the link was down (its
    kernel then reports the host unreachable for up to 3 s): what a student
    sees too. Ping until an answer comes, as they would."""
    deadline = time.monotonic() + within
    while not pings(sb, ctr, target):
        if time.monotonic() > deadline:
            return False
    return True


def connects(sb, ctr: str, target: str, port: int) -> str:
    code = ("import socket,sys\ntry:\n socket.create_connection((%r, %d), timeout=1); print('connected')\n"
            "except OSError as e:\n print(type(e).__name__)") % (target, port)
    return sb.cli("exec", ctr, "python3", "-c", code).stdout.strip()


def rule_evidence(v: dict) -> list[str]:
    return [e["text"] for e in v["evidence"] if e["what"] == "rule"]


def counted_by_the_probe(sb, rule: str) -> None:
    """RULE ("-A CHAIN SPEC  (table): N -> M packets") went up by why's one
    probe, and M is the kernel's own counter for it (iptables-save -c)."""
    spec, _, tail = rule.partition("  (")
    table, _, counts = tail.partition("): ")
    before, _, after = counts.removesuffix(" packets").partition(" -> ")
    assert int(after) == int(before) + 1, rule
    saved = sb.host_run("iptables-save", "-c", "-t", table, check=True).stdout
    [line] = [ln for ln in saved.splitlines() if ln.endswith(spec)]
    assert line.startswith(f"[{after}:"), (rule, line)


def test_reachable_and_not_listening(sb):
    sb.cli("network", "create", "skynet", check=True)
    serve_tcp(sb, "web", 8000, "--network", "skynet")
    serve_udp(sb, "echo", 5000, "--network", "skynet")
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    web = ip_of(sb, "web")
    v = why(sb, "client", "web")
    assert v["reachable"] and v["target"] == web and v["cause"] == "" and pings(sb, "client", "web")
    assert any("-i br-" in t and "-j ACCEPT" in t for t in rule_evidence(v)), v  # the rule that let it through
    v = why(sb, "client", "web", "--tcp", "8000")
    assert v["reachable"] and connects(sb, "client", web, 8000) == "connected"
    v = why(sb, "client", "web", "--tcp", "8001")
    assert not v["reachable"] and v["cause"] == "not-listening" and connects(sb, "client", web, 8001) == "ConnectionRefusedError"
    assert v["sentence"] == "nothing listens on tcp/8001 in web: its kernel answered with a refusal."
    [socks] = [e["text"] for e in v["evidence"] if e["what"] == "sockets"]
    assert socks == "web listens on tcp: 127.0.0.11:53 (its embedded DNS), 0.0.0.0:8000", socks
    v = why(sb, "client", "echo", "--udp", "5000")
    assert v["reachable"], v
    v = why(sb, "client", "echo", "--udp", "5001")
    assert v["cause"] == "not-listening" and any("0.0.0.0:5000" in e["text"] for e in v["evidence"]), v
    text = sb.cli("why", "client", "web", "--tcp", "8001").stdout
    assert "NOT REACHABLE: nothing listens on tcp/8001 in web" in text and "$ ip netns exec" in text
    # the host, both ways
    assert why(sb, "client", "host")["reachable"]
    assert why(sb, "host", "web", "--tcp", "8000")["reachable"]


def test_different_networks_isolation_rule_counts_the_drop(sb):
    sb.cli("network", "create", "front", check=True)
    sb.cli("network", "create", "back", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "front", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "back", "alpine", check=True)
    db = ip_of(sb, "db")
    assert not pings(sb, "web", db)
    before = sb.host_run("iptables-save", "-c", check=True).stdout
    v = why(sb, "web", db)
    assert (v["reachable"], v["cause"]) == (False, "no-common-network"), v
    assert v["sentence"].startswith("web (on front) and db (on back) share no network: the isolation rule drops")
    [rule] = rule_evidence(v)
    assert rule.startswith("-A NSBRIDGE-ISOLATION-STAGE-2 -o br-") and rule.endswith("-j DROP  (filter): 1 -> 2 packets"), (rule, before)
    counted_by_the_probe(sb, rule)  # the counter it names is the kernel's
    # by name: db is on a network web is not on
    v = why(sb, "web", "db")
    assert v["cause"] == "name" and "db is on back, a network web is not on" in v["sentence"], v
    assert sb.cli("exec", "web", "getent", "hosts", "db").returncode != 0


def test_internal_network_and_icc_disabled(sb):
    sb.cli("network", "create", "--internal", "vault", check=True)
    sb.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet", check=True)
    sb.cli("network", "create", "front", check=True)
    sb.cli("run", "-d", "--name", "safe", "--network", "vault", "alpine", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "front", "alpine", check=True)
    sb.cli("run", "-d", "--name", "q1", "--network", "quiet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "q2", "--network", "quiet", "alpine", check=True)
    web, safe = ip_of(sb, "web"), ip_of(sb, "safe")
    # from an internal network: no default route, the kernel refuses to send
    assert "Network is unreachable" in sb.cli("exec", "safe", "/usr/bin/ping", "-c", "1", web).stderr
    v = why(sb, "safe", web)
    assert v["cause"] == "internal" and "are --internal: no default route" in v["sentence"], v
    assert any(e["what"] == "routes" and "default" not in e["text"] for e in v["evidence"]), v
    # into an internal network from another: dropped by a rule, which why names
    assert not pings(sb, "web", safe)
    v = why(sb, "web", safe)
    # (the first rule to count it is the isolation between the two bridges; why says vault is --internal too)
    assert v["cause"] == "no-common-network" and v["sentence"].endswith(
        "; vault is --internal too: only its own subnet reaches it."), v
    assert "-j DROP  (filter): " in rule_evidence(v)[0], v
    counted_by_the_probe(sb, rule_evidence(v)[0])
    # icc off: same network, but the bridge-to-same-bridge rule drops
    assert not pings(sb, "q1", "q2")
    v = why(sb, "q1", "q2")
    assert v["cause"] == "icc-disabled" and "enable_icc=false" in v["sentence"], v
    [rule] = rule_evidence(v)
    assert rule.startswith("-A NSBRIDGE-FORWARD -i br-") and "-j DROP" in rule, rule
    counted_by_the_probe(sb, rule)


def test_no_route_no_such_host_and_beyond_the_host(sb):
    sb.cli("network", "create", "--subnet", "10.77.0.0/24", "lab", check=True)
    sb.cli("run", "-d", "--name", "box", "--network", "lab", "alpine", check=True)
    sb.cli("run", "-d", "--name", "alone", "--network", "none", "alpine", check=True)
    assert "Network is unreachable" in sb.cli("exec", "alone", "/usr/bin/ping", "-c", "1", "10.77.0.2").stderr
    v = why(sb, "alone", "10.77.0.2")
    assert v["cause"] == "no-route" and "has no network (--network none)" in v["sentence"], v
    assert not pings(sb, "box", "10.77.0.99")
    v = why(sb, "box", "10.77.0.99")
    assert v["cause"] == "no-such-host" and "nothing on network lab has the address 10.77.0.99" in v["sentence"], v
    assert any(e["what"] == "neighbour" and ("INCOMPLETE" in e["text"] or "FAILED" in e["text"]) for e in v["evidence"])
    v = why(sb, "box", "192.0.2.1")  # TEST-NET: the sandbox host has no route there
    assert v["cause"] == "no-route" and "destination unreachable (network unreachable) from 10.77.0.1" in v["sentence"]


def test_names_default_bridge_disconnected_and_unknown(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "old1", "alpine", check=True)
    sb.cli("run", "-d", "--name", "old2", "alpine", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    # default bridge: no names, by address it works
    assert sb.cli("exec", "old1", "getent", "hosts", "old2").returncode != 0
    v = why(sb, "old1", "old2")
    assert v["cause"] == "name" and "the default bridge (bridge), which has no embedded DNS" in v["sentence"], v
    assert pings(sb, "old1", ip_of(sb, "old2")) and why(sb, "old1", ip_of(sb, "old2"))["reachable"]
    # stopped: its endpoint released, the name goes with it
    sb.cli("stop", "-t", "0", "db", check=True)
    assert sb.cli("exec", "web", "getent", "hosts", "db").returncode != 0
    v = why(sb, "web", "db")
    assert v["cause"] == "name" and "db is exited" in v["sentence"], v
    v = why(sb, "web", "nosuchbox")
    assert v["cause"] == "name" and "no container, alias or network name 'nosuchbox'" in v["sentence"], v
    v = why(sb, "db", "web")
    assert v["cause"] == "not-running" and v["target"] == "", v
    p = sb.cli("why", "nosuch", "web")
    assert p.returncode == 1 and p.stderr.strip() == "Error response from daemon: No such container: nosuch"
    p = sb.cli("why", "web", "db", "--tcp", "0")
    assert p.returncode == 1 and "invalid port '0'" in p.stderr
    p = sb.cli("why", "web", "db", "--timeout", "0")
    assert p.returncode == 1 and "invalid time '0'" in p.stderr


def resolver_of(sb, net: str) -> tuple[int, str]:
    r = json.loads(sb.cli("network", "inspect", net, check=True).stdout)[0]
    return r["Id"], json.loads(sb.cli("show", "--format", "json", net, check=True).stdout)["networks"][0]["resolver"]["pid"]


def resolves(sb, ctr: str, name: str) -> bool:
    return sb.cli("exec", ctr, "getent", "hosts", name).returncode == 0


def test_names_at_127_0_0_11_disconnected_hung_resolver_and_no_socket(sb):
    """A container's names are answered at 127.0.0.11 inside it, by a socket the
    resolver of its first user network holds there: why names that resolver, and
    says when it holds the socket but does not answer, or holds none."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("network", "create", "back", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("network", "connect", "back", "web", check=True)  # skynet stays its first user network
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    net_id, pid = resolver_of(sb, "skynet")
    v = why(sb, "web", "db")
    assert v["reachable"] and resolves(sb, "web", "db"), v
    # disconnected: the name goes with its last network
    sb.cli("network", "disconnect", "skynet", "db", check=True)
    assert not resolves(sb, "web", "db")
    v = why(sb, "web", "db")
    assert v["cause"] == "name" and "db is on no network (disconnected)" in v["sentence"], v
    [held] = [e for e in v["evidence"] if e["what"] == "resolver"]
    assert held["text"] == f"127.0.0.11:53 in web: held by the resolver of network skynet (pid {pid})", held
    sb.cli("network", "connect", "skynet", "db", check=True)
    assert resolves(sb, "web", "db")
    # a hung resolver: its socket is there, no answer comes
    os.kill(pid, signal.SIGSTOP)
    try:
        assert not resolves(sb, "web", "db")
        v = why(sb, "web", "db", "--timeout", "0.5")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert v["cause"] == "name" and v["sentence"].endswith(
        f"the resolver of network skynet (pid {pid}) holds 127.0.0.11:53 in web but did not answer within 0.5 s "
        f"(skynet is web's first user network; its log: {sb.root}/dns/{net_id[:12]}.log)."), v
    assert resolves(sb, "web", "db")
    # no socket: the resolver let web's go (as it does for a container it no longer serves)
    web_id = json.loads(sb.cli("inspect", "web", check=True).stdout)[0]["Id"]
    with in_netns(netns_path(sb.name)):  # the control socket lives in the host namespace
        assert embedded.request(embedded.control_address(net_id), f"drop {web_id}") == "ok"
    assert not resolves(sb, "web", "db")
    v = why(sb, "web", "db")
    assert v["cause"] == "name" and (
        "nothing listens on 127.0.0.11:53 in web: the resolver of network skynet "
        f"(pid {pid}), which answers there, holds no socket in it") in v["sentence"], v
    assert "connection refused (127.0.0.11:53)" in v["evidence"][0]["text"], v
    [held] = [e for e in v["evidence"] if e["what"] == "resolver"]
    assert held["text"] == "127.0.0.11:53 in web: nothing listens there", held
    assert "nothing listens on 127.0.0.11:53 in its namespace" in " ".join(
        json.loads(sb.cli("show", "--format", "json", "web", check=True).stdout)["containers"][0]["problems"])


def test_link_down_is_named_and_up_again_reaches(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    sb.cli("link", "db", "skynet", "down", check=True)
    assert not pings(sb, "web", "db")
    v = why(sb, "web", "db")
    assert v["cause"] == "link-down", v
    assert v["sentence"] == "db's link on network skynet is down (nsbridge link ... down): eth0 has no carrier, nothing passes."
    sb.cli("link", "db", "skynet", "up", check=True)
    assert pings_again(sb, "web", "db") and why(sb, "web", "db")["reachable"]
    # the sender's own link
    sb.cli("link", "web", "skynet", "down", check=True)
    v = why(sb, "web", ip_of(sb, "db"))
    assert v["cause"] == "link-down" and v["sentence"].startswith("web's link on network skynet is down"), v


@pytest.mark.skipif(shaping.netem_kernel_config() is False,
                    reason="DID NOT RUN: this kernel has no netem (CONFIG_NET_SCH_NETEM): no 100 % loss to explain")
def test_impairment_with_full_loss_is_named(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
    sb.cli("impair", "db", "skynet", "--loss", "100%", check=True)
    assert not pings(sb, "web", "db")
    v = why(sb, "web", "db")
    assert v["cause"] == "impairment" and "100 % loss" in v["sentence"], v
