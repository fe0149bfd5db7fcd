"""The engine's promises (issue 3): validate first and leave nothing behind,
serialise concurrent commands, Docker's errors, firewall options, and
coexistence with a Docker that already runs on the host."""
from __future__ import annotations

import concurrent.futures
import json

from tests.integration.helpers import TCP_SERVER, ip_of, tcp_client, wait_listening


def snapshot(sb) -> dict:
    """Everything a failed command must leave as it was."""
    return {
        "netns": sb.netns_names(),
        "links": sorted(
            line.split(": ")[1].split("@")[0]
            for line in sb.host_run("ip", "-o", "link", check=True).stdout.splitlines()
        ),
        "rules": sorted(
            line for line in sb.host_run("iptables-save", check=True).stdout.splitlines() if not line.startswith("#")
        ),
        "containers": sb.cli("ps", "-a", "--no-trunc", "-q", check=True).stdout,
        "networks": sb.cli("network", "ls", "-q", "--no-trunc", check=True).stdout,
        "processes": sb.processes(),
    }


def test_failed_run_leaves_nothing(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "keep", "--network", "skynet", "alpine", check=True)
    before = snapshot(sb)
    r = sb.cli("run", "-d", "--name", "half", "--network", "skynet", "--network", "nosuch", "alpine")
    assert r.returncode == 125
    assert r.stderr.startswith("nsbridge: Error response from daemon: network nosuch not found")
    # a kernel step failing late (injected) rolls back every earlier one
    for step in ("endpoint.veth", "endpoint.address", "container.files", "container.record"):
        env = dict(sb.env, NSBRIDGE_TEST_FAIL_AT=step)
        import subprocess

        p = subprocess.run(sb.argv("run", "-d", "--name", "half", "--network", "skynet", "alpine"),
                           env=env, capture_output=True, text=True)
        assert p.returncode != 0, step
        assert f"injected failure at step {step}" in p.stderr
    for bad in (
        ["run", "-d", "--name", "x", "alpine"],
        ["run", "-d", "--name", "bad!name", "alpine"],
        ["run", "-d", "--name", "keep", "alpine"],
        ["run", "-d", "--ip", "172.17.0.50", "alpine"],
        ["run", "-d", "--network", "skynet", "--ip", "10.99.0.5", "alpine"],
        ["run", "-d", "--network", "none", "--network", "skynet", "alpine"],
        ["run", "-d", "--network", "container:nosuch", "alpine"],
        ["run", "-d", "--", "nosuchcommand"],
        ["network", "create", "skynet"],
        ["network", "create", "--subnet", "172.18.5.0/24", "overlap"],
        ["network", "create", "-o", "com.docker.network.driver.mtu=10", "mtu10"],
        ["network", "connect", "skynet", "keep"],
        ["network", "connect", "host", "keep"],
        ["network", "disconnect", "bridge", "keep"],
        ["rm", "keep"],
    ):
        assert sb.cli(*bad).returncode != 0, bad
    assert snapshot(sb) == before


