"""Real probes from inside a network namespace, made in-process.

Each probe opens its socket with the calling thread inside the namespace (a
socket stays bound to the namespace it was created in), comes straight back,
and does its I/O from wherever it was called: no process is spawned, and the
thread spends a few microseconds away. `None` as the namespace means the
current one. The answer is what the kernel did: a reply, a refusal, an ICMP
error, or nothing within the timeout.

`detail` is one line, in the words ping/connect/nslookup would use
("connection refused", "no route to host", "NXDOMAIN"); `reason` is a short
machine-readable class of it for callers that branch (`why`, `lab check`).
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import time

from nsbridge.record import field, record

# reason values
OK = "ok"
TIMEOUT = "timeout"
REFUSED = "refused"
UNREACHABLE = "unreachable"  # an ICMP destination-unreachable came back
NO_ROUTE = "no-route"  # the kernel refused to send: no route, or a host/net unreachable error
NXDOMAIN = "nxdomain"
NO_ADDRESS = "no-address"  # the name exists but has no A record
DNS_ERROR = "dns-error"  # SERVFAIL, REFUSED, a malformed answer
ERROR = "error"  # anything else the kernel said (its strerror is the detail)


@record
class ProbeResult:
    ok: bool
    detail: str
    rtt_ms: float | None = None
    addresses: list[str] = field(default_factory=list)
    reason: str = ""

    def __str__(self) -> str:
        rtt = f" ({self.rtt_ms:.2f} ms)" if self.rtt_ms is not None else ""
        return f"{'ok' if self.ok else 'failed'}: {self.detail}{rtt}"


def open_socket(netns_path: str | None, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A socket of the namespace at NETNS_PATH (None: the current one)."""
    if netns_path is None:
        return socket.socket(family, type_, proto)
    from nsbridge.kernel.ns import in_netns

    with in_netns(netns_path):
        return socket.socket(family, type_, proto)


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 3)


