"""The embedded resolver under hostile traffic (issue 6).

From inside a container on a user bridge, for a bounded time, bursts of random
and mutated DNS messages built with scapy go to the resolver at 127.0.0.11,
over UDP and TCP (garbage frames, lying length prefixes, cut streams, idle
connections). Between bursts a valid query over each transport must be answered
correctly; afterwards the resolver is the same process. And a client outside
the resolver's networks (a LAN namespace wired to the sandbox host) finds no DNS
server on the host's addresses at all, as with Docker, and its garbage hurts nothing.

scapy is imported only by the fuzzer process (it costs ~0.5 s), never here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nsbridge.sandbox import Sandbox

FUZZ_SECONDS = 10.0

FUZZER = r'''
import json, os, random, socket, struct, sys, time
from dnslib import DNSRecord, QTYPE
from scapy.layers.dns import DNS, DNSQR, DNSRROPT
from scapy.packet import fuzz
from scapy.volatile import RandBin, RandString

gw, name, want, seconds, seed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
stats = {"bursts": 0, "udp_sent": 0, "tcp_frames": 0, "tcp_conns": 0, "replies": 0, "build_errors": 0,
         "checks_udp": 0, "checks_tcp": 0, "worst_check_ms": 0.0}
failures = []

def valid(qname=name, qid=None):
    return bytes(DNS(id=rnd.randrange(65536) if qid is None else qid, rd=1, qd=DNSQR(qname=qname, qtype="A")))

def label_bomb():
    return b"".join(bytes([63]) + b"a" * 63 for _ in range(rnd.randint(4, 60))) + b"\x00"

def mutants(q):
    """Mutations of a valid query Q (bytes)."""
    b = bytearray(q)
    kind = rnd.randrange(15)
    if kind == 0:  # flip bits
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(b)); b[i] ^= 1 << rnd.randrange(8)
        return bytes(b)
    if kind == 1:  # cut short
        return bytes(b[:rnd.randrange(len(b))])
    if kind == 2:  # insert garbage
        i = rnd.randrange(len(b) + 1)
        return bytes(b[:i]) + os.urandom(rnd.randint(1, 40)) + bytes(b[i:])
    if kind == 3:  # lie in the counts
        return bytes(b[:4]) + struct.pack(">4H", *(rnd.choice([0, 1, 2, 255, 65535]) for _ in range(4))) + bytes(b[12:])
    if kind == 4:  # compression pointers: to itself, forward, into the header, chains
        ptr = rnd.choice([0xC00C, 0xC000, 0xC0FF, 0xFFFF, 0xC00E, 0x3FFF | 0xC000])
        return bytes(b[:12]) + struct.pack(">H", ptr) + bytes(b[-4:])
    if kind == 5:  # a label length with the reserved 01/10 bits
        return bytes(b[:12]) + bytes([rnd.choice([0x40, 0x7F, 0x80, 0xBF])]) + os.urandom(8) + bytes(b[-4:])
    if kind == 6:  # a name far over 255 bytes
        return bytes(b[:12]) + label_bomb() + bytes(b[-4:])
    if kind == 7:  # a response, odd opcodes and flags
        b[2] = rnd.randrange(256); b[3] = rnd.randrange(256)
        return bytes(b)
    if kind == 8:  # EDNS with odd sizes and versions, or several OPT records
        n = rnd.randint(1, 3)
        opt = b"".join(bytes(DNSRROPT(rclass=rnd.choice([0, 1, 511, 512, 4096, 65535]), version=rnd.randrange(256)))
                       for _ in range(n))
        return bytes(b[:10]) + struct.pack(">H", n) + bytes(b[12:]) + opt
    if kind == 9:  # odd types and classes for a local name (ANY, AXFR, CHAOS, ...)
        return bytes(b[:-4]) + struct.pack(">HH", rnd.choice([0, 6, 12, 28, 33, 252, 255, 65535]),
                                           rnd.choice([1, 3, 4, 254, 255, 0]))
    if kind == 10:  # the local name in random case, or with a trailing garbage label
        return valid("".join(c.upper() if rnd.random() < .5 else c for c in name) + rnd.choice(["", ".x", "..", "."]))
    if kind == 11:  # non-ASCII, NUL and dots inside labels
        lab = bytes(rnd.choice([0, 0x2E, 0xFF, 0xC3, 0x20]) for _ in range(rnd.randint(1, 20)))
        return bytes(b[:12]) + bytes([len(lab)]) + lab + b"\x00" + bytes(b[-4:])
    if kind == 12:  # many questions, really there
        n = rnd.randint(2, 40)
        qs = b"".join(bytes(DNSQR(qname=str(RandString(rnd.randint(1, 30))).strip("."), qtype=rnd.randrange(65536)))
                      for _ in range(n))
        return bytes(b[:4]) + struct.pack(">HHHH", n, 0, 0, 0) + qs
    if kind == 13:  # reverse lookups of odd names: short, long, out of range, not numbers, ours
        octets = [rnd.choice(["0", "1", "255", "256", "999", "-1", "01", "x", "", "1e3", str(rnd.randrange(300))])
                  for _ in range(rnd.choice([1, 3, 4, 4, 4, 5, 9]))]
        rev = ".".join(octets) + rnd.choice([".in-addr.arpa", ".IN-ADDR.ARPA", ".in-addr.arpa.x", ".ip6.arpa"])
        try:
            return bytes(DNS(id=rnd.randrange(65536), rd=1, qd=DNSQR(qname=rev, qtype=rnd.choice([12, 1, 255]))))
        except Exception:
            stats["build_errors"] += 1
            return bytes(b)
    return bytes(b) * rnd.randint(2, 30)  # several queries glued together

def generated():
    """scapy's fuzz(): every field random, structure kept."""
    pick = rnd.randrange(4)
    if pick == 0:
        p = fuzz(DNS(qd=DNSQR(qname=name)))
    elif pick == 1:
        p = fuzz(DNS(qd=fuzz(DNSQR())))
    elif pick == 2:
        p = DNS(id=rnd.randrange(65536), qd=DNSQR(qname=str(RandString(rnd.randint(1, 200))), qtype=rnd.randrange(65536)))
    else:
        p = fuzz(DNS())
    return bytes(p)