def test_docker_error_texts(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("network", "create", "--subnet", "10.10.0.0/24", "lab", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    cases = [
        (["network", "create", "skynet"], 1, "Error response from daemon: network with name skynet already exists"),
        (["network", "rm", "nosuch"], 1, "Error response from daemon: network nosuch not found"),
        (["network", "create", "--subnet", "172.18.0.0/16", "overlap"], 1,
         "Error response from daemon: Pool overlaps with other one on this address space"),
        (["network", "create", "--subnet", "notacidr", "x1"], 1,
         "Error response from daemon: Invalid subnet notacidr : invalid CIDR address: notacidr"),
        (["network", "create", "-d", "nosuchdriver", "x1"], 1, 'Error response from daemon: plugin "nosuchdriver" not found'),
        (["network", "create", "host"], 1, "Error response from daemon: operation is not permitted on predefined host network"),
        (["network", "connect", "nosuch", "web"], 1, "Error response from daemon: network nosuch not found"),
        (["network", "connect", "skynet", "nosuch"], 1, "Error response from daemon: No such container: nosuch"),
        (["network", "connect", "skynet", "web"], 1,
         "Error response from daemon: endpoint with name web already exists in network skynet"),
        (["network", "connect", "host", "web"], 1,
         "Error response from daemon: container cannot be disconnected from host network or connected to host network"),
        (["network", "connect", "none", "web"], 1,
         "Error response from daemon: container cannot be connected to multiple networks with one of the networks in private (none) mode"),
        (["exec", "nosuch", "true"], 1, "Error response from daemon: No such container: nosuch"),
        (["stop", "nosuch"], 1, "Error response from daemon: No such container: nosuch"),
        (["run", "-d", "--name", "ipout", "--network", "lab", "--ip", "10.99.0.5", "alpine"], 125,
         "nsbridge: Error response from daemon: Invalid address 10.99.0.5: It does not belong to any of this network's subnets"),
        (["run", "-d", "--name", "ipnosub", "--ip", "172.17.0.50", "alpine"], 125,
         "nsbridge: Error response from daemon: user specified IP address is supported on user defined networks only"),
        (["inspect", "nosuch"], 1, "Error: No such object: nosuch"),
    ]
    for argv, code, text in cases:
        r = sb.cli(*argv)
        assert (r.returncode, r.stderr.splitlines()[0] if r.stderr else "") == (code, text), argv
    web_id = sb.cli("inspect", "--format", "{{.Id}}", "web", check=True).stdout.strip()
    r = sb.cli("rm", "web")
    assert r.stderr.strip() == (
        f"Error response from daemon: You cannot remove a running container {web_id}. "
        "Stop the container before attempting removal or force remove"
    )
    r = sb.cli("run", "-d", "--name", "web", "alpine")
    assert f'The container name "/web" is already in use by container "{web_id}"' in r.stderr and r.returncode == 125
    r = sb.cli("network", "rm", "host", "none")
    assert r.stderr.splitlines() == [
        "Error response from daemon: host is a pre-defined network and cannot be removed",
        "Error response from daemon: none is a pre-defined network and cannot be removed",
    ]
    r = sb.cli("network", "disconnect", "lab", "web")
    assert r.stderr.strip() == f"Error response from daemon: container {web_id} is not connected to network lab"
    # a full subnet
    sb.cli("network", "create", "--subnet", "10.50.0.0/30", "tiny", check=True)
    sb.cli("run", "-d", "--name", "tiny1", "--network", "tiny", "alpine", check=True)
    r = sb.cli("run", "-d", "--name", "tiny2", "--network", "tiny", "alpine")
    net_id = sb.cli("network", "inspect", "--format", "{{.Id}}", "tiny", check=True).stdout.strip()
    assert f"no available IPv4 addresses on this network's address pools: tiny ({net_id})" in r.stderr


def test_parallel_runs_get_distinct_working_addresses(sb):
    sb.cli("network", "create", "par", check=True)

    def run(i: int) -> int:
        return sb.cli("run", "-d", "--name", f"p{i}", "--network", "par", "alpine", timeout=120).returncode

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(run, range(20)))
    assert codes == [0] * 20
    members = json.loads(sb.cli("network", "inspect", "--format", "{{json .Containers}}", "par", check=True).stdout)
    ips = sorted(v["IPv4Address"] for v in members.values())
    assert len(ips) == 20 and len(set(ips)) == 20
    # each address works: the last one pings the first, and every one answers ARP on the bridge
    first, last = ip_of(sb, "p0"), ip_of(sb, "p19")
    assert sb.cli("exec", "p19", "ping", "-c1", "-W2", first).returncode == 0
    assert sb.cli("exec", "p0", "ping", "-c1", "-W2", last).returncode == 0
    ports = sb.host_run("bridge", "link", check=True).stdout
    assert ports.count("master br-") == 20


def test_icc_off_and_internal_networks(sb):
    sb.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "noicc", check=True)
    sb.cli("run", "-d", "--name", "srv", "--network", "noicc", "--", "python3", "-c", TCP_SERVER, "7000", check=True)
    sb.cli("run", "-d", "--name", "cli", "--network", "noicc", "alpine", check=True)
    wait_listening(sb, "srv", 7000)
    assert sb.cli("exec", "cli", "python3", "-c", tcp_client(ip_of(sb, "srv"), 7000, 1)).returncode != 0
    rules = sb.host_run("iptables-save", "-t", "filter", check=True).stdout
    br = json.loads(sb.cli("network", "inspect", "noicc", check=True).stdout)[0]["Id"][:12]
    assert f"-A NSBRIDGE-FORWARD -i br-{br} -o br-{br} -j DROP" in rules
    # internal: no default route out, and no masquerade rule
    sb.cli("network", "create", "--internal", "vault", check=True)
    sb.cli("run", "-d", "--name", "v1", "--network", "vault", "alpine", check=True)
    assert "default" not in sb.cli("exec", "v1", "ip", "route", check=True).stdout
    nat = sb.host_run("iptables-save", "-t", "nat", check=True).stdout
    subnet = json.loads(sb.cli("network", "inspect", "vault", check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
    assert f"-s {subnet} " not in nat
    # options are shown as given
    opts = json.loads(sb.cli("network", "inspect", "--format", "{{json .Options}}", "noicc", check=True).stdout)
    assert opts == {"com.docker.network.bridge.enable_icc": "false"}


def test_bridge_name_mtu_labels_and_filters(sb):
    out = sb.cli("network", "create", "--subnet", "10.10.0.0/24", "--gateway", "10.10.0.254", "--ip-range",
                 "10.10.0.128/25", "--label", "course=net101", "-o", "com.docker.network.bridge.name=br-lab",
                 "-o", "com.docker.network.driver.mtu=1400", "lab", check=True)
    assert len(out.stdout.strip()) == 64
    link = sb.host_run("ip", "-o", "link", "show", "br-lab", check=True).stdout
    assert "mtu 1400" in link
    sb.cli("run", "-d", "--name", "lab1", "--network", "lab", "alpine", check=True)
    assert "mtu 1400" in sb.cli("exec", "lab1", "ip", "-o", "link", "show", "eth0", check=True).stdout
    cfg = json.loads(sb.cli("network", "inspect", "--format", "{{json .IPAM.Config}}", "lab", check=True).stdout)
    assert cfg == [{"Subnet": "10.10.0.0/24", "IPRange": "10.10.0.128/25", "Gateway": "10.10.0.254"}]
    assert sb.cli("network", "ls", "--filter", "label=course=net101", "--format", "{{.Name}}", check=True).stdout == "lab\n"
    assert sb.cli("network", "ls", "--filter", "driver=null", "--format", "{{.Name}}", check=True).stdout == "none\n"
    lines = sb.cli("network", "ls", "--format", "json", check=True).stdout.splitlines()
    assert {json.loads(x)["Name"] for x in lines} == {"bridge", "host", "none", "lab"}
    # prune keeps networks in use, removes the rest
    sb.cli("network", "create", "unused", check=True)
    r = sb.cli("network", "prune", "-f", check=True)
    assert r.stdout == "Deleted Networks:\nunused\n\n"


def test_coexists_with_docker(sb):
    """A Docker already on the host: its docker0, its 172.17 route, its chains."""
    import subprocess

    subprocess.run(["ip", "netns", "add", sb.name], check=True)
    sb.host_run("ip", "link", "add", "docker0", "type", "bridge", check=True)
    sb.host_run("ip", "addr", "add", "172.17.0.1/16", "dev", "docker0", check=True)
    sb.host_run("ip", "link", "set", "docker0", "up", check=True)
    sb.host_run("iptables", "-N", "DOCKER", check=True)
    sb.host_run("iptables", "-A", "DOCKER", "-j", "RETURN", check=True)
    docker_rules = sb.host_run("iptables-save", check=True).stdout
    info = sb.cli("system", "info", check=True).stdout
    assert "Default bridge: nsbr0 (172.18.0.0/16)" in info
    assert "Docker: docker0 exists and is not ours" in info
    sb.cli("run", "-d", "--name", "c1", "alpine", check=True)
    assert ip_of(sb, "c1") == "172.18.0.2"
    sb.cli("rm", "-f", "c1", check=True)
    after = sb.host_run("iptables-save", check=True).stdout
    docker_lines = [x for x in docker_rules.splitlines() if "DOCKER" in x]
    assert docker_lines and all(x in after for x in docker_lines)
    assert "172.17.0.1/16" in sb.host_run("ip", "-o", "addr", "show", "docker0", check=True).stdout
    sb.host_run("ip", "link", "del", "docker0", check=True)
