"""Name resolution on the real kernel (issue 4's acceptance): queries from inside
containers (`getent`, `ping`, `nslookup`, `dig`, raw UDP/TCP) to Docker's embedded DNS
address, 127.0.0.11, answered there by the resolver of the container's first user
bridge; and containers' /etc/hosts and resolv.conf compared with Docker's (what Docker
20.10 printed for the same commands).

Nothing here talks to the machine's nameservers or any real network: upstream
resolvers are stubs this file runs in namespaces of its own (prefixed with the
sandbox's name, so the sandbox's leak check covers them), wired to the sandbox host
by veth pairs, and the sandbox's "host resolv.conf" is pointed at them.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from nsbridge.sandbox import Sandbox
from tests.integration.helpers import ip_of

# --- queries from inside a container ---------------------------------------------

def dig(sb: Sandbox, ctr: str, *args: str) -> tuple[str | None, list[str]]:
    """(rcode name, answer rdata) of `dig ARGS` run inside CTR."""
    p = sb.cli("exec", ctr, "dig", "+time=3", "+tries=1", *args)
    m = re.search(r"status: (\w+)", p.stdout)
    answers, on = [], False
    for line in p.stdout.splitlines():
        if line.startswith(";; ANSWER SECTION:"):
            on = True
        elif on and not line.strip():
            on = False
        elif on:
            answers.append(line.split()[-1])
    return (m.group(1) if m else None), answers


def getent(sb: Sandbox, ctr: str, name: str) -> str | None:
    """The address glibc resolves NAME to inside CTR, or None."""
    p = sb.cli("exec", ctr, "getent", "ahostsv4", name)
    return p.stdout.split()[0] if p.returncode == 0 and p.stdout else None


def cat(sb: Sandbox, ctr: str, path: str) -> str:
    return sb.cli("exec", ctr, "cat", path, check=True).stdout


def cid(sb: Sandbox, name: str) -> str:
    return sb.cli("inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


def resolver_of(sb: Sandbox, net: str) -> dict:
    out = sb.cli("network", "inspect", "--format", "{{json .NsbridgeResolver}}", net, check=True).stdout
    return json.loads(out)


def bridge_mac(sb: Sandbox, dev: str) -> str:
    return sb.host_run("cat", f"/sys/class/net/{dev}/address", check=True).stdout.strip()


HEAD = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)

# A stdlib-only DNS client for inside containers and namespaces (their python3 has no dnslib).
DNS_LIB = r"""
import os, socket, struct, sys
def query(name, qtype=1, qid=None):
    qid = int.from_bytes(os.urandom(2), "big") if qid is None else qid
    out = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack(">HH", qtype, 1)
def parse(resp):
    qid, flags, qd, an = struct.unpack(">HHHH", resp[:8])
    i = 12
    for _ in range(qd):
        while resp[i]:
            i += resp[i] + 1
        i += 5
    addrs = []
    for _ in range(an):
        i += 2 if resp[i] >= 0xC0 else len(resp[i:].split(b"\0", 1)[0]) + 1
        rtype, _c, _t, rdlen = struct.unpack(">HHIH", resp[i:i + 10])
        i += 10
        if rtype == 1:
            addrs.append(socket.inet_ntoa(resp[i:i + 4]))
        i += rdlen
    return qid, flags & 0xF, addrs
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
"""

UDP_QUERY = DNS_LIB + r"""
server, name = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((server, 53))  # connected: "port unreachable" comes back as an error
q = query(name)
s.send(q)
try:
    qid, rcode, addrs = parse(s.recv(4096))
except ConnectionRefusedError:
    sys.exit(print("no DNS server there"))
assert qid == struct.unpack(">H", q[:2])[0]
print(RCODES.get(rcode, rcode), *addrs)
"""


# --- namespaces of our own, wired to the sandbox host ---------------------------

STUB = r"""
import selectors, socket, sys
from dnslib import A, QTYPE, RCODE, RR, DNSRecord
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:  # ADDRESS=ANSWER (example.test's address) or ADDRESS=silent
    addr, _, answer = spec.partition("=")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    sel.register(s, selectors.EVENT_READ, answer)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        data, peer = key.fileobj.recvfrom(4096)
        q = DNSRecord.parse(data)
        print(key.fileobj.getsockname()[0], peer[0], str(q.q.qname), flush=True)
        if key.data == "silent":
            continue
        rep = q.reply()
        if str(q.q.qname).lower() == "example.test." and q.q.qtype == QTYPE.A:
            rep.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(key.data), ttl=30))
        else:
            rep.header.rcode = RCODE.NXDOMAIN
        key.fileobj.sendto(rep.pack(), peer)
