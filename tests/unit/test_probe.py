"""The pure parts of nsbridge.probe: ICMP packets built and matched, resolv.conf
and hosts files read as glibc reads them. The probes themselves run on real
namespaces in tests/integration/test_probe.py."""
from __future__ import annotations

import socket
import struct

import pytest

from nsbridge import probe


def ip_header(src: str, dst: str, proto: int = socket.IPPROTO_ICMP) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))


def test_checksum_of_a_request_verifies_to_zero():
    pkt = probe.echo_request(0x1234, 7)
    assert probe.checksum(pkt) == 0
    assert pkt[0] == 8 and struct.unpack("!HH", pkt[4:8]) == (0x1234, 7)
    assert probe.checksum(probe.echo_request(1, 1, b"odd")) == 0  # odd length padded


def reply(src: str, ident: int, seq: int) -> bytes:
    return ip_header(src, "10.0.0.1") + struct.pack("!BBHHH", 0, 0, 0, ident, seq) + b"x" * 8


def test_echo_reply_matched_by_id_seq_and_source():
    assert probe.match_icmp(reply("172.20.0.3", 5, 1), "172.20.0.3", 5, 1) == ("reply", "172.20.0.3")
    assert probe.match_icmp(reply("172.20.0.3", 6, 1), "172.20.0.3", 5, 1) is None  # another pinger's
    assert probe.match_icmp(reply("172.20.0.3", 5, 2), "172.20.0.3", 5, 1) is None
    assert probe.match_icmp(reply("172.20.0.4", 5, 1), "172.20.0.3", 5, 1) is None
    assert probe.match_icmp(b"\x45short", "172.20.0.3", 5, 1) is None


def error(typ: int, code: int, frm: str, quoted_dst: str, ident: int, seq: int, qtype: int = 8) -> bytes:
    quoted = ip_header("10.0.0.1", quoted_dst) + struct.pack("!BBHHH", qtype, 0, 0, ident, seq)
    return ip_header(frm, "10.0.0.1") + struct.pack("!BBHI", typ, code, 0, 0) + quoted


def test_unreachable_quoting_our_request_is_named():
    got = probe.match_icmp(error(3, 0, "172.20.0.1", "192.0.2.1", 9, 1), "192.0.2.1", 9, 1)
    assert got == ("unreachable", "destination unreachable (network unreachable) from 172.20.0.1")
    got = probe.match_icmp(error(3, 13, "172.20.0.1", "192.0.2.1", 9, 1), "192.0.2.1", 9, 1)
    assert got[1] == "destination unreachable (communication administratively prohibited) from 172.20.0.1"
    assert probe.match_icmp(error(11, 0, "10.9.9.9", "192.0.2.1", 9, 1), "192.0.2.1", 9, 1)[0] == "time exceeded"
    # errors about someone else's packet are not ours
    assert probe.match_icmp(error(3, 1, "172.20.0.1", "192.0.2.1", 8, 1), "192.0.2.1", 9, 1) is None
    assert probe.match_icmp(error(3, 1, "172.20.0.1", "192.0.2.2", 9, 1), "192.0.2.1", 9, 1) is None
    assert probe.match_icmp(error(3, 1, "172.20.0.1", "192.0.2.1", 9, 1, qtype=0), "192.0.2.1", 9, 1) is None


def test_ipv4_literals_only():
    assert probe._ipv4("172.020.0.3") == "172.20.0.3"
    for bad in ("10.1", "db", "1.2.3.256", "0x7f.0.0.1", "", "1.2.3.4.5"):
        with pytest.raises(ValueError, match="not an IPv4 address"):
            probe._ipv4(bad)


def test_resolv_conf_read_as_glibc_does():
    rc = probe.parse_resolv_conf(
        "# generated\nsearch a.example b.example\nnameserver 127.0.0.11\nnameserver ::1\n"
        "domain c.example\nnameserver 10.0.0.2 ; comment\noptions ndots:0 timeout:2\n"
    )
    assert rc.nameservers == ["127.0.0.11", "10.0.0.2"]  # loopback kept: 127.0.0.11 is the embedded resolver
    assert rc.search == ["c.example"]  # the last search/domain line wins
    assert rc.ndots == 0
    assert probe.parse_resolv_conf("").nameservers == ["127.0.0.1"]  # glibc's default


def test_search_list_order_follows_ndots():
    rc = probe.ResolvConf(["10.0.0.2"], ["lab.example"], 1)
    assert probe.candidates("db", rc) == ["db.lab.example", "db"]
    assert probe.candidates("db.x", rc) == ["db.x", "db.x.lab.example"]
    assert probe.candidates("db.", rc) == ["db"]
    assert probe.candidates("db", probe.ResolvConf(["10.0.0.2"], ["lab.example"], 0)) == ["db", "db.lab.example"]


def test_hosts_file_names_and_aliases():
    text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n172.17.0.3\tdb 0a1b2c3d\n172.17.0.3 db\n# 1.2.3.4 web\n"
    assert probe.hosts_lookup(text, "DB") == ["172.17.0.3"]
    assert probe.hosts_lookup(text, "0a1b2c3d") == ["172.17.0.3"]
    assert probe.hosts_lookup(text, "localhost") == ["127.0.0.1"]  # IPv4 only
    assert probe.hosts_lookup(text, "web") == []


def test_result_text():
    assert str(probe.ProbeResult(True, "connected", 0.5)) == "ok: connected (0.50 ms)"
    assert str(probe.ProbeResult(False, "connection refused")) == "failed: connection refused"
