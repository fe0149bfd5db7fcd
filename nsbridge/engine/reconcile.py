"""Making the store and the kernel agree: reconcile (after a crash), restore
(after a reboot), reset (remove everything ours). Our objects are found by
their mark (engine/owner.py: the device group and `nsbridge:<id>` alias of
devices, the loopback mark of namespaces; our chains and tagged jumps),
never by guessing from names. Reset works from the marks alone when the
state database cannot be read."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel
    from nsbridge.engine.host import Host

log = logging.getLogger("nsbridge")

from nsbridge.engine.runtime import RUN_DIR as RUNTIME_DIR  # stand-ins' busybox links and shell rc, engines' files


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _our_netns(host: "Host", kinds: tuple[str, ...] = ("container",)) -> list[str]:
    """Namespaces of KINDS that carry this engine's mark (a sandbox's `NAME-`
    prefix only narrows which names are worth reading)."""
    from nsbridge.engine import owner

    return owner.our_namespaces(host.engine_id, host.netns + "-" if host.netns else "", kinds)


def finish_noted(notes: list[str]) -> list[str]:
    """Namespace names an interrupted holder of the lock noted (engine/lock.py):
    a name with no namespace bound to it, made or unbound a moment before the
    kill, is removed; a bound one carries its mark and is dealt with by that."""
    from nsbridge.kernel import ns

    report = []
    for line in notes:
        kind, _, name = line.partition(" ")
        if kind != "netns" or not name or "/" in name or name in (".", ".."):
            continue
        path = ns.netns_path(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if st.st_size == 0 and not ns.netns_exists(name) and os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            report.append(f"removed the unfinished namespace name {name}")
    return report


def _resolver_pids(db: str) -> dict[int, str]:
    """Resolver processes serving this state root: pid -> network id."""
    from nsbridge import procs

    out = {}
    for pid, argv in procs.cmdlines():
        if b"nsbridge.dns.server" in argv and db.encode() in argv:
            with contextlib.suppress(ValueError, IndexError):
                out[pid] = argv[argv.index(b"--network-id") + 1].decode()
    return out


def _root_pids(host: "Host") -> list[int]:
    """Processes that name this state root's files in their command line: the
    resolvers (--db) and the containers' commands (their exit-code file)."""
    from nsbridge import procs

    db, cdir = host.db.encode(), os.path.join(host.root, "containers", "").encode()
    return [pid for pid, argv in procs.cmdlines() if any(a == db or a.startswith(cdir) for a in argv)]


