"""A multi-host lab on one machine, for the overlay tests: an underlay network
in a namespace of its own, sandbox hosts plugged into it, and a real etcd
(Debian's etcd-server) in its own namespace on the same underlay.

    underlay netns  nsbo<hex>-ul   bridge ul0
    etcd netns      nsbo<hex>-etcd eth0 192.0.2.2/24, etcd on :2379
    host i          a Sandbox      eth0 192.0.2.(10+i)/24

192.0.2.0/24 is TEST-NET-1 (RFC 5737), used here only inside these
namespaces; nothing in them has a route out. Every namespace and process is
removed at teardown, and what is left is reported as a leak.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from nsbridge.sandbox import Sandbox

UNDERLAY_NET = "192.0.2"
ETCD_ADDR = f"{UNDERLAY_NET}.2"


def need_etcd() -> str:
    path = shutil.which("etcd")
    if path is None:
        pytest.skip("etcd is not installed (Debian's etcd-server; `./setup.sh test` installs it): overlay tests not run")
    return path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def in_ns(netns: str, *cmd: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True,
                          timeout=timeout, check=check)


class Underlay:
    """A bridge in a namespace of its own; hosts are plugged in with a veth."""

    def __init__(self, tag: str) -> None:
        self.netns = f"{tag}-ul"
        _ip("netns", "add", self.netns)
        _ip("-n", self.netns, "link", "set", "lo", "up")
        _ip("-n", self.netns, "link", "add", "ul0", "type", "bridge")
        _ip("-n", self.netns, "link", "set", "ul0", "up")
        self.ports: dict[str, str] = {}  # host netns -> its port on ul0

    def plug(self, netns: str, addr: str, ifname: str = "eth0") -> str:
        port = f"ulp{len(self.ports)}"
        _ip("-n", self.netns, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", netns)
        _ip("-n", self.netns, "link", "set", port, "master", "ul0", "up")
        _ip("-n", netns, "addr", "add", f"{addr}/24", "dev", ifname)
        _ip("-n", netns, "link", "set", ifname, "up")
        self.ports[netns] = port
        return port

    def cut(self, netns: str) -> None:
        _ip("-n", self.netns, "link", "set", self.ports[netns], "down")

    def heal(self, netns: str) -> None:
        _ip("-n", self.netns, "link", "set", self.ports[netns], "up")

    def destroy(self) -> None:
        _ip("netns", "del", self.netns, check=False)


class EtcdServer:
    """etcd as a child process, in NETNS, with a temporary data dir; stop() and
    start() again keep the data (a restart, not a new cluster)."""

    def __init__(self, netns: str, addr: str) -> None:
        self.binary = need_etcd()
        self.netns, self.addr = netns, addr
        self.data = tempfile.mkdtemp(prefix="nsbridge-etcd-")
        self.log = os.path.join(self.data, "etcd.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"etcd://{self.addr}:2379"

    def start(self, timeout: float = 20) -> None:
        client = f"http://{self.addr}:2379"
        cmd = ["ip", "netns", "exec", self.netns, self.binary, "--name", "lab",
               "--data-dir", os.path.join(self.data, "db"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", "http://127.0.0.1:2380",
               "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
               "--initial-cluster", "lab=http://127.0.0.1:2380"]
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        from nsbridge.cluster.etcd import ClusterUnavailable, Etcd
        from nsbridge.kernel import ns

        while True:
            try:
                with ns.in_netns(ns.netns_path(self.netns)), Etcd(self.url, timeout=1) as c:
                    c.status()
                return
            except ClusterUnavailable:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with open(self.log) as f:
                        tail = f.read()[-2000:]
                    self.stop()
                    raise AssertionError(f"etcd did not start in {self.netns}: {tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


class Lab:
    """An underlay, etcd on it, and N sandbox hosts on it (host i at .10+i)."""

    def __init__(self, n_hosts: int) -> None:
        if os.geteuid() != 0:
            pytest.fail("integration tests need root: run the README's test command (sudo ./setup.sh test)")
        need_etcd()
        self.tag = "nsbo" + secrets.token_hex(3)
        self.underlay = Underlay(self.tag)
        self.etcd_netns = f"{self.tag}-etcd"
        _ip("netns", "add", self.etcd_netns)
        _ip("-n", self.etcd_netns, "link", "set", "lo", "up")
        self.underlay.plug(self.etcd_netns, ETCD_ADDR)
        self.etcd = EtcdServer(self.etcd_netns, ETCD_ADDR)
        self.hosts: list[Sandbox] = []
        self.addrs: dict[str, str] = {}
        try:
            self.etcd.start()
            for i in range(n_hosts):
                self.add_host(f"{UNDERLAY_NET}.{11 + i}")
        except BaseException:
            self.destroy()
            raise

    def add_host(self, addr: str) -> Sandbox:
        sb = Sandbox()
        self.hosts.append(sb)
        sb.cli("network", "ls", check=True)  # the engine makes the sandbox host namespace
        self.underlay.plug(sb.name, addr)
        self.addrs[sb.name] = addr
        return sb

    def addr(self, sb: Sandbox) -> str:
        return self.addrs[sb.name]

    def join(self, sb: Sandbox, ttl: int = 20) -> None:
        sb.cli("system", "join", self.etcd.url, "--advertise", self.addr(sb), "--ttl", str(ttl), check=True)

    def etcd_keys(self, prefix: str = "/nsbridge/") -> dict[str, str]:
        from nsbridge.cluster.etcd import Etcd
        from nsbridge.kernel import ns

        with ns.in_netns(ns.netns_path(self.etcd_netns)), Etcd(self.etcd.url) as c:
            kvs, _ = c.get_prefix(prefix)
        return {kv.key: kv.value for kv in kvs}

    def destroy(self) -> list[str]:
        leaks: list[str] = []
        for sb in self.hosts:
            leaks += sb.destroy()
        self.etcd.destroy()
        _ip("netns", "del", self.etcd_netns, check=False)
        self.underlay.destroy()
        left = [n for n in os.listdir("/run/netns") if n.startswith(self.tag)] if os.path.isdir("/run/netns") else []
        leaks += [f"netns {n}" for n in left]
        return leaks


def overlay_mark(sb: Sandbox, network_id: str) -> str:
    """The mark SB's engine writes on its overlay namespaces (so its reset finds them)."""
    from nsbridge.engine import owner

    return owner.overlay_mark(sb.engine_id, network_id)