def _waited(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _os_error(e: OSError) -> ProbeResult:
    """What the kernel said when asked to send or connect, as a probe result."""
    if e.errno == errno.ECONNREFUSED:
        return ProbeResult(False, "connection refused", reason=REFUSED)
    if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ProbeResult(False, os.strerror(e.errno).lower(), reason=NO_ROUTE)
    if e.errno == errno.EPERM:  # a netfilter DROP/REJECT in the sender's own OUTPUT path
        return ProbeResult(False, "operation not permitted (refused by a firewall rule of the sender)", reason=ERROR)
    return ProbeResult(False, (os.strerror(e.errno) if e.errno else str(e)).lower(), reason=ERROR)


def _ipv4(text: str) -> str:
    """TEXT as a dotted-quad IPv4 address, or ValueError (inet_aton alone
    would take "10.1" and "0x7f.1")."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r} (resolve a name first: probe.resolve)")
    return ".".join(str(int(p)) for p in parts)


# -- ICMP echo ------------------------------------------------------------------------
ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIME_EXCEEDED = 0, 3, 8, 11
UNREACH_CODES = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed",
    6: "destination network unknown",
    7: "destination host unknown",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited",
}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes = b"nsbridge-probe\0\0") -> bytes:
    head = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, checksum(head + payload), ident, seq) + payload


def match_icmp(packet: bytes, target: str, ident: int, seq: int) -> tuple[str, str] | None:
    """Classify one packet read from a raw ICMP socket (IP header included):
    ("reply", source) for our echo reply from TARGET, ("unreachable"/"time
    exceeded", "<what> from <source>") for an ICMP error quoting our request,
    None for anyone else's traffic (a raw socket sees all ICMP of the netns)."""
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src = socket.inet_ntoa(packet[12:16])
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    typ, code = icmp[0], icmp[1]
    if typ == ICMP_ECHO_REPLY:
        rid, rseq = struct.unpack("!HH", icmp[4:8])
        return ("reply", src) if (rid, rseq) == (ident, seq) and src == target else None
    if typ not in (ICMP_UNREACH, ICMP_TIME_EXCEEDED):
        return None
    inner = icmp[8:]  # the offending datagram: its IP header and at least 8 bytes of ours
    if len(inner) < 20:
        return None
    iihl = (inner[0] & 0x0F) * 4
    quoted = inner[iihl:iihl + 8]
    if inner[9] != socket.IPPROTO_ICMP or socket.inet_ntoa(inner[16:20]) != target or len(quoted) < 8:
        return None
    qtyp, _qc, _qs, qid, qseq = struct.unpack("!BBHHH", quoted)
    if (qtyp, qid, qseq) != (ICMP_ECHO, ident, seq):
        return None
    if typ == ICMP_TIME_EXCEEDED:
        return ("time exceeded", f"time to live exceeded from {src}")
    what = UNREACH_CODES.get(code, f"code {code}")
    return ("unreachable", f"destination unreachable ({what}) from {src}")


def icmp(netns_path: str | None, target: str, timeout: float = 1.0) -> ProbeResult:
    """One ICMP echo request to TARGET over a raw socket (needs root), matched
    to its reply by identifier and sequence."""
    target = _ipv4(target)
    ident, seq = int.from_bytes(os.urandom(2), "big"), 1
    s = open_socket(netns_path, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        t0 = time.monotonic()
        try:
            s.sendto(echo_request(ident, seq), (target, 0))
        except OSError as e:
            return _os_error(e)
        deadline = t0 + timeout
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                packet = s.recv(65535)
            except TimeoutError:
                break
            except OSError as e:
                return _os_error(e)
            hit = match_icmp(packet, target, ident, seq)
            if hit is None:
                continue
            if hit[0] == "reply":
                return ProbeResult(True, f"echo reply from {target}", _ms(t0), [target], OK)
            return ProbeResult(False, hit[1], _ms(t0), reason=UNREACHABLE)
        return ProbeResult(False, _waited(timeout), reason=TIMEOUT)
    finally:
        s.close()


# -- TCP and UDP -------------------------------------------------------------------------
def tcp(netns_path: str | None, host: str, port: int, timeout: float = 1.0) -> ProbeResult:
    """A TCP connect to HOST:PORT (then closed)."""
    return _exchange(netns_path, host, port, None, timeout)


def udp(netns_path: str | None, host: str, port: int, payload: bytes = b"", timeout: float = 1.0) -> ProbeResult:
    """One datagram to HOST:PORT; ok when anything comes back. An ICMP port
    unreachable is "connection refused"; silence is a timeout (a UDP service
    that never answers looks the same as a dropped packet: say so to users)."""
    return _exchange(netns_path, host, port, payload, timeout)


def _exchange(netns_path: str | None, host: str, port: int, payload: bytes | None, timeout: float) -> ProbeResult:
    """A TCP connect (PAYLOAD None) or a UDP datagram and its answer."""
    host = _ipv4(host)
    with open_socket(netns_path, socket.AF_INET, socket.SOCK_STREAM if payload is None else socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        t0 = time.monotonic()
        try:
            s.connect((host, port))
            if payload is not None:
                s.send(payload)
                got = len(s.recv(65535))
        except TimeoutError:
            return ProbeResult(False, _waited(timeout), reason=TIMEOUT)
        except OSError as e:
            return _os_error(e)
        return ProbeResult(True, "connected" if payload is None else f"answered ({got} bytes)", _ms(t0), [host], OK)


# -- names -------------------------------------------------------------------------------
@record
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    ndots: int = 1


def parse_resolv_conf(text: str) -> ResolvConf:
    """glibc's reading: nameserver lines in order (IPv4 only here), the last
    search/domain line wins, options ndots:N; no nameserver means 127.0.0.1."""
    rc = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "nameserver" and args:
            try:
                rc.nameservers.append(_ipv4(args[0]))
            except ValueError:
                pass  # IPv6 servers: nsbridge's networks are IPv4
        elif key in ("search", "domain"):
            rc.search = args[:6]
        elif key == "options":
            for opt in args:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    rc.ndots = min(int(opt[6:]), 15)
    if not rc.nameservers:
        rc.nameservers = ["127.0.0.1"]
    return rc


def candidates(name: str, rc: ResolvConf) -> list[str]:
    """The names libc asks for, in order (search list and ndots)."""
    if name.endswith("."):
        return [name.rstrip(".")]
    searched = [f"{name}.{d.strip('.')}" for d in rc.search if d.strip(".")]
    if name.count(".") >= rc.ndots:
        return [name, *searched]
    return [*searched, name]


def hosts_lookup(text: str, name: str) -> list[str]:
    """IPv4 addresses the hosts file gives NAME (canonical name or alias)."""
    want = name.rstrip(".").lower()
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or want not in (w.lower() for w in words[1:]):
            continue
        try:
            addr = _ipv4(words[0])
        except ValueError:
            continue
        if addr not in out:
            out.append(addr)
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _query(netns_path: str | None, server: str, qname: str, timeout: float) -> tuple[str, list[str], str, float | None]:
    """One A query over UDP: (rcode name or reason, addresses, detail, rtt)."""
    from dnslib import QTYPE, RCODE, DNSRecord

    q = DNSRecord.question(qname, "A")
    s = open_socket(netns_path, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        t0 = time.monotonic()
        try:
            s.connect((server, 53))
            s.send(q.pack())
            while True:
                data = s.recv(65535)
                try:
                    a = DNSRecord.parse(data)
                except Exception:  # dnslib raises its own DNSError and struct errors
                    return DNS_ERROR, [], f"malformed answer from {server}", _ms(t0)
                if a.header.id == q.header.id:
                    break
        except TimeoutError:
            return TIMEOUT, [], f"no answer from {server} within {timeout:g} s", None
        except OSError as e:
            r = _os_error(e)
            return r.reason, [], f"{r.detail} ({server}:53)", None
        rtt = _ms(t0)
    finally:
        s.close()
    rcode = RCODE.get(a.header.rcode)
    addrs = [str(rr.rdata) for rr in a.rr if rr.rtype == QTYPE.A]
    return str(rcode), addrs, f"{rcode} from {server}", rtt


def resolve(netns_path: str | None, name: str, resolv_conf: str, hosts: str | None = None,
            timeout: float = 1.0) -> ProbeResult:
    """Look NAME up as the container's libc would: the HOSTS file first, then
    the nameservers of RESOLV_CONF, asked from inside the namespace (each
    server in order, for each name of the search list)."""
    if hosts:
        try:
            found = hosts_lookup(_read(hosts), name)
        except OSError:
            found = []
        if found:
            return ProbeResult(True, f"resolved to {', '.join(found)} (hosts file)", 0.0, found, OK)
    try:
        rc = parse_resolv_conf(_read(resolv_conf))
    except OSError as e:
        return ProbeResult(False, f"cannot read {resolv_conf}: {os.strerror(e.errno or 0).lower()}", reason=ERROR)
    failures: list[ProbeResult] = []
    for qname in candidates(name, rc):
        for server in rc.nameservers:
            code, addrs, detail, rtt = _query(netns_path, server, qname, timeout)
            if code == "NOERROR" and addrs:
                return ProbeResult(True, f"resolved to {', '.join(addrs)}", rtt, addrs, OK)
            if code == "NOERROR":  # the name exists, without an address: next name of the search list
                failures.append(ProbeResult(False, f"no address for {qname} (NOERROR, no A record)", rtt,
                                            reason=NO_ADDRESS))
                break
            if code == "NXDOMAIN":  # authoritative: libc asks no other server
                failures.append(ProbeResult(False, "NXDOMAIN", rtt, reason=NXDOMAIN))
                break
            # SERVFAIL, REFUSED, a timeout or an ICMP error: libc tries the next server
            failures.append(ProbeResult(False, detail, rtt, reason=code if code in (TIMEOUT, REFUSED, NO_ROUTE)
                                        else DNS_ERROR))
    # the most telling failure: a server problem, then "exists without address", then NXDOMAIN
    rank = {NXDOMAIN: 2, NO_ADDRESS: 1}
    return min(failures, key=lambda r: rank.get(r.reason, 0))