def _kill_group(pid: int) -> None:
    """SIGKILL PID, and its process group if it leads one (a container's command)."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _lock_notes(host: "Host") -> list[str]:
    """The notes in the lock file (engine/lock.py) of a holder that died."""
    try:
        with open(host.lock, "rb") as f:
            return f.read().decode(errors="replace").splitlines()[1:]
    except OSError:
        return []


def _stray_devices(links: list, group: int, kinds: set[str], net_ids: set[str], net_devices: set[str],
                   live_eps: set[str]) -> list[tuple[object, str]]:
    """Devices of this engine (its group, of a kind some driver makes) that no
    recorded object names: a network's device (a bridge, a VLAN parent) of no
    network, an endpoint's (a veth's host end, a macvlan) of no live endpoint,
    and one killed between being made and being named (our group, no alias: a
    recorded network's device aside, which a restore was making)."""
    out = []
    for li in links:
        if li.group != group or li.kind not in kinds:
            continue
        if li.alias.startswith("nsbridge:"):
            oid = li.alias[len("nsbridge:"):]
            if oid not in net_ids and oid not in live_eps:
                out.append((li, ""))
        elif li.name not in net_devices:
            out.append((li, " (made, never named: killed in between)"))
    return out


class ReconcileOps:
    def reconcile(self: "Engine") -> list[str]:
        """Remove what the store does not know, re-create what it expects."""
        with self._session() as k:
            report = self._repair(k)
        return report or ["nothing to do: the store and the kernel agree"]

    def _repair(self: "Engine", k: "Kernel") -> list[str]:
        """The work of reconcile, inside a session; also run by any command
        that finds the previous one died holding the lock."""
        from nsbridge import drivers
        from nsbridge.kernel import ns
        from nsbridge.kernel.firewall import FILTER_CHAINS, NAT_CHAINS, Rule, base_rules

        report: list[str] = []
        nets = self.store.networks()
        cs = self.store.containers()
        live_ns = {c.netns for c in cs if c.running and c.netns}
        # a network's own namespace (overlay) lives while a container of this host is on it
        from nsbridge.engine import owner

        on_net = {e.network_id for c in cs if c.running for e in self.store.endpoints_of(c.id) if e.ip}
        for name, m in owner.marked(self.host.engine_id, self.host.netns + "-" if self.host.netns else "",
                                    ("overlay",)).items():
            if m.what not in on_net:
                self.lock.note(f"netns {name}")
                ns.remove_netns(name)
                report.append(f"removed network namespace {name} (no container of this host on its network)")
        for name in _our_netns(self.host):
            if name not in live_ns:
                _kill_all(ns.pids_in_netns(ns.netns_path(name)))
                self.lock.note(f"netns {name}")
                ns.remove_netns(name, devices_first=True)  # its veths gone before the links are read below
                report.append(f"removed stray network namespace {name}")
        net_ids = {n.id for n in nets}
        eps = self.store.all_endpoints()
        live_eps = {e.endpoint_id for e in eps if e.ip}
        links = k.link.links()
        devices = {n.id: drivers.of(n).devices(n) for n in nets}
        for li, why in _stray_devices(links, k.group, drivers.host_kinds(), net_ids,
                                      {d for ds in devices.values() for d in ds}, live_eps):
            k.link.delete_link(li.name)
            report.append(f"removed stray {li.kind} {li.name}{why}")
        named = {li.name for li in links if li.alias.startswith("nsbridge:")}
        ours = {li.name: li for li in links if li.group == k.group}
        for n in nets:
            for dev in devices[n.id]:
                if dev not in named and dev in ours:
                    k.link.name_device(dev, "nsbridge:" + n.id)  # restored, then killed before it was named
                    report.append(f"named {ours[dev].kind} {dev} of network {n.name}")
        report += self._stray_in_containers(k, cs, nets, eps)
        running = {c.id: c for c in cs if c.running}
        present_links = {li.name for li in links}
        # endpoints that must not hold addresses (stopped containers), and disconnects that
        # died after removing the veth; written only if any (a commit wakes every resolver)
        release = [e for e in eps if e.ip and e.container_id not in running]
        finish = [e for e in eps if e.ip and e.container_id in running and e.host_ifname
                  and e.host_ifname not in present_links]
        if release or finish:
            with self.store.tx():
                for e in release:
                    e.ip, e.endpoint_id, e.ifname, e.host_ifname = None, "", "", ""
                    self.store.put_endpoint(e)
                    report.append(f"released address of stopped container {e.container_id[:12]}")
                for e in finish:
                    self.store.delete_endpoint(e.container_id, e.network_id)
                    report.append(f"finished disconnecting {e.container_id[:12]} from {e.network_id[:12]}")
        # firewall: exactly base + networks + published ports
        expected: list[Rule] = list(base_rules())
        for n in nets:
            expected += drivers.of(n).rules(n)
        expected += self._expected_port_rules()
        want = {r.key() for r in expected}
        present, _chains = k.fw.present()
        ours = set(FILTER_CHAINS) | set(NAT_CHAINS)
        stray = [
            Rule(t, c, s)
            for (t, c, s) in present
            if (t, c, s) not in want and (c in ours or "--comment nsbridge" in s)
        ]
        missing = [r for r in expected if r.key() not in present]
        if stray or missing:
            k.fw.apply(add=missing, delete=stray)
            report += [f"removed stray rule -A {r.chain} {r.spec} ({r.table})" for r in stray]
            report += [f"restored rule -A {r.chain} {r.spec} ({r.table})" for r in missing]
        # resolvers: one per user bridge, none for networks that are gone
        recorded = self.store.resolvers()
        for pid, nid in _resolver_pids(self.host.db).items():
            r = recorded.get(nid)
            if nid not in net_ids or r is None or r[0] != pid:
                _kill_all([pid])
                report.append(f"stopped stray resolver pid {pid}")
        gone = [nid for nid in recorded if nid not in net_ids]
        if gone:
            with self.store.tx():
                for nid in gone:
                    self.store.delete_resolver(nid)
        self._ensure_resolvers(k)
        report += self._repair_watcher()
        # files of containers that were never recorded (logs on disk, the rest on the tmpfs)
        known = {c.id for c in cs}
        from nsbridge.engine import runtime

        for cdir in (os.path.join(self.host.root, "containers"), os.path.join(runtime.base(self.host), "containers")):
            for d in os.listdir(cdir) if os.path.isdir(cdir) else []:
                if d not in known:
                    shutil.rmtree(os.path.join(cdir, d), ignore_errors=True)
                    report.append(f"removed files of unrecorded container {d[:12]}")
        return report

    def _stray_in_containers(self: "Engine", k: "Kernel", cs: list, nets: list, eps: list) -> list[str]:
        """Interfaces a driver makes inside containers (a macvlan: no host end that
        the host's devices would show) carry the engine's group and `nsbridge:<endpoint
        id>`: one of no live endpoint was made by a `connect` killed before it was
        recorded; a live endpoint whose interface is gone, by a `disconnect` killed
        before it was forgotten. Running containers' namespaces are read only while
        a network of such a driver exists."""
        from nsbridge import drivers
        from nsbridge.kernel import netlink, ns

        kinds = {n.id: drivers.of(n).caps.container_kinds for n in nets}
        every = {kind for ks in kinds.values() for kind in ks}
        if not every:
            return []
        live = {e.endpoint_id for e in eps if e.ip}
        report: list[str] = []
        finish = []
        for c in cs:
            if not c.running or not c.netns or not ns.netns_exists(c.netns):
                continue
            ctr, fd = netlink.open_in_netns(ns.netns_path(c.netns))
            try:
                links = ctr.links()
                for li in links:
                    oid = li.alias[len("nsbridge:"):] if li.alias.startswith("nsbridge:") else ""
                    if li.group == k.group and li.kind in every and oid not in live:
                        ctr.delete_link(li.name)
                        report.append(f"removed stray {li.kind} {li.name} in container {c.name}")
                names = {li.name for li in links}
                finish += [e for e in eps if e.container_id == c.id and e.ip and kinds.get(e.network_id)
                           and e.ifname not in names]
            finally:
                ctr.close()
                os.close(fd)
        if finish:
            with self.store.tx():
                for e in finish:
                    self.store.delete_endpoint(e.container_id, e.network_id)
                    report.append(f"finished disconnecting {e.container_id[:12]} from {e.network_id[:12]}")
        return report

    def _expected_port_rules(self: "Engine") -> list:
        return self._all_port_rules()

    def restore(self: "Engine") -> list[str]:
        """After a reboot: networks come back (every session checks), then the
        containers whose restart policy says so (`system restore`, for a boot unit)."""
        with self._session():
            return self._restart_by_policy()

    def _restart_by_policy(self: "Engine") -> list[str]:
        report = []
        for c in self.store.containers():
            if c.running or c.restart_policy not in ("always", "unless-stopped"):
                continue
            if c.stopped_by_user and c.restart_policy == "unless-stopped":
                continue
            try:
                self.start(c.id)
                report.append(f"restarted {c.name}")
            except Exception as e:  # report and carry on with the others
                report.append(f"could not restart {c.name}: {e}")
        return report

    @staticmethod
    def reset(host: "Host") -> list[str]:
        """Remove every object of ours on HOST and the state root; carry on past
        errors. The kernel's marks decide what is ours (engine/owner.py), so a
        damaged or lost state database still resets; what the store records
        helps only to stop processes by pid first."""
        import sqlite3

        from nsbridge.engine import owner
        from nsbridge.kernel import ns
        from nsbridge.state.store import Store

        from nsbridge.engine.cluster import reset_cluster

        host.prepare_root(create=False)  # a symlinked or planted root is refused, never followed
        report = []
        try:
            report += reset_cluster(host)  # first: the store is reached from the host namespace
        except (sqlite3.DatabaseError, ValueError) as e:
            report.append(f"could not leave the cluster store: the state database is unreadable ({e})")
        recorded: set[str] = set()  # ids of networks and endpoints (devices made before group marks)
        if os.path.exists(host.db):
            try:
                st = Store(host.db, readonly=True)
                try:
                    recorded = {n.id for n in st.networks()} | {e.endpoint_id for e in st.all_endpoints() if e.endpoint_id}
                finally:
                    st.close()
            except (sqlite3.DatabaseError, ValueError) as e:  # (ValueError: a damaged record)
                report.append(f"the state database is unreadable ({e}): removing by the kernel's marks alone")
        # processes: by what they name (a copy of a state root names another root's pids)
        for pid in _root_pids(host):
            _kill_group(pid)
        report += finish_noted(_lock_notes(host))
        # the sandbox host's mark read first: the kernel's clean-up of the containers'
        # namespaces, once they are unmounted, holds the rtnl lock a while
        host_mark = owner.read(host.netns) if host.netns else None
        names = _our_netns(host, ("container", "overlay"))
        held = ns.pids_by_netns() if names else {}  # one /proc scan for them all

        def remove(name: str) -> None:
            _kill_all(ns.pids_in_netns(ns.netns_path(name), held))
            # devices first: the kernel frees an unmounted namespace lazily (seconds under
            # load), and until then a container's macvlan still answers on the LAN
            ns.remove_netns(name, devices_first=True)

        ns.in_parallel(remove, names)
        report += [f"removed network namespace {name}" for name in names]
        if host.netns:
            name = host.netns
            m = host_mark
            if m is not None and m.kind == "host" and m.engine == host.engine_id:
                _kill_all(ns.pids_in_netns(ns.netns_path(name)))
                ns.remove_netns(name)
                report.append(f"removed sandbox host {name}")
            elif ns.netns_exists(name):
                report.append(f"{owner.describe(name, m)}: left alone")
        else:
            from nsbridge.kernel.firewall import Firewall
            from nsbridge.kernel.netlink import NsLink

            from nsbridge import drivers

            kinds = drivers.host_kinds()
            link = NsLink()
            gone = 0
            for li in link.links():
                oid = li.alias[len("nsbridge:"):] if li.alias.startswith("nsbridge:") else ""
                if li.kind in kinds and (li.group == host.device_group or oid in recorded):
                    link.delete_link(li.name)
                    report.append(f"removed {li.kind} {li.name}")
                    gone += 1
            link.close()
            if gone or recorded:
                try:
                    Firewall().remove_all()
                    report.append("removed nsbridge's iptables chains and rules")
                except Exception as e:
                    report.append(f"could not remove iptables rules: {e}")
        from nsbridge.engine import runtime

        report += runtime.remove(host)  # before the root: a mounted tmpfs would stop its removal
        shutil.rmtree(host.root, ignore_errors=True)
        if os.path.lexists(host.root):
            report.append(f"could not remove state root {host.root}")
        else:
            report.append(f"removed state root {host.root}")
        shared = os.path.join(RUNTIME_DIR, "standins")
        if host.netns is None and os.path.isdir(shared):
            # the machine's own reset: the stand-ins' files shared by every host go too
            # (a sandbox's reset leaves them to the other sandboxes; their engines' own
            # directories beside them are theirs)
            shutil.rmtree(shared, ignore_errors=True)
            report.append(f"removed runtime files {shared}")
            with contextlib.suppress(OSError):
                os.rmdir(RUNTIME_DIR)
        return report
