"""The Engine: one object per host (machine or sandbox) and state root.

Every mutating operation runs inside `_session()`: the host lock, the thread
in the host namespace, a netlink socket and the firewall, the host's own
objects checked (and restored after a reboot), dead containers reaped.
Read-only calls (ls, ps, inspect) open the store only: no pyroute2 import.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nsbridge import procs
from nsbridge.engine.cluster import ClusterOps
from nsbridge.engine.containers import ContainerOps
from nsbridge.engine.links import LinkOps
from nsbridge.engine.networks import NetworkOps
from nsbridge.engine.ports import PortOps
from nsbridge.engine.reconcile import ReconcileOps, finish_noted
from nsbridge.engine.standins import StandinOps
from nsbridge.engine.views import ViewOps
from nsbridge.model import IpamConfig, Network, new_id, now_iso

if TYPE_CHECKING:  # imported lazily at run time: pyroute2 costs ~100 ms to import
    from nsbridge.kernel.firewall import Firewall
    from nsbridge.kernel.netlink import NsLink
    from nsbridge.dns.embedded import Control
    from nsbridge.kernel.sysctl import ProcSys

log = logging.getLogger("nsbridge")

# Free space an operation needs on the state's disk (the database's WAL, a
# container's files, the log): below it, refused before anything changes.
MIN_FREE = 256 * 1024


class Kernel:
    """What an operation uses to change the host, bound to the host netns.

    The netlink socket is opened on first use: importing pyroute2 costs
    ~100 ms, and `rm`, `stop` and the reaping of exited containers need no
    netlink at all (a namespace is removed by unmounting it).
    """

    def __init__(self, fw: "Firewall", group: int = 0, env=None) -> None:
        self.fw = fw
        self.group = group  # the engine's device group (engine/owner.py)
        self.env = env  # where this host is, for drivers reaching beyond it (drivers/base.py Env)
        self._link = None
        self._procsys = None
        #: the session's connections to resolvers' control sockets, by network id (engine/embedded_dns.py)
        self.dns: dict[str, "Control"] = {}
        self._held: dict[str, object] = {}
        self._stack: contextlib.ExitStack | None = None

    @property
    def procsys(self) -> "ProcSys":
        """Sysctl writes in the containers' new namespaces, flat however many exist."""
        if self._procsys is None:
            from nsbridge.kernel.sysctl import ProcSys

            self._procsys = ProcSys()
        return self._procsys

    def hold(self, key: str, open_cm):
        """What OPEN_CM() opens (a connection), opened once per session under KEY
        and closed with it: a driver's steps and their undos share it."""
        if key not in self._held:
            if self._stack is None:
                self._stack = contextlib.ExitStack()
            self._held[key] = self._stack.enter_context(open_cm())
        return self._held[key]

    @property
    def link(self) -> "NsLink":
        if self._link is None:
            from nsbridge.kernel.netlink import NsLink

            self._link = NsLink()  # opened here, in the host netns: it stays bound to it
            self._link.group = self.group
        return self._link

    @staticmethod
    def has_link(name: str) -> bool:
        """Does a device exist in the current netns? (an ioctl, no pyroute2)"""
        import socket

        try:
            socket.if_nametoindex(name)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack, self._held = None, {}
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._procsys is not None:
            self._procsys.close()
            self._procsys = None
        for nid, ctl in self.dns.items():  # waits for the answers still due
            for line in ctl.close():
                log.warning("resolver of network %s: %s", nid[:12], line)
        self.dns.clear()