def one():
    r = rnd.random()
    try:
        if r < 0.4:
            return generated()
        if r < 0.85:
            return mutants(valid())
        return bytes(RandBin(rnd.randint(0, 1200)))
    except Exception:  # scapy could not build this random packet: count it, move on
        stats["build_errors"] += 1
        return os.urandom(rnd.randint(0, 100))

def parse_reply(data, qid):
    r = DNSRecord.parse(data)
    assert r.header.id == qid, f"reply id {r.header.id} != {qid}"
    rc = r.header.rcode
    addrs = [str(a.rdata) for a in r.rr if a.rtype == QTYPE.A]
    return rc, addrs

def check_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    qid = rnd.randrange(65536)
    t = time.monotonic()
    try:
        s.sendto(valid(qid=qid), (gw, 53))
        while True:
            data = s.recv(65535)
            if data[:2] == struct.pack(">H", qid):
                break
        rc, addrs = parse_reply(data, qid)
        if rc != 0 or addrs != [want]:
            failures.append(f"udp check: rcode {rc} addrs {addrs}")
    except Exception as e:
        failures.append(f"udp check: {type(e).__name__}: {e}")
    finally:
        s.close()
    stats["checks_udp"] += 1
    stats["worst_check_ms"] = max(stats["worst_check_ms"], (time.monotonic() - t) * 1000)

