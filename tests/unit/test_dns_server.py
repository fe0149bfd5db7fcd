"""The resolver process (nsbridge.dns.server) started through the supervisor; no root.

Everything runs on 127.0.0.0/8. The test network is 127.77.0.0/16 (gateway 127.77.0.1);
each of its containers' "127.0.0.11" is played by a UDP and a TCP socket this test binds
on the container's own address and a high port, and hands over to the resolver on its
control socket, as the engine does (the engine binds 127.0.0.11:53 inside each
container's namespace, which takes root). The upstream is a stub on 127.88.0.1.

Run as a script (`python tests/unit/test_dns_server.py`) for the self-check: it prints
the sequential rate and p50 of one client. Tests assert correctness only, never timing.
"""
from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from nsbridge.dns import embedded, supervisor
from nsbridge.errors import KernelError
from nsbridge.model import Container, Endpoint, IpamConfig, Network, new_id, now_iso
from nsbridge.state.store import Store

GW, CLIENT, DB, WEB2, UPSTREAM = "127.77.0.1", "127.77.0.2", "127.77.0.3", "127.77.0.4", "127.88.0.1"


def free_port(ip: str) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind((ip, 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((ip, port))
                except OSError:
                    continue
        return port


class Stub:
    """An upstream resolver: example.test -> 192.0.2.10, NXDOMAIN otherwise, or silent."""

    def __init__(self, silent: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((UPSTREAM, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.silent = silent
        self.seen: list[str] = []
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = DNSRecord.parse(data)
            self.seen.append(str(q.q.qname))
            if self.silent:
                continue
            rep = q.reply()
            if str(q.q.qname).lower() == "example.test." and q.q.qtype == QTYPE.A:
                rep.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.10"), ttl=30))
            else:
                rep.header.rcode = RCODE.NXDOMAIN
            self.sock.sendto(rep.pack(), addr)

    def close(self) -> None:
        self.done = True
        self.thread.join(2)
        self.sock.close()


def make_store(path: str) -> tuple[Store, dict[str, str], str]:
    store = Store(path)
    n = Network(id=new_id(), name="testnet", driver="bridge", created=now_iso(),
                ipam=IpamConfig(subnet="127.77.0.0/16", gateway=GW), bridge="br-test")
    ids = {}
    with store.tx():
        store.put_network(n)
        for name, ip, aliases in [("client", CLIENT, []), ("db", "127.77.0.3", ["web"]),
                                  ("web2", "127.77.0.4", ["web"])]:
            c = Container(id=new_id(), name=name, created=now_iso(), state="running")
            store.put_container(c)
            store.put_endpoint(Endpoint(container_id=c.id, network_id=n.id, position=0, ip=ip,
                                        aliases=aliases))
            ids[name] = c.id
    return store, ids, n.id


class Resolver:
    def __init__(self, tmp: Path, upstreams: list[str]) -> None:
        self.store, self.ids, self.net_id = make_store(str(tmp / "state.db"))
        self.upfile = tmp / "resolv.conf"
        self.upfile.write_text("search example\n" + "".join(f"nameserver {u}\n" for u in upstreams))
        self.port = free_port(CLIENT)
        self.dir = str(tmp / "dns")
        self.start()

    def start(self) -> None:
        self.info = supervisor.start(self.store.path, self.net_id, str(self.upfile), self.dir)
        for name, ip in (("client", CLIENT), ("db", DB), ("web2", WEB2)):
            assert self.give(self.ids[name], ip) == "ok"

    def give(self, cid: str, ip: str) -> str:
        """What the engine does for a container: its two sockets to the resolver."""
        udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((ip, self.port))
            tcp.bind((ip, self.port))
            tcp.listen(16)
            return embedded.request(embedded.control_address(self.net_id), f"take {cid} -",
                                    (udp.fileno(), tcp.fileno()))
        finally:
            udp.close()
            tcp.close()

    def query(self, name: str, qtype: str = "A", src: str = CLIENT, timeout: float = 3.0) -> DNSRecord:
        """A query from container SRC (its 127.0.0.11 is SRC:port here)."""
        q = DNSRecord.question(name, qtype)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q.pack(), (src, self.port))
            rep = DNSRecord.parse(s.recv(65535))
        assert rep.header.id == q.header.id
        return rep

    def send_raw(self, data: bytes, src: str = CLIENT) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(data, (src, self.port))

    def tcp(self, src: str = CLIENT) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((src, self.port))
        return s

    def stop(self) -> None:
        supervisor.stop(self.info)


def addrs(rep: DNSRecord) -> list[str]:
    return [str(r.rdata) for r in rep.rr if r.rtype == QTYPE.A]


def tcp_read(s: socket.socket) -> DNSRecord:
    def exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    return DNSRecord.parse(exact(int.from_bytes(exact(2), "big")))


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


@pytest.fixture
def resolver(tmp_path, stub):
    r = Resolver(tmp_path, [f"{UPSTREAM}#{stub.port}"])
    yield r
    r.stop()
    r.store.close()


def test_udp_answers_round_robin_ptr_and_who_asks(resolver):
    assert addrs(resolver.query("db")) == ["127.77.0.3"]
    rep = resolver.query("DB.testnet.")
    assert addrs(rep) == ["127.77.0.3"] and rep.rr[0].ttl == 600 and rep.header.rcode == RCODE.NOERROR
    assert addrs(resolver.query(resolver.ids["web2"][:12])) == ["127.77.0.4"]
    assert addrs(resolver.query("host.docker.internal")) == [GW]
    orders = [addrs(resolver.query("web")) for _ in range(3)]
    assert orders[0] == ["127.77.0.3", "127.77.0.4"] and orders[1] == ["127.77.0.4", "127.77.0.3"]
    assert orders[2] == orders[0]
    rep = resolver.query("3.0.77.127.in-addr.arpa", "PTR")
    assert [str(r.rdata) for r in rep.rr] == ["db.testnet."]
    rep = resolver.query("db", "AAAA")
    assert rep.header.rcode == RCODE.NOERROR and rep.rr == []
    # every container asks through its own sockets
    assert addrs(resolver.query("client", src=DB)) == [CLIENT]
    # a stranger's sockets (a container the store does not give this resolver) are let go
    # at the next look at the store (at the latest its once-a-second one)
    assert resolver.give("0" * 64, "127.77.0.9") == "ok"
    time.sleep(1.5)
    with pytest.raises(OSError):
        resolver.query("db", src="127.77.0.9", timeout=0.5)


def test_answers_change_at_once_after_a_store_write(resolver, stub):
    store = resolver.store
    assert addrs(resolver.query("db")) == ["127.77.0.3"]
    ep = store.endpoints_of(resolver.ids["db"])[0]
    ep.ip = None
    with store.tx():
        store.put_endpoint(ep)
    # Stopped: no longer ours, so forwarded (the stub says NXDOMAIN).
    rep = resolver.query("db")
    assert rep.header.rcode == RCODE.NXDOMAIN and stub.seen[-1] == "db."
    assert addrs(resolver.query("web")) == ["127.77.0.4"]
    # ... and its own sockets are closed at once: its namespace must not be kept alive
    with pytest.raises(ConnectionRefusedError):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.connect((DB, resolver.port))
            s.send(DNSRecord.question("web").pack())
            s.recv(512)
    with store.tx():
        store.delete_container(resolver.ids["web2"])
    assert resolver.query("web").header.rcode == RCODE.NXDOMAIN


def test_tcp_several_queries_on_one_connection(resolver):
    with resolver.tcp() as s:
        qs = [DNSRecord.question(n) for n in ("db", "web", "web", "example.test")]
        # Pipelined in one write, then one more after the replies.
        s.sendall(b"".join(len(q.pack()).to_bytes(2, "big") + q.pack() for q in qs))
        reps = {}
        for _ in qs:
            r = tcp_read(s)
            reps.setdefault(r.header.id, []).append(r)
        assert addrs(reps[qs[0].header.id][0]) == ["127.77.0.3"]
        assert sorted(addrs(reps[qs[1].header.id][0])) == ["127.77.0.3", "127.77.0.4"]
        assert addrs(reps[qs[3].header.id][0]) == ["192.0.2.10"]  # forwarded, answered over TCP
        q = DNSRecord.question("web2").pack()
        s.sendall(len(q).to_bytes(2, "big") + q[:5])  # split across two segments
        time.sleep(0.05)
        s.sendall(q[5:])
        assert addrs(tcp_read(s)) == ["127.77.0.4"]


def test_large_answers_truncate_over_udp_only(resolver):
    store = resolver.store
    with store.tx():
        for i in range(40):
            c = Container(id=new_id(), name=f"many{i}", created=now_iso(), state="running")
            store.put_container(c)
            store.put_endpoint(Endpoint(container_id=c.id, network_id=resolver.net_id, position=0,
                                        ip=f"127.77.1.{i + 1}", aliases=["many"]))
    rep = resolver.query("many")  # no EDNS: 512 bytes at most
    assert rep.header.tc == 1 and rep.rr == []
    q = DNSRecord.question("many")
    q.add_ar(EDNS0(udp_len=4096))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q.pack(), (CLIENT, resolver.port))
        rep = DNSRecord.parse(s.recv(65535))
    assert rep.header.tc == 0 and len(addrs(rep)) == 40
    assert any(r.rtype == QTYPE.OPT for r in rep.ar)
    with resolver.tcp() as s:
        q = DNSRecord.question("many").pack()
        s.sendall(len(q).to_bytes(2, "big") + q)
        rep = tcp_read(s)
    assert rep.header.tc == 0 and len(addrs(rep)) == 40


def test_garbage_never_stops_it(resolver):
    good = DNSRecord.question("db").pack()
    header_only = bytearray(good[:12])
    response = bytearray(good)
    response[2] |= 0x80  # QR: a response, not a query
    loop = bytearray(good[:12]) + b"\xc0\x0c\x00\x01\x00\x01"  # compression pointer to itself
    for junk in [os.urandom(40), b"", b"\x00", good[:15], bytes(header_only), bytes(response), bytes(loop),
                 good + os.urandom(5000), os.urandom(4097), os.urandom(65000), b"\xff" * 512]:
        resolver.send_raw(junk)
    assert addrs(resolver.query("db")) == ["127.77.0.3"]
    # TCP: an impossible length, a short message, and a connection closed mid-message.
    for payload in [b"\xff\xff" + os.urandom(100), b"\x00\x05hello", len(good).to_bytes(2, "big") + good[:6]]:
        with resolver.tcp() as s:
            s.sendall(payload)
    with resolver.tcp() as s:
        s.sendall(b"\x00\x20" + os.urandom(32))  # well framed garbage: no reply, connection kept
        s.sendall(len(good).to_bytes(2, "big") + good)
        assert addrs(tcp_read(s)) == ["127.77.0.3"]
    assert addrs(resolver.query("web2")) == ["127.77.0.4"]
    assert supervisor.is_alive(resolver.info.pid, resolver.info.pid_start)


def test_forwarding_to_the_upstream(resolver, stub):
    rep = resolver.query("example.test")
    assert addrs(rep) == ["192.0.2.10"] and rep.header.rcode == RCODE.NOERROR
    assert resolver.query("nothing.test").header.rcode == RCODE.NXDOMAIN
    assert "example.test." in stub.seen


def test_silent_upstream_gives_servfail_without_blocking_others(tmp_path):
    silent, good = Stub(silent=True), Stub()
    r = Resolver(tmp_path, [f"{UPSTREAM}#{silent.port}"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            q = DNSRecord.question("example.test")
            s.sendto(q.pack(), (CLIENT, r.port))
            # While that one waits for its upstream, local names still answer.
            assert addrs(r.query("db", timeout=1.5)) == ["127.77.0.3"]
            rep = DNSRecord.parse(s.recv(4096))
            assert rep.header.id == q.header.id and rep.header.rcode == RCODE.SERVFAIL
        r.stop()
        # Upstreams are tried in turn: the silent one, then one that answers.
        r.upfile.write_text(f"nameserver {UPSTREAM}#{silent.port}\nnameserver {UPSTREAM}:{good.port}\n")
        r.start()
        assert addrs(r.query("example.test", timeout=5)) == ["192.0.2.10"]
        r.stop()
        # No upstream at all: SERVFAIL at once.
        r.upfile.write_text("# nothing\n")
        r.start()
        assert r.query("example.test", timeout=1).header.rcode == RCODE.SERVFAIL
    finally:
        r.stop()
        r.store.close()
        silent.close()
        good.close()


def test_stop_ends_the_process_and_logs_are_per_start_stop(tmp_path, stub):
    r = Resolver(tmp_path, [f"{UPSTREAM}#{stub.port}"])
    try:
        pid, start = r.info.pid, r.info.pid_start
        for _ in range(50):
            r.query("db")
        assert supervisor.is_alive(pid, start)
    finally:
        r.stop()
        r.store.close()
    assert not supervisor.is_alive(pid, start)
    assert not os.path.exists(f"/proc/{pid}") or not supervisor.is_alive(pid, start)
    lines = Path(r.info.log).read_text().splitlines()
    assert len(lines) == 2 and "started" in lines[0] and "stopped by SIGTERM" in lines[1], lines
    assert lines[1].endswith("(exit 0)")
    supervisor.stop(r.info)  # stopping twice is harmless
    supervisor.stop((pid, start))


def test_start_failure_is_a_one_line_error(tmp_path, stub):
    r = Resolver(tmp_path, [f"{UPSTREAM}#{stub.port}"])
    try:
        with pytest.raises(KernelError) as e:  # one resolver per network
            supervisor.start(r.store.path, r.net_id, str(r.upfile), r.dir)
        assert "did not start" in str(e.value) and "in use" in str(e.value) and "\n" not in str(e.value)
        assert addrs(r.query("db")) == ["127.77.0.3"]  # and the running one kept its control socket
        assert embedded.request(embedded.control_address(r.net_id), "status") == "held 3 missing 0"
        with pytest.raises(KernelError) as e:
            supervisor.start(str(tmp_path / "missing.db"), r.net_id, str(r.upfile), str(tmp_path / "l3"))
        assert "did not start" in str(e.value)
    finally:
        r.stop()
        r.store.close()


def shm_locks(pid: int, db: str) -> list[str]:
    """/proc/locks lines of PID on DB's WAL-index (the -shm file)."""
    st = os.stat(db + "-shm")
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return [line for line in f if f" {pid} " in line and f" {inode} " in line]


# What SQLite does when it opens a WAL database's WAL-index (the -shm file) and finds
# no one else holding the lock on its byte 128 (unixLockSharedMemory, "DMS"): it thinks
# itself the only user, truncates the file (to 3 bytes) and rebuilds it. Here with the
# rebuilding made slow, so that a reader of a mapping of the file cannot miss it.
FIRST_OPENER = """
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
if struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, flock))[0] == fcntl.F_UNLCK:
    content = os.pread(fd, 1 << 20, 0)
    os.ftruncate(fd, 3)
    time.sleep(0.3)
    os.pwrite(fd, content, 0)
    print("truncated")
"""


def test_resolver_keeps_its_lock_on_the_wal_index_so_no_engine_truncates_it(resolver):
    """Issue 11, item 12: under load, resolvers died of SIGBUS with no last word. The
    resolver maps the WAL-index (-shm) to watch the store, and closed its own file
    descriptor of that file after mapping it: closing any descriptor of a file drops
    every POSIX lock the process holds on it, SQLite's own lock on the -shm included.
    The next command to open the store then believed it was its only user and
    truncated the -shm to rebuild it, and a resolver reading its mapping meanwhile got
    SIGBUS. The resolver must hold that lock for as long as it runs."""
    import subprocess

    db = resolver.store.path
    assert addrs(resolver.query("db")) == ["127.77.0.3"]
    assert shm_locks(resolver.info.pid, db), "the resolver holds no lock on the WAL-index"
    resolver.store.close()  # the resolver alone has the store open, as between two commands
    try:
        opener = subprocess.Popen([sys.executable, "-c", FIRST_OPENER, db + "-shm"], stdout=subprocess.PIPE, text=True)
        while opener.poll() is None:
            assert addrs(resolver.query("db", timeout=1)) == ["127.77.0.3"]
        assert opener.stdout.read() == ""  # it saw the resolver's lock and left the file alone
        assert supervisor.is_alive(resolver.info.pid, resolver.info.pid_start)
    finally:
        resolver.store = Store(db)


AS_NOBODY = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(3)
s.connect("\\0" + sys.argv[1])
try:
    s.send(b"drop " + sys.argv[2].encode())
    print(repr(s.recv(256)))
except OSError as e:  # hung up on before or after the request
    print(type(e).__name__)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_the_control_socket_answers_root_only(resolver):
    """An abstract unix socket has no file permissions: the resolver checks who asks."""
    import subprocess

    p = subprocess.run([sys.executable, "-c", AS_NOBODY, embedded.control_address(resolver.net_id)[1:],
                        resolver.ids["client"]], capture_output=True, text=True, timeout=10)
    assert p.stdout.strip() in ("b''", "BrokenPipeError", "ConnectionResetError"), (p.stdout, p.stderr)
    assert addrs(resolver.query("db")) == ["127.77.0.3"]  # client's sockets still held


def test_last_words_say_how_a_resolver_ended(tmp_path, stub):
    """Issue 11, item 12: what `system info` shows of a dead resolver. From waitpid
    when the resolver is this process's child; otherwise from its log: faulthandler's
    report of a fatal signal, its own last line, or nothing at all (SIGKILL)."""
    import signal

    r = Resolver(tmp_path, [f"{UPSTREAM}#{stub.port}"])
    try:
        supervisor.stop(r.info)  # SIGTERM: it says so, and exits 0
        words = supervisor.last_words(r.info)
        assert words["Ended"] == "exit 0" and "stopped by SIGTERM" in words["LastLines"][-1]
        for sig, ended in ((signal.SIGSEGV, "killed by SIGSEGV"), (signal.SIGKILL, "killed without a word: SIGKILL")):
            r.start()
            supervisor._children.pop(r.info.pid)  # as for an engine that did not start it
            os.kill(r.info.pid, sig)
            os.waitpid(r.info.pid, 0)
            words = supervisor.keep_last_words(r.info)
            assert words["Pid"] == r.info.pid and words["Ended"].startswith(ended), words
            assert f"nsbridge-dns[{r.info.pid}]" in words["LastLines"][0] and "started" in words["LastLines"][0]
            assert supervisor.read_last_words(r.info.log) == words
        # the SIGSEGV's report is in that resolver's lines, not in the next one's
        r.start()
        os.kill(r.info.pid, signal.SIGBUS)
        words = supervisor.last_words(r.info)  # our child: from waitpid
        assert words["Ended"] == "killed by SIGBUS"
        assert any(line.startswith("Fatal Python error: Bus error") for line in words["LastLines"])
        supervisor.forget(r.info.log)
        assert supervisor.read_last_words(r.info.log) is None
    finally:
        r.stop()
        r.store.close()


def selfcheck(r: Resolver, n: int = 2000) -> tuple[float, float]:
    """n sequential UDP queries from one client; every one must be answered, right."""
    names = [(b"db", ["127.77.0.3"]), (b"web2", ["127.77.0.4"])]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect((CLIENT, r.port))
        wire = [DNSRecord.question(x.decode()).pack() for x, _ in names]
        lat = []
        t0 = time.perf_counter()
        for i in range(n):
            q = bytearray(wire[i % 2])
            q[:2] = (i & 0xFFFF).to_bytes(2, "big")
            t = time.perf_counter()
            s.send(q)
            data = s.recv(4096)
            lat.append(time.perf_counter() - t)
            assert data[:2] == q[:2]
            if i < 10 or i % 500 == 0:
                assert addrs(DNSRecord.parse(data)) == names[i % 2][1]
        total = time.perf_counter() - t0
    return n / total, statistics.median(lat) * 1e6


def test_selfcheck_sequential_burst(resolver, capsys):
    qps, p50 = selfcheck(resolver)
    with capsys.disabled():
        print(f"\n  dns self-check: {qps:.0f} qps, p50 {p50:.0f} us (information only)")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        stub_ = Stub()
        res = Resolver(Path(d), [f"{UPSTREAM}#{stub_.port}"])
        try:
            selfcheck(res, 2000)  # warm up
            qps_, p50_ = selfcheck(res, int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
            print(f"{qps_:.0f} qps, p50 {p50_:.0f} us")
        finally:
            res.stop()
            res.store.close()
            stub_.close()