class Engine(NetworkOps, ContainerOps, ViewOps, ReconcileOps, StandinOps, PortOps, ClusterOps, LinkOps):
    """All operations; construction and lookups come from EngineBase (via ViewOps)."""

    # -- sessions --------------------------------------------------------------
    def session(self) -> contextlib.AbstractContextManager[Kernel]:
        """Hold the lock, the host namespace and one netlink socket across many
        operations (a course script or a benchmark creating 500 containers)."""
        return self._session()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Kernel]:
        if self._depth:
            self._depth += 1
            try:
                assert self._k is not None
                yield self._k
            finally:
                self._depth -= 1
            return
        from nsbridge.engine.signals import interruptible

        with interruptible(), self.lock:
            self._check_state()
            for line in finish_noted(self.lock.notes()):
                log.warning("%s (left by an interrupted command)", line)
            self._ensure_sandbox()
            from nsbridge.engine import runtime

            runtime.ensure(self.host)  # the containers' files' tmpfs (again, after a reboot), once the host is ours
            with self.host.entered():
                from nsbridge.kernel.firewall import Firewall

                self._k = Kernel(Firewall(), self.host.device_group, self._driver_env())
                self._depth = 1
                try:
                    self._ensure_host(self._k)
                    if self.lock.interrupted:
                        # the previous command died holding the lock: finish or undo its leftovers first
                        log.warning("repairing after an interrupted command (%s)", self.lock.interrupted.splitlines()[0])
                        self._repair(self._k)
                        self.lock.repaired()
                    self._reap(self._k)
                    yield self._k
                finally:
                    self._depth = 0
                    self._k.close()
                    self._k = None

    def _check_state(self) -> None:
        """Before an operation changes anything: the state's disk has room and no
        other process holds the database (either would fail it half way)."""
        from nsbridge.errors import StateError
        from nsbridge.state.store import no_space

        st = os.statvfs(self.host.root)
        if st.f_bfree * st.f_frsize < MIN_FREE:
            raise StateError(no_space(self.host.db))
        self.store.check_writable()

    def _ensure_sandbox(self) -> None:
        """Create the sandbox host namespace if it is missing (loopback up,
        marked as this engine's); an existing one must be ours, or nobody's
        (then adopted), never another engine's host or container."""
        if self.host.netns is None:
            return
        from nsbridge.engine import owner
        from nsbridge.kernel import ns

        name, eid = self.host.netns, self.host.engine_id
        if os.path.lexists(ns.netns_path(name)):
            owner.claim_host(name, eid, self.host.root)  # (a mark read: no pyroute2, which `rm` never needs)
            return
        from nsbridge.kernel import netlink

        self.lock.note(f"netns {name}")
        with ns.returning():
            link, fd = netlink.open_in_new_netns(name, owner.host_mark(eid, self.host.root))
            os.close(fd)
            link.close()

    def _host_sysctls(self) -> None:
        """Forwarding on, bridge netfilter on (icc and isolation need it); in
        the host namespace, at first use and after a reboot."""
        from nsbridge.kernel import sysctl

        sysctl.try_write("net.ipv4.ip_forward", 1)
        if self.host.netns is not None:
            # the sandbox is ours: new devices (our veths) come without IPv6,
            # so a veth is made and brought up in one request (see add_veth)
            sysctl.try_write("net.ipv6.conf.default.disable_ipv6", 1)
        self._bridge_nf()

    @staticmethod
    def _bridge_nf() -> None:
        from nsbridge.kernel import sysctl

        if sysctl.read("net.bridge.bridge-nf-call-iptables") is None:
            import subprocess

            subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
        sysctl.try_write("net.bridge.bridge-nf-call-iptables", 1)

    def _ensure_host(self, k: Kernel) -> None:
        """Predefined networks in the store, and the host's own kernel objects
        (chains, bridges, resolvers) present; restores them after a reboot."""
        if self.store.get_meta("initialized") != "1":
            self._host_sysctls()
            self._init_predefined(k)
        from nsbridge import drivers

        # each driver checks its own objects (a bridge: one ioctl, no dump of every veth)
        missing = [n for n in self.store.networks() if drivers.of(n).missing(k, n)]
        if missing:
            self._host_sysctls()
            k.fw.ensure_base()
            for n in missing:
                log.info("restoring network %s (driver %s: its kernel objects are missing)", n.name, n.driver)
                self._restore_network(k, n)
            self._reap(k, full=True)  # after a reboot the containers' namespaces are gone too
            for line in self._restart_by_policy():
                log.info("restore: %s", line)
        self._ensure_resolvers(k)
        self._ensure_watcher()

    def _init_predefined(self, k: Kernel) -> None:
        from nsbridge.ipam.pools import pick_pool

        links = {li.name: li for li in k.link.links()}
        docker_note = ""
        taken = self._host_routes(k)
        bridge_name, subnet = "docker0", ipaddress.IPv4Network("172.17.0.0/16")
        other = links.get("docker0")
        if other is not None and other.group != k.group:
            # Docker itself runs here: never touch its docker0 or its pool.
            bridge_name = next(f"nsbr{i}" for i in range(100) if f"nsbr{i}" not in links)
            docker_note = f"docker0 exists and is not ours (Docker?): nsbridge's default bridge is {bridge_name}"
        if any(subnet.overlaps(t) for t in taken):
            subnet = pick_pool(taken)
        gw = str(next(subnet.hosts()))
        created = now_iso()
        bridge = Network(
            id=new_id(),
            name="bridge",
            driver="bridge",
            created=created,
            ipam=IpamConfig(subnet=str(subnet), gateway=gw),
            options={
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": bridge_name,
                "com.docker.network.driver.mtu": "1500",
            },
            bridge=bridge_name,
            predefined=True,
        )
        host = Network(id=new_id(), name="host", driver="host", created=created, predefined=True)
        none = Network(id=new_id(), name="none", driver="null", created=created, predefined=True)
        k.fw.ensure_base()
        self._restore_network(k, bridge)
        with self.store.tx():
            for n in (bridge, host, none):
                self.store.put_network(n)
            self.store.set_meta("initialized", "1")
            if docker_note:
                self.store.set_meta("docker", docker_note + f" on {subnet}")

    def _host_routes(self, k: Kernel) -> list[ipaddress.IPv4Network]:
        out = []
        for dst in k.link.ipv4_routes():
            net = ipaddress.IPv4Network(dst, strict=False)
            if net.prefixlen > 0:
                out.append(net)
        for _, addr, plen in k.link.ipv4_addrs():
            if not addr.startswith("127."):
                out.append(ipaddress.IPv4Network(f"{addr}/{plen}", strict=False))
        return out

    def system_info(self) -> dict:
        self.ensure_ready()
        nets = self.store.networks()
        bridge = next(n for n in nets if n.name == "bridge")
        cs = self.store.containers()
        resolvers = self.store.resolvers()
        byid = {n.id: n for n in nets}
        served = self._dns_served()
        from nsbridge.dns.supervisor import read_last_words
        return {
            "Root": self.host.root,
            "HostNamespace": self.host.netns or "(the machine's own)",
            # the mark on every kernel object of this engine (engine/owner.py)
            "Engine": {"ID": self.host.engine_id, "DeviceGroup": self.host.device_group},
            "DefaultBridge": {"Name": bridge.bridge, "Subnet": bridge.ipam.subnet if bridge.ipam else ""},
            "Containers": len(cs),
            "ContainersRunning": sum(1 for c in cs if c.running),
            "ContainersStopped": sum(1 for c in cs if not c.running),
            "Networks": len(nets),
            "Resolvers": {
                byid[nid].name if nid in byid else nid: {
                    "Pid": pid,
                    "Address": addr,  # port 53, in each container served
                    "ServedContainers": served.get(nid, 0),
                    "State": "running" if procs.alive(pid, start) else "stopped",
                    "Log": logf,
                    # how the previous process ended, if one died and was replaced
                    "LastExit": read_last_words(logf),
                }
                for nid, (pid, start, addr, logf) in resolvers.items()
            },
            "UpstreamResolvConf": self.host.upstream_resolv,
            "Docker": self.store.get_meta("docker", "") or "",
            "Cluster": self.cluster_info(),
        }