def exact(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf

def check_tcp():
    qid = rnd.randrange(65536)
    t = time.monotonic()
    try:
        c = socket.create_connection((gw, 53), timeout=2.0)
        try:
            m = valid(qid=qid)
            c.sendall(struct.pack(">H", len(m)) + m)
            data = exact(c, struct.unpack(">H", exact(c, 2))[0])
        finally:
            c.close()
        rc, addrs = parse_reply(data, qid)
        if rc != 0 or addrs != [want]:
            failures.append(f"tcp check: rcode {rc} addrs {addrs}")
    except Exception as e:
        failures.append(f"tcp check: {type(e).__name__}: {e}")
    stats["checks_tcp"] += 1
    stats["worst_check_ms"] = max(stats["worst_check_ms"], (time.monotonic() - t) * 1000)

def drain(s):
    while True:
        try:
            s.recv(65535)
            stats["replies"] += 1
        except (BlockingIOError, InterruptedError):
            return

def tcp_burst():
    """A connection that sends fuzz frames, maybe a lying length or half a frame, then
    hangs up or is left idle (closed at the end of the run)."""
    try:
        c = socket.create_connection((gw, 53), timeout=2.0)
    except OSError as e:
        failures.append(f"tcp connect: {e}")
        return None
    stats["tcp_conns"] += 1
    c.setblocking(False)
    frames = b""
    for _ in range(rnd.randint(1, 20)):
        m = one()[:65535]
        frames += struct.pack(">H", len(m)) + m
        stats["tcp_frames"] += 1
    how = rnd.randrange(5)
    if how == 1:
        frames += struct.pack(">H", rnd.choice([0, 1, 11, 4097, 65535])) + os.urandom(rnd.randint(0, 50))
    elif how == 2:
        frames = frames[: rnd.randrange(len(frames) + 1)]
    try:
        c.sendall(frames)
    except OSError:
        pass
    if how == 3:
        return c  # left open and idle
    try:
        while c.recv(65535):
            pass
    except OSError:
        pass
    c.close()
    return None

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setblocking(False)
idle = []
deadline = time.monotonic() + seconds
check_udp(); check_tcp()
while time.monotonic() < deadline:
    for _ in range(200):
        try:
            u.sendto(one(), (gw, 53))
            stats["udp_sent"] += 1
        except OSError:  # oversized for a datagram, or the send buffer full
            pass
    drain(u)
    for _ in range(3):
        c = tcp_burst()
        if c is not None:
            idle.append(c)
    stats["bursts"] += 1
    check_udp(); check_tcp()
for c in idle:
    c.close()
print(json.dumps({"stats": stats, "failures": failures[:20], "failure_count": len(failures)}))
'''

QUERY = r'''
import socket, struct, sys
from dnslib import DNSRecord, RCODE
gw, name, transport = sys.argv[1], sys.argv[2], sys.argv[3]
q = DNSRecord.question(name)
q.header.id = 4242
m = q.pack()
try:
    if transport == "udp":  # connected: "port unreachable" comes back as an error
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.connect((gw, 53))
        s.send(m); data = s.recv(4096)
    else:
        s = socket.create_connection((gw, 53), timeout=3)
except ConnectionRefusedError:
    sys.exit(print("no DNS server there"))
if transport == "tcp":
    s.sendall(struct.pack(">H", len(m)) + m)
    n = struct.unpack(">H", s.recv(2))[0]; data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
r = DNSRecord.parse(data)
print(RCODE.get(r.header.rcode), r.header.id, len(r.rr), *[str(a.rdata) for a in r.rr])
'''


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def resolver(sb: Sandbox, net: str) -> dict:
    out = sb.cli("network", "inspect", "--format", "{{json .NsbridgeResolver}}", net, check=True).stdout
    return json.loads(out)


def gateway(sb: Sandbox, net: str) -> str:
    return sb.cli("network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", net, check=True).stdout.strip()


def ip_of(sb: Sandbox, ctr: str, net: str) -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}'
    return sb.cli("inspect", "--format", fmt, ctr, check=True).stdout.strip()


EMBEDDED = "127.0.0.11"


@pytest.fixture
def fuzznet(sb):
    """A user bridge, a target to resolve and a client to fuzz from."""
    sb.cli("network", "create", "fuzznet", check=True)
    sb.cli("run", "-d", "--name", "target", "--network", "fuzznet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "fuzzer", "--network", "fuzznet", "alpine", check=True)
    return EMBEDDED, ip_of(sb, "target", "fuzznet")


@pytest.mark.slow
def test_resolver_survives_fuzzing_and_keeps_answering(sb, fuzznet):
    try:
        import scapy  # noqa: F401  (the package only: the fuzzer process imports its layers)
    except ImportError:
        pytest.fail("scapy is a test extra: run the README's test command (sudo ./setup.sh test)")
    gw, target_ip = fuzznet
    before = resolver(sb, "fuzznet")
    assert before["State"] == "running"
    # a new seed each run explores more; a failure names it (NSBRIDGE_FUZZ_SEED=N replays it)
    seed = int(os.environ.get("NSBRIDGE_FUZZ_SEED") or int.from_bytes(os.urandom(4), "big"))
    p = sb.cli("exec", "fuzzer", sys.executable, "-c", FUZZER, gw, "target", target_ip, str(FUZZ_SECONDS), str(seed),
               timeout=FUZZ_SECONDS + 120)
    assert p.returncode == 0, f"seed {seed}: {p.stderr[-3000:]}"
    report = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"seed {seed}:", json.dumps(report, indent=1))
    stats = report["stats"]
    assert report["failure_count"] == 0, (f"seed {seed}", report["failures"])
    # it was a real fuzz: many bursts, thousands of datagrams, TCP streams, checks between bursts
    assert stats["bursts"] >= 5 and stats["udp_sent"] >= 1000 and stats["tcp_conns"] >= 10, stats
    assert stats["checks_udp"] == stats["checks_tcp"] == stats["bursts"] + 1
    after = resolver(sb, "fuzznet")
    # the same process, never restarted
    assert (after["Pid"], after["State"]) == (before["Pid"], "running"), f"seed {seed}"
    # and garbage was dropped or answered, never an exception inside the loop (logged as "error:")
    with open(after["Log"]) as f:
        errors = [line for line in f if " error: " in line]
    assert not errors, (f"seed {seed}", errors[:3])
    # and it still answers from another container, both ways
    for transport in ("udp", "tcp"):
        r = sb.cli("exec", "target", sys.executable, "-c", QUERY, gw, "fuzzer", transport, check=True)
        assert r.stdout.split() == ["NOERROR", "4242", "1", ip_of(sb, "fuzzer", "fuzznet")], r.stdout


@pytest.fixture
def lan(sb):
    """A LAN client beside the sandbox host: its own namespace (named after the sandbox,
    so the sandbox's leak check covers it), a veth wire, 198.51.100.2/24 via .1."""
    sb.cli("network", "ls", check=True)  # the sandbox host exists from the first call
    name = f"{sb.name}-lan"
    run("ip", "netns", "add", name)
    try:
        run("ip", "-n", sb.name, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "-n", sb.name, "addr", "add", "198.51.100.1/24", "dev", "lan0")
        run("ip", "-n", sb.name, "link", "set", "lan0", "up")
        run("ip", "-n", name, "addr", "add", "198.51.100.2/24", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "route", "add", "default", "via", "198.51.100.1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_lan(lan: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lan, *cmd], capture_output=True, text=True, timeout=30)


def test_no_dns_service_outside_the_containers(sb, fuzznet, lan):
    embedded, target_ip = fuzznet
    gw = gateway(sb, "fuzznet")
    pid = resolver(sb, "fuzznet")["Pid"]
    for transport in ("udp", "tcp"):
        for name in ("target", "host.docker.internal", "example.test"):
            r = in_lan(lan, sys.executable, "-c", QUERY, gw, name, transport)
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "no DNS server there", (transport, name, r.stdout)
    # garbage from outside does not reach it either
    in_lan(lan, sys.executable, "-c", "import os, socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           f"for _ in range(2000): s.sendto(os.urandom(os.urandom(1)[0] + 12), ('{gw}', 53))")
    r = sb.cli("exec", "fuzzer", sys.executable, "-c", QUERY, embedded, "target", "udp", check=True)
    assert r.stdout.split() == ["NOERROR", "4242", "1", target_ip]
    assert resolver(sb, "fuzznet")["Pid"] == pid