"""


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Outside:
    """Network namespaces beside the sandbox host, each wired to it by a veth pair:
    a stub upstream resolver, a LAN client. Removed (with their processes) at teardown."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.names: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def wire(self, suffix: str, host_if: str, host_cidr: str, *peer_cidrs: str) -> str:
        sb = self.sb
        sb.cli("network", "ls", check=True)  # the sandbox host exists from the first call
        name = f"{sb.name}-{suffix}"
        run("ip", "netns", "add", name)
        self.names.append(name)
        run("ip", "-n", sb.name, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "-n", sb.name, "addr", "add", host_cidr, "dev", host_if)
        run("ip", "-n", sb.name, "link", "set", host_if, "up")
        for cidr in peer_cidrs:
            run("ip", "-n", name, "addr", "add", cidr, "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "route", "add", "default", "via", host_cidr.split("/")[0])
        return name

    def stub(self, *specs: str) -> "Stub":
        ns = self.wire("stub", "stubwire", "192.0.2.1/24", *[s.split("=")[0] + "/24" for s in specs])
        log = os.path.join(self.sb.root, "stub.log")  # under the state root: gone with the sandbox
        with open(log, "w") as out:
            p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", STUB, *specs],
                                 stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        stub = Stub(log)
        for _ in range(300):
            if stub.lines() or p.poll() is not None:
                break
            time.sleep(0.01)
        assert stub.lines()[:1] == ["ready"], open(log).read()
        return stub

    def in_ns(self, ns: str, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=30)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Stub:
    def __init__(self, log: str) -> None:
        self.log = log

    def lines(self) -> list[str]:
        with open(self.log) as f:
            return f.read().splitlines()

    def seen(self) -> list[str]:
        """Lines `LISTEN PEER QNAME` for each query received so far."""
        time.sleep(0.05)
        return self.lines()[1:]


@pytest.fixture
def outside(sb):
    o = Outside(sb)
    yield o
    o.close()


def set_upstream(sb: Sandbox, text: str) -> None:
    with open(os.path.join(sb.root, "host-resolv.conf"), "w") as f:
        f.write(text)


# --- tests ----------------------------------------------------------------------------

def test_names_on_a_user_bridge_and_not_on_the_default_bridge(sb):
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "alpine", check=True)
    # default bridge: reachable by address only (Docker: `ping: bad address 'web'`)
    assert sb.cli("exec", "db", "ping", "-c1", "-W2", ip_of(sb, "web")).returncode == 0
    r = sb.cli("exec", "db", "ping", "-c1", "-W2", "web")
    assert r.returncode != 0 and "web" in r.stderr
    assert getent(sb, "db", "web") is None
    # ... but the gateway by name, from /etc/hosts
    assert getent(sb, "db", "host.docker.internal") == "172.17.0.1"

    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "alpine-box", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "notes-db", "--network", "skynet", "--network-alias", "db", "alpine", check=True)
    r = sb.cli("exec", "alpine-box", "ping", "-c1", "-W2", "notes-db")
    assert r.returncode == 0 and "(172.18.0.3)" in r.stdout.splitlines()[0]
    assert getent(sb, "alpine-box", "notes-db") == "172.18.0.3"
    assert getent(sb, "alpine-box", "NOTES-DB") == "172.18.0.3"  # names are case-insensitive
    out = sb.cli("exec", "alpine-box", "nslookup", "db", check=True).stdout
    # alpine's nslookup is busybox's, which prints ADDR:53 where bind's prints ADDR#53
    assert "Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53" in out and "Name:\tdb\nAddress: 172.18.0.3" in out
    out = sb.cli("exec", "alpine-box", "nslookup", "notes-db.skynet", check=True).stdout
    assert "Name:\tnotes-db.skynet\nAddress: 172.18.0.3" in out
    short = cid(sb, "notes-db")[:12]
    assert dig(sb, "alpine-box", short) == ("NOERROR", ["172.18.0.3"])
    assert dig(sb, "alpine-box", cid(sb, "notes-db")[:13])[1] == []  # only the 12-character ID, as Docker
    # PTR: NAME.NETWORK, as Docker's `3.0.18.172.in-addr.arpa name = notes-db.skynet`
    # (alpine's nslookup is busybox's: no trailing dot)
    out = sb.cli("exec", "alpine-box", "nslookup", "172.18.0.3", check=True).stdout
    assert "3.0.18.172.in-addr.arpa\tname = notes-db.skynet\n" in out
    # AAAA (and other types) for our names: empty NOERROR, so clients fall back to A
    assert dig(sb, "alpine-box", "AAAA", "notes-db") == ("NOERROR", [])
    assert dig(sb, "alpine-box", "MX", "db") == ("NOERROR", [])
    # host.docker.internal: the querier's gateway, from the resolver
    assert dig(sb, "alpine-box", "host.docker.internal") == ("NOERROR", ["172.18.0.1"])
    assert "host.docker.internal" not in cat(sb, "alpine-box", "/etc/hosts")
    # not a validating resolver: no AD bit even though dig asks for it
    out = sb.cli("exec", "alpine-box", "dig", "+time=2", "+tries=1", "notes-db", check=True).stdout
    assert re.search(r"flags: qr rd ra;", out), out
    # unknown names with no upstream at all: SERVFAIL at once, not a timeout
    t = time.monotonic()
    assert dig(sb, "alpine-box", "nosuch.example") == ("SERVFAIL", [])
    assert time.monotonic() - t < 2


