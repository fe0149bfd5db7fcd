"""Small helpers for integration tests."""
from __future__ import annotations

import json
import time

from nsbridge.sandbox import Sandbox

TCP_SERVER = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
    "while True:\n c,_=s.accept(); c.sendall(b'hello from '+socket.gethostname().encode()+b'\\n'); c.close()"
)


def tcp_client(host: str, port: int, timeout: float = 2.0) -> str:
    return (
        "import socket,sys; c=socket.create_connection(('%s', %d), timeout=%s); "
        "print(c.recv(100).decode().strip())" % (host, port, timeout)
    )


def ip_of(sb: Sandbox, name: str, network: str | None = None) -> str:
    fmt = (
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
        if network
        else "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    )
    p = sb.cli("inspect", "--format", fmt, name, check=True)
    return p.stdout.strip()


def wait_listening(sb: Sandbox, name: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = sb.cli("exec", name, "ss", "-ltnH", f"sport = :{port}")
        if p.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} is not listening on {port}")


def _alias_links(sb) -> dict[str, str]:
    """name -> ifalias of the sandbox host's devices that carry our mark (loopback
    carries the namespace's own mark, not an object's)."""
    out = json.loads(sb.host_run("ip", "-j", "-d", "link", check=True).stdout)
    return {li["ifname"]: li.get("ifalias", "") for li in out
            if li.get("ifalias", "").startswith("nsbridge:") and li["ifname"] != "lo"}


def assert_consistent(sb) -> None:
    ps = sb.cli("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}", check=True).stdout.split("\n")
    running = {line.split()[1] for line in ps if line and line.split()[2] == "running"}
    # namespaces: exactly the running containers' (plus the sandbox host itself)
    assert sb.netns_names() == sorted([sb.name] + [f"{sb.name}-{n}" for n in running])
    # marked devices: bridges of recorded networks, veths of live endpoints
    nets = json.loads(sb.cli("network", "inspect", *sb.cli("network", "ls", "-q", check=True).stdout.split(),
                             check=True).stdout)
    net_ids = {n["Id"] for n in nets}
    live_eps = {c["EndpointID"] for n in nets for c in n["Containers"].values()}
    for name, alias in _alias_links(sb).items():
        oid = alias.split(":", 1)[1]
        assert oid in net_ids or oid in live_eps, f"stray device {name} ({alias})"
    # every device of the sandbox host is one of those: a device nothing names is a leak
    unnamed = [li["ifname"] for li in json.loads(sb.host_run("ip", "-j", "link", check=True).stdout)
               if li["ifname"] != "lo" and not li.get("ifalias", "").startswith("nsbridge:")]
    assert not unnamed, f"devices no object names: {unnamed}"
    # and a running container has exactly one ethN per network it has an address on
    for cid in {line.split()[0] for line in ps if line and line.split()[2] == "running"}:
        info = json.loads(sb.cli("inspect", cid, check=True).stdout)[0]
        if info["HostConfig"]["NetworkMode"] in ("host", "none") or info["HostConfig"]["NetworkMode"].startswith("container:"):
            continue
        want = sum(1 for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])
        have = sb.cli("exec", cid, "ip", "-o", "link", check=True).stdout.count(": eth")
        assert have == want, f"{info['Name']}: {have} eth devices for {want} networks"
    for n in nets:
        if n["Driver"] == "bridge":
            dev = n["Options"].get("com.docker.network.bridge.name") or f"br-{n['Id'][:12]}"
            assert sb.host_run("ip", "link", "show", dev).returncode == 0, f"bridge of {n['Name']} missing"
    # resolvers: exactly one live process per user bridge
    user_nets = [n for n in nets if n["Driver"] == "bridge" and n["Name"] != "bridge"]
    resolvers = [p for p in sb.processes() if "nsbridge.dns.server" in p]
    assert len(resolvers) == len(user_nets), resolvers
    # and the explicit check finds nothing left to do (rules included)
    again = sb.cli("system", "reconcile", check=True).stdout
    assert again.strip() == "nothing to do: the store and the kernel agree", again
