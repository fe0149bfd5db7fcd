"""Container processes get Docker's default capability set (issue 11, item
10): no CAP_NET_ADMIN, no CAP_SYS_ADMIN, so a student's shell in a container
cannot change its interfaces, enter another namespace or touch a firewall,
unless --cap-add or --privileged says so, as on Docker.

Before the fix every container process had every capability: `ip link set
eth0 down` worked, `ip netns exec HOST iptables -F` flushed the host's rules."""
from __future__ import annotations

import json

from tests.integration.helpers import ip_of, wait_listening

# Docker's default set, as /proc/PID/status shows it in a Docker container
DOCKER_DEFAULT = 0x00000000A80425FB
NET_ADMIN = 1 << 12
NET_RAW = 1 << 13


def caps_of(sb, pid: int | str, field: str = "CapEff") -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1], 16)


def exec_caps(sb, name: str, *flags: str, field: str = "CapEff") -> int:
    out = sb.cli("exec", *flags, name, "grep", f"^{field}:", "/proc/self/status", check=True).stdout
    return int(out.split()[1], 16)


def link_flags(sb, ctr: str) -> list[str]:
    netns = json.loads(sb.cli("inspect", ctr, check=True).stdout)[0]["NetworkSettings"]["SandboxKey"]
    out = json.loads(sb.host_run("ip", "-n", netns.rsplit("/", 1)[1], "-j", "link", "show", "eth0", check=True).stdout)
    return out[0]["flags"]


