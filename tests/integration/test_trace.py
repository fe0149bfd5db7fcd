"""`nsbridge trace` on real traffic: a network's bridge ports and a
container's interfaces, hops named by nsbridge's names, a pcap that tcpdump
reads back, and a one-line answer where scapy is missing."""
from __future__ import annotations

import json
import subprocess

from tests.integration.helpers import ip_of


def start(sb, *args: str) -> subprocess.Popen:
    p = subprocess.Popen(sb.argv("trace", *args), env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, stdin=subprocess.DEVNULL)
    first = p.stdout.readline()
    assert first.startswith("capturing on "), (first, p.stderr.read() if p.poll() is not None else "")
    return p


def finish(p: subprocess.Popen) -> list[str]:
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    return out.splitlines()


def veth_of(sb, ctr: str) -> str:
    c = json.loads(sb.cli("show", ctr, "--format", "json", check=True).stdout)["containers"][0]
    return c["endpoints"][0]["host_veth"]


def lab(sb) -> None:
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)


def test_network_capture_names_every_hop_and_writes_a_pcap(sb, tmp_path):
    lab(sb)
    pcap = tmp_path / "skynet.pcap"
    p = start(sb, "skynet", "icmp", "-c", "2", "--timeout", "20", "-w", str(pcap))
    sb.cli("exec", "web", "/usr/bin/ping", "-c", "1", "-W", "2", ip_of(sb, "db"), check=True)
    lines = finish(p)
    bridge = json.loads(sb.cli("network", "inspect", "skynet", check=True).stdout)[0]["Id"][:12]
    hops = f"web:eth0 -> {veth_of(sb, 'web')} -> br-{bridge} (skynet) -> {veth_of(sb, 'db')} -> db:eth0"
    back = f"db:eth0 -> {veth_of(sb, 'db')} -> br-{bridge} (skynet) -> {veth_of(sb, 'web')} -> web:eth0"
    assert hops in lines[0] and f"ICMP echo-request {ip_of(sb, 'web')} > {ip_of(sb, 'db')}" in lines[0], lines
    assert back in lines[1] and "ICMP echo-reply" in lines[1], lines
    assert lines[-1] == f"2 packets captured, written to {pcap}"
    read = subprocess.run(["tcpdump", "-nr", str(pcap)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(read) == 2 and "ICMP echo request" in read[0] and "ICMP echo reply" in read[1], read


def test_container_capture_with_a_filter_shows_dns_and_arp(sb):
    lab(sb)
    p = start(sb, "web", "port", "53", "-c", "2", "--timeout", "20")
    sb.cli("exec", "web", "getent", "ahostsv4", "db", check=True)
    lines = finish(p)
    assert "DNS query A db?" in lines[0] and lines[0].split()[1].startswith("web:"), lines
    assert f"DNS answer db NOERROR {ip_of(sb, 'db')}" in lines[1], lines
    # ARP on one veth, in the host namespace
    veth = veth_of(sb, "web")
    p = start(sb, veth, "arp", "-c", "1", "--timeout", "20")
    subprocess.run(["ip", "-n", f"{sb.name}-web", "neigh", "flush", "all"], check=True)
    sb.cli("exec", "web", "/usr/bin/ping", "-c", "1", "-W", "2", ip_of(sb, "db"), check=True)
    lines = finish(p)
    assert "ARP who-has" in lines[0] or "is-at" in lines[0], lines


def test_errors_are_one_line(sb, tmp_path):
    lab(sb)
    for args, msg in [(("nosuch",), "No such network, container or veth: nosuch"),
                      (("web:eth7",), "container web has no interface eth7"),
                      (("web", "bogus(("), "invalid filter 'bogus(('"),
                      (("web", "-c", "-1"), "invalid count '-1'")]:
        p = sb.cli("trace", *args, "--timeout", "1")
        assert p.returncode == 1 and msg in p.stderr, (args, p.stderr)
        assert len([ln for ln in p.stderr.strip().splitlines() if not ln.startswith("See '")]) == 1, p.stderr
    # without scapy: says how to get it
    fake = tmp_path / "noscapy" / "scapy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no scapy here')\n")
    env = {**sb.env, "PYTHONPATH": str(fake.parent)}
    p = subprocess.run(sb.argv("trace", "skynet", "--timeout", "1"), env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.strip() == (
        "Error: nsbridge trace needs the scapy package: run `sudo ./setup.sh install` "
        "(or `pip install 'nsbridge[tools]'` in nsbridge's environment)"), p.stderr
    p = sb.cli("trace", "skynet", "--timeout", "1")
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == "0 packets captured"
