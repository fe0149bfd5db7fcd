"""The tutorials' core flows on the real kernel (issue 3's acceptance):
default-bridge containers reach each other by IP; skynet containers reach
each other; skynet cannot reach bridge (ICMP and TCP) until `network
connect`; `network rm` refuses while attached; `rm -f` leaves nothing."""
from __future__ import annotations

import json

from tests.integration.helpers import TCP_SERVER, ip_of, tcp_client, wait_listening


def test_predefined_networks(sb):
    p = sb.cli("network", "ls", check=True)
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2], r[3]) for r in rows] == [("bridge", "bridge", "local"), ("host", "host", "local"), ("none", "null", "local")]
    bridge = json.loads(sb.cli("network", "inspect", "bridge", check=True).stdout)[0]
    # with its Gateway, as Docker's documentation (standalone-containers tutorial) prints it
    assert bridge["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
    assert bridge["Options"]["com.docker.network.bridge.name"] == "docker0"
    # the kernel has it: docker0 with 172.17.0.1/16, inside the sandbox host only
    addr = sb.host_run("ip", "-o", "-4", "addr", "show", "docker0", check=True).stdout
    assert "172.17.0.1/16" in addr
    for name in ("bridge", "host", "none"):
        r = sb.cli("network", "rm", name)
        assert r.returncode == 1
        assert f"{name} is a pre-defined network and cannot be removed" in r.stderr
        r = sb.cli("network", "create", name)
        assert r.returncode == 1 and "predefined" in r.stderr


def test_default_bridge_by_ip_and_user_bridge_isolation(sb):
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    sb.cli("run", "-d", "--name", "db", "alpine", check=True)
    web_ip = ip_of(sb, "web")
    assert web_ip == "172.17.0.2" and ip_of(sb, "db") == "172.17.0.3"
    # MAC 02:42 + address bytes, as the tutorials show
    mac = sb.cli("inspect", "--format", "{{.NetworkSettings.MacAddress}}", "web", check=True).stdout.strip()
    assert mac == "02:42:ac:11:00:02"
    assert sb.cli("exec", "db", "ping", "-c1", "-W2", web_ip).returncode == 0

    net_id = sb.cli("network", "create", "skynet", check=True).stdout.strip()
    assert len(net_id) == 64
    sb.cli("run", "-d", "--name", "alpine-box", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "notes-db", "--network", "skynet", "alpine", check=True)
    assert ip_of(sb, "alpine-box") == "172.18.0.2"
    assert sb.cli("exec", "alpine-box", "ping", "-c1", "-W2", ip_of(sb, "notes-db")).returncode == 0

    # a TCP server in web (default bridge) is unreachable from skynet: ICMP and TCP
    sb.cli("run", "-d", "--name", "websrv", "--", "python3", "-c", TCP_SERVER, "8000", check=True)
    srv_ip = ip_of(sb, "websrv")
    wait_listening(sb, "websrv", 8000)
    assert sb.cli("exec", "db", "python3", "-c", tcp_client(srv_ip, 8000)).stdout.startswith("hello from")
    assert sb.cli("exec", "alpine-box", "ping", "-c1", "-W1", web_ip).returncode != 0
    assert sb.cli("exec", "alpine-box", "python3", "-c", tcp_client(srv_ip, 8000, 1)).returncode != 0
    # the isolation rule is what dropped it: its counter moved
    counters = sb.host_run("iptables", "-v", "-x", "-n", "-L", "NSBRIDGE-ISOLATION-STAGE-2", check=True).stdout
    dropped = sum(int(line.split()[0]) for line in counters.splitlines()[2:] if "DROP" in line)
    assert dropped >= 2

    # connect: now on both networks, reachable from skynet
    assert sb.cli("network", "connect", "skynet", "websrv").returncode == 0
    nets = json.loads(sb.cli("inspect", "--format", "{{json .NetworkSettings.Networks}}", "websrv", check=True).stdout)
    assert list(nets) == ["bridge", "skynet"]
    sky_ip = nets["skynet"]["IPAddress"]
    assert sky_ip.startswith("172.18.0.")
    assert sb.cli("exec", "alpine-box", "python3", "-c", tcp_client(sky_ip, 8000)).stdout.startswith("hello from")
    addrs = sb.cli("exec", "websrv", "ip", "-o", "-4", "addr", check=True).stdout
    assert "eth0" in addrs and f"eth1    inet {sky_ip}/16" in addrs

    members = sb.cli("network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", "skynet", check=True)
    assert sorted(members.stdout.split()) == ["alpine-box", "notes-db", "websrv"]

    # network rm refuses while endpoints exist, with Docker's text
    r = sb.cli("network", "rm", "skynet")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"Error response from daemon: error while removing network: network skynet id {net_id} has active endpoints"
    )

    # rm -f everything: no veth, namespace or rule of theirs is left
    r = sb.cli("rm", "-f", "web", "db", "alpine-box", "notes-db", "websrv", check=True)
    assert r.stdout.split() == ["web", "db", "alpine-box", "notes-db", "websrv"]
    assert sb.netns_names() == [sb.name]
    sb.cli("network", "rm", "skynet", check=True)
    links = sb.host_run("ip", "-o", "link", check=True).stdout
    assert "veth" not in links and "br-" not in links
    rules = sb.host_run("iptables-save", check=True).stdout
    assert "br-" not in rules and "172.18.0.0" not in rules


