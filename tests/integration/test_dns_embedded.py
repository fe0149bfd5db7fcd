"""127.0.0.11 inside containers, as Docker's embedded DNS (nsbridge/dns/embedded.py):
which resolver holds a container's sockets, through run, connect, disconnect, stop,
start, rm and the restart of a resolver; and a resolver's last words when it dies.
Real kernel, real queries from inside the containers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from nsbridge.dns import embedded
from nsbridge.kernel import ns
from nsbridge.sandbox import Sandbox
from tests.integration.helpers import ip_of


def getent(sb: Sandbox, ctr: str, name: str) -> str | None:
    p = sb.cli("exec", ctr, "getent", "ahostsv4", name)
    return p.stdout.split()[0] if p.returncode == 0 and p.stdout else None


def holders(sb: Sandbox, ctr: str) -> list[int]:
    """Pids of the processes holding 127.0.0.11:53 (UDP, TCP) inside CTR."""
    out = ""
    for flag in ("-Hlnup", "-Hlntp"):
        out += subprocess.run(["ip", "netns", "exec", f"{sb.name}-{ctr}", "ss", flag, "sport = :53"],
                              capture_output=True, text=True).stdout
    return sorted(int(x.split(",")[0]) for x in out.split("pid=")[1:])


def resolver_pid(sb: Sandbox, net: str) -> int:
    return int(sb.cli("network", "inspect", "--format", "{{.NsbridgeResolver.Pid}}", net, check=True).stdout)


def served(sb: Sandbox, net: str) -> int:
    return int(sb.cli("network", "inspect", "--format", "{{.NsbridgeResolver.ServedContainers}}", net,
                      check=True).stdout)


def wait_gone(pid: int) -> None:
    for _ in range(250):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.02)


def test_dns_answers_the_moment_run_returns(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "nginx", check=True)
    web = ip_of(sb, "web")
    # the command's first query, sent while the engine is still recording the container
    for _ in range(3):
        p = sb.cli("run", "--rm", "--network", "skynet", "alpine", "getent", "hosts", "web")
        assert p.returncode == 0 and p.stdout.split()[:2] == [web, "web"], p.stderr
    # and an exec right after `run -d` returned
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "alpine", check=True)
    assert getent(sb, "client", "web") == web
    # what the container sees: Docker's resolv.conf, and 127.0.0.11:53 held by the resolver
    assert sb.cli("exec", "client", "cat", "/etc/resolv.conf", check=True).stdout == "nameserver 127.0.0.11\noptions ndots:0\n"
    assert holders(sb, "client") == [resolver_pid(sb, "skynet")] * 2
    assert served(sb, "skynet") == 2
    # a container sharing client's namespace asks through client's 127.0.0.11, as client
    p = sb.cli("run", "--rm", "--network", "container:client", "alpine", "getent", "hosts", "web", check=True)
    assert p.stdout.split()[:2] == [web, "web"]


def test_an_engine_killed_before_handing_over(sb):
    """The engine dies after recording the container, with the sockets in hand: the
    resolver notices a container it serves without sockets and binds them itself."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    env = dict(sb.env, NSBRIDGE_TEST_CRASH_AFTER="container.record")
    p = subprocess.run(sb.argv("run", "-d", "--name", "late", "--network", "skynet", "alpine"), env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 137, p.stderr
    for _ in range(100):  # within its grace second and the next look at the store
        if holders(sb, "late"):
            break
        time.sleep(0.05)
    assert holders(sb, "late") == [resolver_pid(sb, "skynet")] * 2
    assert getent(sb, "late", "web") == ip_of(sb, "web")


def test_one_resolver_per_container_across_connect_disconnect_and_restarts(sb):
    for net in ("front", "back"):
        sb.cli("network", "create", net, check=True)
    sb.cli("run", "-d", "--name", "fe", "--network", "front", "alpine", check=True)
    sb.cli("run", "-d", "--name", "be", "--network", "back", "alpine", check=True)
    sb.cli("run", "-d", "--name", "api", "--network", "front", "--network", "back", "alpine", check=True)
    front, back = resolver_pid(sb, "front"), resolver_pid(sb, "back")
    # api's 127.0.0.11 is its first network's resolver's, which answers for both networks
    assert holders(sb, "api") == [front, front]
    assert getent(sb, "api", "fe") == ip_of(sb, "fe") and getent(sb, "api", "be") == ip_of(sb, "be")
    assert (served(sb, "front"), served(sb, "back")) == (2, 1)
    # disconnecting the first network hands it to the next one's resolver
    sb.cli("network", "disconnect", "front", "api", check=True)
    assert holders(sb, "api") == [back, back]
    assert getent(sb, "api", "be") == ip_of(sb, "be") and getent(sb, "api", "fe") is None
    assert (served(sb, "front"), served(sb, "back")) == (1, 2)
    # a default-bridge container connected to a user network gets one, at once
    sb.cli("run", "-d", "--name", "legacy", "alpine", check=True)
    assert holders(sb, "legacy") == []
    sb.cli("network", "connect", "front", "legacy", check=True)
    assert holders(sb, "legacy") == [front, front] and getent(sb, "legacy", "fe") == ip_of(sb, "fe")
    assert sb.cli("exec", "legacy", "cat", "/etc/resolv.conf", check=True).stdout.startswith("nameserver 127.0.0.11\n")
    # a restarted container gets new sockets in its new namespace
    sb.cli("restart", "-t", "0", "fe", check=True)
    assert holders(sb, "fe") == [front, front] and getent(sb, "fe", "legacy") == ip_of(sb, "legacy", "front")
    # a resolver restarted after a crash binds in every container it serves by itself
    os.kill(front, signal.SIGKILL)
    wait_gone(front)
    sb.cli("ps", check=True)
    front2 = resolver_pid(sb, "front")
    assert front2 != front
    for ctr in ("fe", "legacy"):
        assert holders(sb, ctr) == [front2, front2], ctr
    assert getent(sb, "fe", "legacy") == ip_of(sb, "legacy", "front")
    assert holders(sb, "api") == [back, back]


def test_a_released_container_is_let_go_at_once(sb):
    """A socket keeps its namespace alive, and with it the container's veth on the
    bridge: stop, rm and disconnect must make the resolver close them before the
    command returns."""
    nid = sb.cli("network", "create", "skynet", check=True).stdout.strip()
    br = f"br-{nid[:12]}"

    def ports() -> int:
        out = sb.host_run("ip", "-o", "link", "show", "master", br, check=True).stdout
        return len(out.splitlines())

    def settle(n: int) -> int:  # the kernel destroys a namespace's veths shortly after
        for _ in range(100):
            if ports() == n:
                break
            time.sleep(0.02)
        return ports()

    def held() -> str:  # asked the moment the command returned, in the sandbox host (abstract socket)
        with ns.in_netns(ns.netns_path(sb.name)):
            return embedded.request(embedded.control_address(nid), "status")

    for name in ("a1", "a2", "a3"):
        sb.cli("run", "-d", "--name", name, "--network", "skynet", "alpine", check=True)
    assert settle(3) == 3 and held() == "held 3 missing 0"
    sb.cli("rm", "-f", "a1", check=True)
    assert held() == "held 2 missing 0" and settle(2) == 2
    sb.cli("stop", "-t", "0", "a2", check=True)
    assert held() == "held 1 missing 0" and settle(1) == 1
    sb.cli("network", "create", "other", check=True)
    sb.cli("network", "connect", "other", "a3", check=True)
    sb.cli("network", "disconnect", "skynet", "a3", check=True)
    assert held() == "held 0 missing 0" and settle(0) == 0
    # the address freed by rm is taken again, and answered for the new owner only
    sb.cli("run", "-d", "--name", "b1", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "b2", "--network", "skynet", "alpine", check=True)
    assert getent(sb, "b2", "b1") == ip_of(sb, "b1") and getent(sb, "b2", "a1") is None


def test_last_words_of_a_resolver_that_died(sb):
    """Issue 11, item 12: a resolver that dies leaves how it ended and its last log
    lines where `system info` shows them; its log is appended to, not truncated."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "a1", "--network", "skynet", "alpine", check=True)
    pid = resolver_pid(sb, "skynet")
    os.kill(pid, signal.SIGBUS)  # what killed them under load (a truncated WAL-index)
    wait_gone(pid)
    assert getent(sb, "a1", "a1") == ip_of(sb, "a1")  # restarted by this command, and answering
    info = json.loads(sb.cli("system", "info", "--format", "{{json .Resolvers}}", check=True).stdout)["skynet"]
    last = info["LastExit"]
    assert info["Pid"] != pid and last["Pid"] == pid and last["Ended"] == "killed by SIGBUS"
    assert any(f"nsbridge-dns[{pid}]" in line and "started" in line for line in last["LastLines"])
    assert any("Fatal Python error: Bus error" in line for line in last["LastLines"])
    text = sb.cli("system", "info", check=True).stdout
    assert f"previous: pid {pid} killed by SIGBUS (noticed " in text
    log = open(info["Log"]).read()
    assert f"nsbridge-dns[{pid}]" in log and f"nsbridge-dns[{info['Pid']}]" in log
    # a clean stop says so (exit 0) in the log too
    sb.cli("network", "disconnect", "skynet", "a1", check=True)
    sb.cli("network", "rm", "skynet", check=True)
    assert f"nsbridge-dns[{info['Pid']}] resolver for network" in open(info["Log"]).read().splitlines()[-1]
    assert open(info["Log"]).read().splitlines()[-1].endswith("(exit 0)")