def test_scoping_across_two_networks(sb):
    sb.cli("network", "create", "front", check=True)
    sb.cli("network", "create", "back", check=True)
    sb.cli("run", "-d", "--name", "fe", "--network", "front", "alpine", check=True)
    sb.cli("run", "-d", "--name", "be", "--network", "back", "alpine", check=True)
    sb.cli("run", "-d", "--name", "api", "--network", "front", "--network", "back", "alpine", check=True)
    api_front, api_back = ip_of(sb, "api", "front"), ip_of(sb, "api", "back")
    fe, be = ip_of(sb, "fe"), ip_of(sb, "be")
    # api (on both) sees both networks' names, each at its address on that network
    assert getent(sb, "api", "fe") == fe and getent(sb, "api", "be") == be
    assert getent(sb, "api", "fe.front") == fe and getent(sb, "api", "be.back") == be
    # fe sees api at its front address, and nothing of back's
    assert getent(sb, "fe", "api") == api_front
    assert getent(sb, "be", "api") == api_back
    for name in ("be", "be.back", cid(sb, "be")[:12], "api.back"):
        assert dig(sb, "fe", name)[1] == [], name
    assert dig(sb, "fe", "-x", be)[1] == []  # nor its PTR
    assert dig(sb, "be", "fe")[1] == []
    # connect brings a network's names in, disconnect takes them away, at once
    sb.cli("network", "connect", "back", "fe", check=True)
    assert getent(sb, "fe", "be") == be
    assert getent(sb, "be", "fe") == ip_of(sb, "fe", "back")
    sb.cli("network", "disconnect", "back", "fe", check=True)
    assert dig(sb, "fe", "be")[1] == [] and dig(sb, "be", "fe")[1] == []