def test_exec_sees_container_files_and_exit_codes(sb):
    sb.cli("network", "create", "lab", "--subnet", "10.10.0.0/24", "--gateway", "10.10.0.254", "--ip-range", "10.10.0.128/25", check=True)
    sb.cli("run", "-d", "--name", "lab1", "--network", "lab", "--ip", "10.10.0.200", "--hostname", "lab-one", "alpine", check=True)
    hosts = sb.cli("exec", "lab1", "cat", "/etc/hosts", check=True).stdout
    assert hosts.endswith("ff02::2\tip6-allrouters\n10.10.0.200\tlab-one\n")
    assert sb.cli("exec", "lab1", "hostname", check=True).stdout.strip() == "lab-one"
    assert sb.cli("exec", "lab1", "cat", "/etc/resolv.conf", check=True).stdout.splitlines()[-2:] == [
        "nameserver 127.0.0.11",
        "options ndots:0",
    ]
    assert sb.cli("exec", "lab1", "sh", "-c", "exit 7").returncode == 7
    r = sb.cli("exec", "lab1", "nosuchcmd")
    assert r.returncode == 127 and 'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr
    # the ip-range: addresses come from it (its first one is usable, as in Docker)
    sb.cli("run", "-d", "--name", "lab2", "--network", "lab", "alpine", check=True)
    assert ip_of(sb, "lab2") == "10.10.0.128"
    route = sb.cli("exec", "lab2", "ip", "route", check=True).stdout
    assert route.splitlines()[0].startswith("default via 10.10.0.254 dev eth0")
    # the host's own /etc/hosts is untouched by the bind mounts
    with open("/etc/hosts") as f:
        assert "lab-one" not in f.read()


def arp_cycle_over(sb, ctr: str, ip: str, timeout: float = 10.0) -> None:
    """Until CTR's neighbour entry for IP is no longer being resolved (INCOMPLETE)."""
    import time

    deadline = time.monotonic() + timeout
    while "INCOMPLETE" in sb.cli("exec", ctr, "ip", "neigh", "show", ip, check=True).stdout:
        assert time.monotonic() < deadline, f"{ctr} still resolving {ip} after {timeout} s"
        time.sleep(0.2)


def test_stop_releases_and_start_restores(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "c1", "--network", "skynet", "--", "sleep", "1000", check=True)
    sb.cli("run", "-d", "--name", "c2", "--network", "skynet", "alpine", check=True)
    ip1 = ip_of(sb, "c1")
    sb.cli("stop", "-t", "1", "c1", check=True)
    assert sb.cli("inspect", "--format", "{{.State.Status}} [{{.NetworkSettings.IPAddress}}]", "c1", check=True).stdout.strip() == "exited []"
    assert sb.cli("exec", "c2", "ping", "-c1", "-W1", ip1).returncode != 0
    ps = sb.cli("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert "c1 Exited (143)" in ps or "c1 Exited (137)" in ps
    # That ping left c2's kernel resolving ip1 (ARP, 3 probes a second apart): a packet
    # sent in its last second is dropped when the cycle fails, c1 back or not. Let the
    # cycle end, so that the ping below sees what `start` made, not c2's old question.
    arp_cycle_over(sb, "c2", ip1)
    sb.cli("start", "c1", check=True)
    assert ip_of(sb, "c1") == ip1
    assert sb.cli("exec", "c2", "ping", "-c1", "-W2", ip1).returncode == 0  # the first packet after start
    r = sb.cli("rm", "c1")
    assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
    sb.cli("rm", "-f", "c1", "c2", check=True)


def test_detached_command_exit_is_recorded(sb):
    sb.cli("run", "-d", "--name", "brief", "--", "sh", "-c", "echo hi; exit 3", check=True)
    import time

    for _ in range(100):
        st = sb.cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "brief", check=True).stdout.strip()
        if st.startswith("exited"):
            break
        time.sleep(0.05)
    assert st == "exited 3"
    assert sb.cli("logs", "brief", check=True).stdout == "hi\n"
    # the next mutating command records it and frees its address
    sb.cli("run", "-d", "--name", "next", "alpine", check=True)
    assert ip_of(sb, "next") == "172.17.0.2"


def test_foreground_run_rm_and_modes(sb):
    r = sb.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert r.returncode == 0
    assert [line.split(":")[1].strip() for line in r.stdout.splitlines()] == ["lo"]
    assert sb.cli("ps", "-a", "-q", check=True).stdout == ""
    sb.cli("run", "-d", "--name", "web", "alpine", check=True)
    sb.cli("run", "-d", "--name", "sidecar", "--network", "container:web", "alpine", check=True)
    a = sb.cli("exec", "web", "ip", "-o", "-4", "addr", check=True).stdout
    b = sb.cli("exec", "sidecar", "ip", "-o", "-4", "addr", check=True).stdout
    assert a == b and "172.17.0.2" in a
    host = sb.cli("run", "--rm", "--network", "host", "alpine", "ip", "-o", "link", check=True).stdout
    assert "docker0" in host
    assert sb.cli("run", "--rm", "alpine", "sh", "-c", "exit 5").returncode == 5
