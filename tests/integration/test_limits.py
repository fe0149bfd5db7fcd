"""Limits (issue 6): what the kernel or the address plan cannot give is refused
clearly, in one line, and the refused command leaves nothing behind.

- a bridge takes 1023 ports (BR_MAX_PORTS 1024, port 0 reserved; EXFULL after):
  the 1024th endpoint is refused, not half made;
- no default pool left (every one overlaps a network or a host route): Docker's
  "could not find an available, non-overlapping IPv4 address pool ...";
- no address left in a subnet or ip-range: Docker's "no available IPv4 addresses
  on this network's address pools: NAME (ID)".
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from tests.integration.test_hostile_input import assert_unchanged, error_lines, snapshot

D = "Error response from daemon: "
R = "nsbridge: "


def net_id(sb, name: str) -> str:
    return sb.cli("network", "inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


def bridge_ports(sb, bridge: str) -> int:
    """Ports of BRIDGE in the sandbox host (`ip netns exec` mounts that namespace's /sys)."""
    return int(sb.host_run("sh", "-c", f"ls /sys/class/net/{bridge}/brif | wc -l", check=True).stdout)


def refused(r, code: int) -> str:
    """The one error line of a refused command."""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = error_lines(r.stderr)
    assert r.returncode == code and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


def test_the_1024th_port_of_a_bridge_is_refused_cleanly(sb):
    sb.cli("network", "create", "--subnet", "10.100.0.0/16", "big", check=True)
    sb.cli("run", "-d", "--name", "outsider", "alpine", check=True)  # on the default bridge
    br = "br-" + net_id(sb, "big")[:12]
    # 1022 plain veths on the bridge in one `ip -batch` (IPv6 off first: no per-port DAD and MLD)
    sb.host_run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        for i in range(1022):
            f.write(f"link add lim{i}a type veth peer name lim{i}b\nlink set lim{i}a master {br}\n")
    try:
        t0 = time.monotonic()
        sb.host_run("ip", "-batch", f.name, timeout=300, check=True)
        print(f"1022 veths on {br} in {time.monotonic() - t0:.1f} s")
    finally:
        os.unlink(f.name)
    assert bridge_ports(sb, br) == 1022
    # the 1023rd port: fits
    sb.cli("run", "-d", "--name", "fits", "--network", "big", "alpine", check=True)
    assert bridge_ports(sb, br) == 1023
    assert sb.cli("exec", "fits", "ping", "-c1", "-W2", "10.100.0.1").returncode == 0
    # the 1024th: refused with a clear line, nothing left (no container, netns, veth, rule, row)
    before = snapshot(sb)
    line = refused(sb.cli("run", "-d", "--name", "overflow", "--network", "big", "alpine"), 125)
    assert line.startswith(R + D + "failed to create endpoint on network big: ") and line.endswith(
        "bridge port limit reached (the kernel allows 1023 ports per bridge)"), line
    assert br in line, line
    assert_unchanged(before, snapshot(sb))
    # the same for a running container joining the full network
    line = refused(sb.cli("network", "connect", "big", "outsider"), 1)
    assert line.endswith("bridge port limit reached (the kernel allows 1023 ports per bridge)"), line
    assert_unchanged(before, snapshot(sb))
    out = sb.cli("exec", "outsider", "ip", "-o", "link", check=True).stdout
    assert [x.split(": ")[1].split("@")[0] for x in out.splitlines()] == ["lo", "eth0"]
    # a freed port is usable again
    sb.host_run("ip", "link", "del", "lim0a", check=True)
    sb.cli("run", "-d", "--name", "overflow", "--network", "big", "alpine", check=True)
    assert bridge_ports(sb, br) == 1023


def test_host_routes_count_and_an_exhausted_pool_gives_dockers_error(sb):
    sb.cli("network", "ls", check=True)  # the default bridge takes 172.17.0.0/16
    # a host route over 172.18.0.0/16 is skipped like a network
    sb.host_run("ip", "route", "add", "blackhole", "172.18.0.0/16", check=True)
    sb.cli("network", "create", "one", check=True)
    subnet = json.loads(sb.cli("network", "inspect", "--format", "{{json .IPAM.Config}}", "one",
                               check=True).stdout)[0]["Subnet"]
    assert subnet == "172.19.0.0/16"
    # every default pool covered (172.16.0.0/12 and 192.168.0.0/16): Docker's error, nothing made
    sb.host_run("ip", "route", "add", "blackhole", "172.16.0.0/12", check=True)
    sb.host_run("ip", "route", "add", "blackhole", "192.168.0.0/16", check=True)
    before = snapshot(sb)
    line = refused(sb.cli("network", "create", "xx"), 1)
    assert line == D + ("could not find an available, non-overlapping IPv4 address pool among the defaults "
                        "to assign to the network")
    assert_unchanged(before, snapshot(sb))
    # an explicit subnet still works, and so does the pool once a route is gone
    sb.cli("network", "create", "--subnet", "10.77.0.0/24", "explicit", check=True)
    sb.host_run("ip", "route", "del", "blackhole", "192.168.0.0/16", check=True)
    sb.cli("network", "create", "xx", check=True)
    subnet = json.loads(sb.cli("network", "inspect", "--format", "{{json .IPAM.Config}}", "xx",
                               check=True).stdout)[0]["Subnet"]
    assert subnet == "192.168.0.0/20"


def test_a_full_subnet_or_ip_range_gives_dockers_error(sb):
    sb.cli("network", "create", "--subnet", "10.50.0.0/30", "tiny", check=True)
    sb.cli("network", "create", "--subnet", "10.60.0.0/24", "--ip-range", "10.60.0.8/30", "ranged", check=True)
    sb.cli("network", "create", "--subnet", "10.70.0.0/24", "roomy", check=True)
    sb.cli("run", "-d", "--name", "outsider", "alpine", check=True)
    tiny, ranged = net_id(sb, "tiny"), net_id(sb, "ranged")
    sb.cli("run", "-d", "--name", "t1", "--network", "tiny", "alpine", check=True)
    # no --gateway: the gateway is the range's first address (.8), as libnetwork picks it
    assert sb.cli("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "ranged",
                  check=True).stdout.strip() == "10.60.0.8"
    for i in range(3):  # .9 .. .11
        sb.cli("run", "-d", "--name", f"r{i}", "--network", "ranged", "alpine", check=True)
    before = snapshot(sb)
    full = "no available IPv4 addresses on this network's address pools: {} ({})"
    assert refused(sb.cli("run", "-d", "--name", "t2", "--network", "tiny", "alpine"), 125) == \
        R + D + full.format("tiny", tiny)
    assert refused(sb.cli("run", "-d", "--name", "r3", "--network", "ranged", "alpine"), 125) == \
        R + D + full.format("ranged", ranged)
    assert refused(sb.cli("network", "connect", "tiny", "outsider"), 1) == D + full.format("tiny", tiny)
    # a second network of a multi-network run is full: the first one's endpoint goes too
    assert refused(sb.cli("run", "-d", "--name", "two", "--network", "roomy", "--network", "tiny", "alpine"),
                   125) == R + D + full.format("tiny", tiny)
    assert_unchanged(before, snapshot(sb))
    # a freed address is handed out again
    sb.cli("rm", "-f", "t1", check=True)
    sb.cli("run", "-d", "--name", "t2", "--network", "tiny", "alpine", check=True)
    out = sb.cli("inspect", "--format", '{{(index .NetworkSettings.Networks "tiny").IPAddress}}', "t2", check=True)
    assert out.stdout.strip() == "10.50.0.2"