def test_aliases_all_addresses_round_robin(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    for i in (1, 2):
        sb.cli("run", "-d", "--name", f"web{i}", "--network", "skynet", "--network-alias", "web", "alpine", check=True)
    sb.cli("run", "-d", "--name", "web3", "alpine", check=True)
    sb.cli("network", "connect", "--alias", "web", "--alias", "www", "skynet", "web3", check=True)
    want = sorted(ip_of(sb, f"web{i}", "skynet") for i in (1, 2, 3))
    firsts = []
    for _ in range(3):
        status, got = dig(sb, "client", "web")
        assert status == "NOERROR" and sorted(got) == want
        firsts.append(got[0])
    assert len(set(firsts)) == 3, firsts  # rotated between queries (dig varies its EDNS cookie)
    # glibc's queries get all of them too (its own address sorting may reorder them)
    p = sb.cli("exec", "client", "getent", "ahostsv4", "web", check=True)
    assert sorted({line.split()[0] for line in p.stdout.splitlines()}) == want
    assert dig(sb, "client", "www")[1] == [ip_of(sb, "web3", "skynet")]
    # an alias is per network: web3's alias is not an answer on the default bridge's side
    sb.cli("network", "disconnect", "skynet", "web3", check=True)
    assert sorted(dig(sb, "client", "web")[1]) == sorted(ip_of(sb, f"web{i}", "skynet") for i in (1, 2))
    assert dig(sb, "client", "www")[1] == []


def test_answers_follow_every_change_at_once(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "notes-db", "--network", "skynet", "--network-alias", "db", "--", "sleep", "1000", check=True)
    assert dig(sb, "client", "notes-db")[1] == ["172.18.0.3"]
    short = cid(sb, "notes-db")[:12]
    sb.cli("stop", "-t", "1", "notes-db", check=True)
    for name in ("notes-db", "db", short):
        assert dig(sb, "client", name)[1] == [], name
    assert dig(sb, "client", "-x", "172.18.0.3")[1] == []
    sb.cli("start", "notes-db", check=True)
    assert dig(sb, "client", "db")[1] == ["172.18.0.3"]
    sb.cli("rename", "notes-db", "notes", check=True)
    assert dig(sb, "client", "notes-db")[1] == []
    assert dig(sb, "client", "notes")[1] == ["172.18.0.3"]
    assert dig(sb, "client", "-x", "172.18.0.3")[1] == ["notes.skynet."]
    sb.cli("rm", "-f", "notes", check=True)
    for name in ("notes", "db", short):
        assert dig(sb, "client", name)[1] == [], name
    # a new container gets the freed address and its own names, none of the old ones
    sb.cli("run", "-d", "--name", "other", "--network", "skynet", "alpine", check=True)
    assert dig(sb, "client", "other")[1] == ["172.18.0.3"]
    assert dig(sb, "client", "-x", "172.18.0.3")[1] == ["other.skynet."]
    assert dig(sb, "client", "db")[1] == []


def test_forwarding_to_the_host_upstream_and_to_a_containers_own_dns(sb, outside):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    stub = outside.stub("192.0.2.53=192.0.2.10", "192.0.2.54=192.0.2.20", "192.0.2.55=silent")
    assert dig(sb, "client", "example.test") == ("SERVFAIL", [])  # no upstream yet
    # The resolver started with an empty upstream file: it notices the new one by itself.
    set_upstream(sb, "search corp.example\nnameserver 192.0.2.53\n")
    assert dig(sb, "client", "example.test") == ("NOERROR", ["192.0.2.10"])
    assert dig(sb, "client", "nothing.test")[0] == "NXDOMAIN"
    seen = stub.seen()
    assert "192.0.2.53 192.0.2.1 example.test." in seen  # from the resolver, in the host
    # our names are never forwarded
    n = len(seen)
    assert dig(sb, "client", "client")[1] == [ip_of(sb, "client")]
    assert len(stub.seen()) == n
    # a container with --dns on a user network: resolv.conf still names the resolver,
    # which forwards that container's other queries to its own servers (as Docker does)
    sb.cli("run", "-d", "--name", "own", "--network", "skynet", "--dns", "192.0.2.54", "alpine", check=True)
    assert cat(sb, "own", "/etc/resolv.conf") == "search corp.example\nnameserver 127.0.0.11\noptions ndots:0\n"
    assert dig(sb, "own", "example.test")[1] == ["192.0.2.20"]
    assert dig(sb, "own", "client")[1] == [ip_of(sb, "client")]
    assert dig(sb, "client", "example.test")[1] == ["192.0.2.10"]
    # a container's loopback --dns is its own loopback on Docker: never the host's
    sb.cli("run", "-d", "--name", "loop", "--network", "skynet", "--dns", "127.0.0.1", "alpine", check=True)
    assert dig(sb, "loop", "example.test") == ("SERVFAIL", [])
    assert dig(sb, "loop", "client")[1] == [ip_of(sb, "client")]
    # default-bridge containers get the host's nameservers and query them directly
    sb.cli("run", "-d", "--name", "legacy", "alpine", check=True)
    assert cat(sb, "legacy", "/etc/resolv.conf") == "search corp.example\nnameserver 192.0.2.53\n"
    assert getent(sb, "legacy", "example.test") == "192.0.2.10"
    assert dig(sb, "legacy", "client")[0] == "NXDOMAIN"  # no names on the default bridge
    # a silent upstream: SERVFAIL after the forwarding budget, and others still served
    set_upstream(sb, "nameserver 192.0.2.55\n")
    t = time.monotonic()
    assert dig(sb, "client", "example.test") == ("SERVFAIL", [])
    assert 1.5 < time.monotonic() - t < 3
    assert any(line.startswith("192.0.2.55 192.0.2.1 example.test.") for line in stub.seen())
    # a dead upstream first, a live one second: tried in turn
    set_upstream(sb, "nameserver 192.0.2.55\nnameserver 192.0.2.53\n")
    assert dig(sb, "client", "example.test")[1] == ["192.0.2.10"]
    log = open(resolver_of(sb, "skynet")["Log"]).read()
    assert "upstreams now: 192.0.2.53#53" in log


def test_the_resolver_listens_in_containers_only(sb, outside):
    """As Docker's: 127.0.0.11 inside each container of a user network, nothing on the
    host's addresses (a LAN client or a default-bridge container finds no DNS server on
    the gateway), and nothing on a default-bridge container's 127.0.0.11."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "notes-db", "--network", "skynet", "alpine", check=True)
    lan = outside.wire("lan", "lan0", "198.51.100.1/24", "198.51.100.2/24")
    p = outside.in_ns(lan, sys.executable, "-c", UDP_QUERY, "172.18.0.1", "notes-db")
    assert p.stdout.split() == ["no", "DNS", "server", "there"], p.stderr
    sb.cli("run", "-d", "--name", "legacy", "alpine", check=True)
    for server in ("172.18.0.1", "127.0.0.11"):
        p = sb.cli("exec", "legacy", "python3", "-c", UDP_QUERY, server, "notes-db")
        assert p.stdout.split() == ["no", "DNS", "server", "there"], (server, p.stderr)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    p = sb.cli("exec", "client", "python3", "-c", UDP_QUERY, "172.18.0.1", "notes-db")
    assert p.stdout.split() == ["no", "DNS", "server", "there"], p.stderr
    p = sb.cli("exec", "client", "python3", "-c", UDP_QUERY, "127.0.0.11", "notes-db")
    assert p.stdout.split() == ["NOERROR", "172.18.0.2"], p.stderr
    # the host's side: no socket on port 53 at all
    assert not sb.host_run("ss", "-Hlnu", "sport = :53", check=True).stdout.strip()
    assert not sb.host_run("ss", "-Hlnt", "sport = :53", check=True).stdout.strip()


GARBAGE_THEN_QUERIES = DNS_LIB + r"""
import random, time
gw, name = sys.argv[1], sys.argv[2]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
good = query(name, qid=4242)
bad = [
    b"", b"\x00", os.urandom(11), good[:12], good[:-3],              # empty, short, truncated
    good[:4] + b"\x00\x05" + good[6:],                                # 5 questions announced, 1 there
    good[:12] + b"\xc0\x0c" + good[-4:],                              # a compression pointer loop
    good[:12] + b"\x3f" + b"a" * 10,                                  # a label past the end
    bytes([good[0], good[1], good[2] | 0x80]) + good[3:],             # a response, not a query
    good + os.urandom(5000),                                          # oversized
] + [os.urandom(random.randint(12, 600)) for _ in range(200)]
for b in bad:
    u.sendto(b, (gw, 53))
u.sendto(good, (gw, 53))
while True:  # garbage may be answered (FORMERR-like) or dropped; ours must come
    qid, rcode, addrs = parse(u.recv(4096))
    if qid == 4242:
        break
print("udp", RCODES[rcode], *addrs)
# TCP: several length-prefixed queries on one connection, sent in one write
t = socket.create_connection((gw, 53), timeout=3)
msgs = [query(name, qid=100 + i) for i in range(3)] + [query("host.docker.internal", qid=200)]
t.sendall(b"".join(len(m).to_bytes(2, "big") + m for m in msgs))
def exact(n):
    buf = b""
    while len(buf) < n:
        chunk = t.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf
for _ in msgs:
    qid, rcode, addrs = parse(exact(int.from_bytes(exact(2), "big")))
    print("tcp", qid, RCODES[rcode], *addrs)
# a query split across writes still works on the same connection
m = query(name, qid=300)
frame = len(m).to_bytes(2, "big") + m
t.sendall(frame[:1]); time.sleep(0.05); t.sendall(frame[1:7]); time.sleep(0.05); t.sendall(frame[7:])
print("tcp", *parse(exact(int.from_bytes(exact(2), "big")))[::2])
# a nonsense length closes that connection only
bad_t = socket.create_connection((gw, 53), timeout=3)
bad_t.sendall(b"\x00\x03abc")
print("bad tcp closed", bad_t.recv(10) == b"")
u.sendto(query(name, qid=4343), (gw, 53))
print("udp again", parse(u.recv(4096))[0])
"""


def test_malformed_and_tcp_queries_from_a_container(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "notes-db", "--network", "skynet", "alpine", check=True)
    pid = resolver_of(sb, "skynet")["Pid"]
    p = sb.cli("exec", "client", "python3", "-c", GARBAGE_THEN_QUERIES, "127.0.0.11", "notes-db")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "udp NOERROR 172.18.0.3",
        "tcp 100 NOERROR 172.18.0.3",
        "tcp 101 NOERROR 172.18.0.3",
        "tcp 102 NOERROR 172.18.0.3",
        "tcp 200 NOERROR 172.18.0.1",
        "tcp 300 ['172.18.0.3']",
        "bad tcp closed True",
        "udp again 4343",
    ]
    assert dig(sb, "client", "+tcp", "notes-db") == ("NOERROR", ["172.18.0.3"])
    r = resolver_of(sb, "skynet")
    assert r["Pid"] == pid and r["State"] == "running"  # the same process survived it all


def test_resolver_process_inspect_info_log_and_restart(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    r = resolver_of(sb, "skynet")
    assert r["Address"] == "127.0.0.11:53" and r["State"] == "running" and r["Pid"] > 0
    assert r["ServedContainers"] == 1
    assert r["Log"].startswith(os.path.join(sb.root, "")) and os.path.exists(r["Log"])
    assert "started" in open(r["Log"]).read()
    # a process of the sandbox host, holding 127.0.0.11:53, UDP and TCP, inside the container
    inside = subprocess.run(["ip", "netns", "exec", f"{sb.name}-client", "ss", "-Hlnup"], capture_output=True,
                            text=True).stdout + subprocess.run(
        ["ip", "netns", "exec", f"{sb.name}-client", "ss", "-Hlntp"], capture_output=True, text=True).stdout
    assert inside.count("127.0.0.11:53 ") == 2 and inside.count(f"pid={r['Pid']},") == 2, inside
    assert os.stat(f"/proc/{r['Pid']}/ns/net").st_ino == os.stat(f"/run/netns/{sb.name}").st_ino
    # two descriptors per container: its open-files limit is raised to the hard limit
    limits = open(f"/proc/{r['Pid']}/limits").read()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()
    assert soft == hard and int(soft) >= 4096
    info = json.loads(sb.cli("system", "info", "--format", "{{json .Resolvers}}", check=True).stdout)
    assert info["skynet"]["Pid"] == r["Pid"] and info["skynet"]["Address"] == "127.0.0.11"
    assert info["skynet"]["LastExit"] is None
    # the default bridge has none
    assert "NsbridgeResolver" not in json.loads(sb.cli("network", "inspect", "bridge", check=True).stdout)[0]

    os.kill(r["Pid"], signal.SIGKILL)
    for _ in range(250):
        if not os.path.exists(f"/proc/{r['Pid']}"):
            break
        time.sleep(0.02)
    # the next engine call, even a reading one, restarts it; it binds in its containers again
    r2 = resolver_of(sb, "skynet")
    assert r2["State"] == "running" and r2["Pid"] != r["Pid"]
    assert dig(sb, "client", "client")[1] == [ip_of(sb, "client")]
    last = json.loads(sb.cli("system", "info", "--format", "{{json .Resolvers}}", check=True).stdout)["skynet"]["LastExit"]
    assert last["Pid"] == r["Pid"] and "SIGKILL" in last["Ended"] and "started" in last["LastLines"][0]
    sb.cli("network", "create", "other", check=True)
    assert resolver_of(sb, "other")["State"] == "running"
    # network rm stops it
    pid_other = resolver_of(sb, "other")["Pid"]
    sb.cli("network", "rm", "other", check=True)
    assert not os.path.exists(f"/proc/{pid_other}") or open(f"/proc/{pid_other}/stat").read().split()[2] == "Z"
    log = open(r["Log"]).read().splitlines()
    assert sum("started" in line for line in log) == 2


def test_hosts_and_resolv_conf_on_the_default_bridge_as_docker(sb, outside):
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    web = cid(sb, "web")
    set_upstream(sb, "# the host's\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
    # --link NAME:ALIAS (containers.txt)
    r = sb.cli("run", "--rm", "--link", "web:webby", "alpine", "sh", "-c", "cat /etc/hosts; hostname", check=True)
    hosts, me = r.stdout.rsplit("\n", 2)[0] + "\n", r.stdout.split()[-1]
    assert hosts == (HEAD + f"172.17.0.2\twebby {web[:12]} web\n172.17.0.1\thost.docker.internal\n"
                     f"172.17.0.3\t{me}\n")
    assert len(me) == 12
    # --link NAME: the name, then the hostname
    r = sb.cli("run", "--rm", "--link", "web", "alpine", "cat", "/etc/hosts", check=True)
    assert f"172.17.0.2\tweb {web[:12]}\n" in r.stdout
    # --add-host, host-gateway, --dns, --dns-search (containers.txt)
    r = sb.cli("run", "--rm", "--add-host", "foo:10.1.2.3", "--add-host", "gw:host-gateway", "--dns", "9.9.9.9",
               "--dns-search", "lab.example", "alpine", "sh", "-c", "cat /etc/hosts; cat /etc/resolv.conf", check=True)
    lines = r.stdout.splitlines()
    assert "\n".join(lines[:6]) + "\n" == HEAD
    assert lines[6:8] == ["10.1.2.3\tfoo", "172.17.0.1\tgw"]
    assert lines[8] == "172.17.0.1\thost.docker.internal" and re.fullmatch(r"172\.17\.0\.3\t[0-9a-f]{12}", lines[9])
    assert lines[10:] == ["search lab.example", "nameserver 9.9.9.9", "options edns0"]
    # no flags: the host's nameservers minus loopback ones, its search and options
    r = sb.cli("run", "--rm", "alpine", "cat", "/etc/resolv.conf", check=True)
    assert r.stdout == "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
    # --add-host host.docker.internal:... wins over ours
    r = sb.cli("run", "--rm", "--add-host", "host.docker.internal:10.9.9.9", "alpine", "getent", "hosts",
               "host.docker.internal", check=True)
    assert r.stdout.split() == ["10.9.9.9", "host.docker.internal"]
    # --hostname with a dot: FQDN and short name, as Docker
    r = sb.cli("run", "--rm", "--hostname", "lab.one", "alpine", "tail", "-n1", "/etc/hosts", check=True)
    assert r.stdout == "172.17.0.3\tlab.one lab\n"
    # --link is for the default bridge only (Docker's rule)
    sb.cli("network", "create", "skynet", check=True)
    r = sb.cli("run", "--rm", "--network", "skynet", "--link", "web", "alpine", "true")
    assert r.returncode != 0 and "links are only supported" in r.stderr


def test_hosts_and_resolv_conf_on_user_networks_as_docker(sb):
    set_upstream(sb, "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n")
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("network", "create", "lab", "--subnet", "10.10.0.0/24", "--gateway", "10.10.0.254", check=True)
    sb.cli("run", "-d", "--name", "alpine-box", "--network", "skynet", "alpine", check=True)
    me = cid(sb, "alpine-box")[:12]
    assert cat(sb, "alpine-box", "/etc/hosts") == HEAD + f"172.18.0.2\t{me}\n"
    assert cat(sb, "alpine-box", "/etc/resolv.conf") == (
        "search corp.example\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n")
    # connect adds a line with the address on that network; disconnect removes it;
    # the resolver of the first user network that remains takes its 127.0.0.11 over
    sb.cli("network", "connect", "lab", "alpine-box", check=True)
    assert cat(sb, "alpine-box", "/etc/hosts") == HEAD + f"172.18.0.2\t{me}\n10.10.0.1\t{me}\n"
    sb.cli("network", "disconnect", "skynet", "alpine-box", check=True)
    assert cat(sb, "alpine-box", "/etc/hosts") == HEAD + f"10.10.0.1\t{me}\n"
    assert "nameserver 127.0.0.11\n" in cat(sb, "alpine-box", "/etc/resolv.conf")
    assert getent(sb, "alpine-box", "alpine-box") == "10.10.0.1"
    # a default-bridge container connected to a user network switches to its resolver
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    assert "nameserver 192.0.2.53\n" in cat(sb, "web", "/etc/resolv.conf")
    sb.cli("network", "connect", "skynet", "web", check=True)
    assert cat(sb, "web", "/etc/resolv.conf") == "search corp.example\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n"
    web = cid(sb, "web")[:12]
    assert cat(sb, "web", "/etc/hosts").endswith(f"172.17.0.2\t{web}\n172.18.0.2\t{web}\n")
    assert getent(sb, "web", "web") == "172.18.0.2"
    # --hostname, --dns-search, --dns-option (the user's ndots wins), --add-host
    r = sb.cli("run", "--rm", "--network", "lab", "--ip", "10.10.0.200", "--hostname", "lab-one",
               "--dns-search", "x.example", "--dns-option", "ndots:2", "--add-host", "gw:host-gateway",
               "alpine", "sh", "-c", "cat /etc/hosts /etc/resolv.conf", check=True)
    assert r.stdout == (HEAD + "172.17.0.1\tgw\n10.10.0.200\tlab-one\n"
                        "search x.example\nnameserver 127.0.0.11\noptions ndots:2\n")
    # `--dns-search .`: no search line at all
    r = sb.cli("run", "--rm", "--network", "lab", "--dns-search", ".", "alpine", "cat", "/etc/resolv.conf", check=True)
    assert r.stdout == "nameserver 127.0.0.11\noptions timeout:2 ndots:0\n"


def test_bridge_mac_is_stable_when_a_port_leaves(sb):
    """The gateway (and its resolver) must keep its MAC when a port leaves: containers'
    ARP caches would otherwise point at a MAC nobody owns for ~30 s after an rm."""
    nid = sb.cli("network", "create", "skynet", check=True).stdout.strip()
    br = f"br-{nid[:12]}"
    for name in ("a1", "a2"):
        sb.cli("run", "-d", "--name", name, "--network", "skynet", "alpine", check=True)
    before = bridge_mac(sb, br)
    # the container whose host-side veth has the bridge's MAC (if the bridge follows its ports)
    macs = {}  # host ifindex -> MAC
    for line in sb.host_run("ip", "-o", "link", check=True).stdout.splitlines():
        m = re.match(r"(\d+): .* link/ether (\S+)", line)
        if m:
            macs[m.group(1)] = m.group(2)
    owner = "a1"
    for name in ("a1", "a2"):
        out = subprocess.run(["ip", "-n", f"{sb.name}-{name}", "-o", "link", "show", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        peer = re.search(r"eth0@if(\d+)", out)
        if peer and macs.get(peer.group(1)) == before:
            owner = name
    sb.cli("rm", "-f", owner, check=True)
    assert bridge_mac(sb, br) == before


def test_system_info_lists_resolvers(sb):
    sb.cli("network", "create", "skynet", check=True)
    p = sb.cli("system", "info")
    assert p.returncode == 0, p.stderr
    pid = resolver_of(sb, "skynet")["Pid"]
    assert f" skynet: pid {pid} on 127.0.0.11:53 in 0 containers (running)" in p.stdout


def test_a_reading_command_restarts_a_dead_resolver(sb):
    """"Restarted by any engine call that finds it dead": `ps` and `network ls`
    too, not only the commands that change state."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "a1", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "a2", "--network", "skynet", "alpine", check=True)
    first = resolver_of(sb, "skynet")["Pid"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{first}") and time.monotonic() < deadline:
        time.sleep(0.02)
    sb.cli("ps", check=True)
    now = resolver_of(sb, "skynet")
    assert now["Pid"] != first and now["State"] == "running"
    assert getent(sb, "a1", "a2") is not None