def test_default_set_stops_what_docker_stops(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "-p", "8080:80", "nginx", check=True)
    sb.cli("run", "-d", "--name", "box", "--network", "skynet", "alpine", "sleep", "600", check=True)
    wait_listening(sb, "web", 80)  # busybox httpd bound port 80: NET_BIND_SERVICE is in the set
    # the main processes (wrapper and stand-in/command) hold exactly Docker's set, inheritable and ambient empty
    for name in ("web", "box"):
        pid = sb.cli("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout.strip()
        for field in ("CapEff", "CapPrm", "CapBnd"):
            assert caps_of(sb, pid, field) == DOCKER_DEFAULT, (name, field)
        assert caps_of(sb, pid, "CapInh") == 0 and caps_of(sb, pid, "CapAmb") == 0
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                assert caps_of(sb, child, "CapEff") == DOCKER_DEFAULT and caps_of(sb, child, "CapBnd") == DOCKER_DEFAULT
    assert exec_caps(sb, "box") == DOCKER_DEFAULT
    assert exec_caps(sb, "box", field="CapBnd") == DOCKER_DEFAULT
    # its own interfaces: Operation not permitted, and the kernel agrees nothing changed
    r = sb.cli("exec", "box", "ip", "link", "set", "eth0", "down")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert "UP" in link_flags(sb, "box")
    r = sb.cli("exec", "box", "ip", "addr", "add", "10.9.9.9/32", "dev", "eth0")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    # another container's namespace, the sandbox host's, the machine's: setns needs CAP_SYS_ADMIN
    # (alpine's ip is busybox's, without `netns`: the attacker takes the host's iproute2)
    web_ns = json.loads(sb.cli("inspect", "web", check=True).stdout)[0]["NetworkSettings"]["SandboxKey"]
    for target in (web_ns.rsplit("/", 1)[1], sb.name):
        r = sb.cli("exec", "box", "/bin/ip", "netns", "exec", target, "iptables", "-F")
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    r = sb.cli("exec", "box", "nsenter", "-t", "1", "-n", "true")
    assert r.returncode != 0
    # the firewall, even its own namespace's: NET_ADMIN
    r = sb.cli("exec", "box", "iptables", "-S")
    assert r.returncode != 0 and ("Permission denied" in r.stderr or "not permitted" in r.stderr)
    # the host's rules are all still there (the attack was a flush)
    assert "NSBRIDGE" in sb.host_run("iptables-save", check=True).stdout
    # what containers do need still works: ping (NET_RAW), a name, the stand-in's port
    assert sb.cli("exec", "box", "ping", "-c1", "-W2", "web").returncode == 0
    gw = json.loads(sb.cli("network", "inspect", "skynet", check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert sb.cli("exec", "box", "ping", "-c1", "-W2", gw).returncode == 0
    page = sb.cli("exec", "box", "wget", "-q", "-O", "-", f"http://{ip_of(sb, 'web')}/", check=True).stdout
    assert "Served by container <b>web</b>" in page
    # `exec -d` runs with the same set (its output goes to the container's log)
    sb.cli("exec", "-d", "box", "grep", "^CapBnd:", "/proc/self/status", check=True)
    for _ in range(50):
        log = sb.cli("logs", "box", check=True).stdout
        if "CapBnd" in log:
            break
    assert int(log.split("CapBnd:")[1].split()[0], 16) == DOCKER_DEFAULT


def test_cap_add_net_admin_lets_a_lesson_use_ip_and_tc(sb):
    sb.cli("run", "-d", "--name", "lab", "--cap-add", "net_admin", "alpine", check=True)
    assert exec_caps(sb, "lab") == DOCKER_DEFAULT | NET_ADMIN
    sb.cli("exec", "lab", "ip", "link", "set", "eth0", "down", check=True)
    assert "UP" not in link_flags(sb, "lab")
    sb.cli("exec", "lab", "ip", "link", "set", "eth0", "up", check=True)
    sb.cli("exec", "lab", "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "pfifo", "limit", "50", check=True)
    assert "pfifo 1:" in sb.cli("exec", "lab", "tc", "qdisc", "show", "dev", "eth0", check=True).stdout
    sb.cli("exec", "lab", "iptables", "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "DROP", check=True)
    # still no way out of its own namespace: that is CAP_SYS_ADMIN's
    r = sb.cli("exec", "lab", "/bin/ip", "netns", "exec", sb.name, "true")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    hc = json.loads(sb.cli("inspect", "lab", check=True).stdout)[0]["HostConfig"]
    assert (hc["CapAdd"], hc["CapDrop"], hc["Privileged"]) == (["net_admin"], None, False)


def test_privileged_can_do_everything_and_exec_privileged_for_one_command(sb):
    sb.cli("run", "-d", "--name", "root", "--privileged", "alpine", check=True)
    sb.cli("run", "-d", "--name", "plain", "alpine", check=True)
    with open("/proc/self/status") as f:
        mine = int(next(x for x in f if x.startswith("CapEff:")).split()[1], 16)
    assert exec_caps(sb, "root") == mine  # every capability the engine has
    assert sb.cli("exec", "root", "/bin/ip", "netns", "exec", sb.name, "iptables", "-S").returncode == 0
    assert json.loads(sb.cli("inspect", "root", check=True).stdout)[0]["HostConfig"]["Privileged"] is True
    # Docker's `exec --privileged`: all of them for that command only
    assert exec_caps(sb, "plain", "--privileged") == mine
    assert exec_caps(sb, "plain") == DOCKER_DEFAULT
    # the library's exec alike
    e = sb.engine()
    try:
        status = e.exec("plain", ["grep", "^CapEff:", "/proc/self/status"], privileged=True).stdout.decode()
        assert int(status.split()[1], 16) == mine
        status = e.exec("plain", ["grep", "^CapEff:", "/proc/self/status"]).stdout.decode()
        assert int(status.split()[1], 16) == DOCKER_DEFAULT
    finally:
        e.close()


def test_cap_drop_and_all_follow_moby(sb):
    # --cap-drop ALL keeps only what is added; names with or without CAP_, any case
    sb.cli("run", "-d", "--name", "raw", "--cap-drop", "ALL", "--cap-add", "cap_net_raw", "alpine", check=True)
    assert exec_caps(sb, "raw") == NET_RAW
    # without NET_RAW, ping cannot open its socket (ping_group_range leaves root out)
    sb.cli("run", "-d", "--name", "noping", "--cap-drop", "NET_RAW", "alpine", check=True)
    assert exec_caps(sb, "noping") == DOCKER_DEFAULT & ~NET_RAW
    assert sb.cli("exec", "noping", "ping", "-c1", "-W1", "172.17.0.1").returncode != 0
    # --cap-add ALL gives everything but what is dropped
    sb.cli("run", "-d", "--name", "most", "--cap-add", "ALL", "--cap-drop", "chown", "alpine", check=True)
    got = exec_caps(sb, "most")
    assert got & NET_ADMIN and not got & 1 and got & (1 << 21)
    hc = json.loads(sb.cli("inspect", "most", check=True).stdout)[0]["HostConfig"]
    assert (hc["CapAdd"], hc["CapDrop"]) == (["ALL"], ["chown"])
    # a foreground run and the interactive shells take the same path
    out = sb.cli("run", "--rm", "--cap-drop", "ALL", "alpine", "grep", "^CapEff:", "/proc/self/status", check=True).stdout
    assert int(out.split()[1], 16) == 0


def test_unknown_capability_is_dockers_error_and_changes_nothing(sb):
    r = sb.cli("run", "-d", "--name", "bad", "--cap-add", "foo", "alpine")
    assert r.returncode == 125
    assert r.stderr.splitlines()[0] == 'nsbridge: Error response from daemon: invalid CapAdd: unknown capability: "CAP_FOO"'
    r = sb.cli("create", "--name", "bad", "--cap-drop", "CAP_NOPE", "alpine")
    assert r.returncode == 125 and 'invalid CapDrop: unknown capability: "CAP_NOPE"' in r.stderr
    assert sb.cli("ps", "-a", "-q", check=True).stdout == ""
    assert sb.netns_names() == [sb.name]