def build_overlay(sb: Sandbox, network_id: str, vni: int, gateway: str, prefixlen: int, local: str) -> str:
    """The overlay namespace of a network on host SB, by hand (the driver's job
    once it exists); returns its path."""
    from nsbridge.kernel import ns, overlay

    with ns.in_netns(ns.netns_path(sb.name)):
        return ns.netns_path(overlay.create_network_ns(sb.name, network_id, vni, gateway, prefixlen, local,
                                                       overlay_mark(sb, network_id)))


def attach_container(sb: Sandbox, network_id: str, name: str, ip: str, prefixlen: int = 24) -> str:
    """A container namespace `SANDBOX-NAME` whose eth0 is a veth on the overlay
    bridge br0 of NETWORK_ID on host SB (what the driver will do); returns its name."""
    from nsbridge.engine import owner
    from nsbridge.kernel import netlink, ns, overlay
    from nsbridge.model import mac_for

    overlay_path = ns.netns_path(overlay.netns_name(sb.name, network_id))
    cname = f"{sb.name}-{name}"
    with ns.returning():
        inner, fd = netlink.open_in_new_netns(cname, owner.container_mark(sb.engine_id, "ep-" + name))
        with ns.in_netns(overlay_path):
            outer = netlink.NsLink()
            try:
                outer.add_veth(f"veth{name}", "eth0", mac_for(ip), fd, overlay.BRIDGE, 1450, "nsbridge:ep-" + name)
            finally:
                outer.close()
        inner.configure_inside("eth0", ip, prefixlen, None)
        inner.close()
        os.close(fd)
    return cname


def wait_for(pred, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
