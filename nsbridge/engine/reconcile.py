"""Making the store and the kernel agree: reconcile (after a crash), restore
(after a reboot), reset (remove everything ours). Our objects are found by
their mark (interface alias `nsbridge:<id>`, the sandbox prefix of netns
names, our chains and tagged jumps), never by guessing from names."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from typing import TYPE_CHECKING

from nsbridge import procs

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel
    from nsbridge.engine.host import Host

log = logging.getLogger("nsbridge")

RUNTIME_DIR = "/run/nsbridge"  # stand-ins' busybox links and shell rc (nsbridge/standins)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _our_netns(host: "Host", known: set[str]) -> list[str]:
    """Namespaces we made: the sandbox's prefixed ones, or those in the store."""
    from nsbridge.kernel import ns

    if host.netns:
        prefix = host.netns + "-"
        return [n for n in ns.list_netns() if n.startswith(prefix)]
    return [n for n in ns.list_netns() if n in known]


def _resolver_pids(db: str) -> dict[int, str]:
    """Resolver processes serving this state root: pid -> network id."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"nsbridge.dns.server" in argv and db.encode() in argv:
            with contextlib.suppress(ValueError, IndexError):
                out[int(d)] = argv[argv.index(b"--network-id") + 1].decode()
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
        from nsbridge.drivers.bridge import rules_for
        from nsbridge.kernel import ns
        from nsbridge.kernel.firewall import FILTER_CHAINS, NAT_CHAINS, Rule, base_rules

        report: list[str] = []
        nets = self.store.networks()
        cs = self.store.containers()
        live_ns = {c.netns for c in cs if c.running and c.netns}
        for name in _our_netns(self.host, live_ns | {c.netns for c in cs if c.netns}):
            if name not in live_ns:
                _kill_all(ns.pids_in_netns(ns.netns_path(name)))
                ns.remove_netns(name)
                report.append(f"removed stray network namespace {name}")
        net_ids = {n.id for n in nets}
        eps = self.store.all_endpoints()
        live_eps = {e.endpoint_id for e in eps if e.ip}
        links = k.link.links()
        for li in links:
            if not li.alias.startswith("nsbridge:"):
                continue
            oid = li.alias.split(":", 1)[1]
            if li.kind == "bridge" and oid not in net_ids:
                k.link.delete_link(li.name)
                report.append(f"removed stray bridge {li.name}")
            elif li.kind == "veth" and oid not in live_eps:
                k.link.delete_link(li.name)
                report.append(f"removed stray veth {li.name}")
        running = {c.id: c for c in cs if c.running}
        present_links = {li.name for li in links}
        with self.store.tx():
            for e in eps:
                if e.ip and e.container_id not in running:
                    # endpoints must not hold addresses of stopped containers
                    e.ip, e.endpoint_id, e.ifname, e.host_ifname = None, "", "", ""
                    self.store.put_endpoint(e)
                    report.append(f"released address of stopped container {e.container_id[:12]}")
                elif e.ip and e.host_ifname and e.host_ifname not in present_links:
                    # a disconnect that died after removing the veth: finish it
                    self.store.delete_endpoint(e.container_id, e.network_id)
                    report.append(f"finished disconnecting {e.container_id[:12]} from {e.network_id[:12]}")
        # firewall: exactly base + networks + published ports
        expected: list[Rule] = list(base_rules())
        for n in nets:
            if n.driver == "bridge":
                expected += rules_for(n)
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
        with self.store.tx():
            for nid in list(recorded):
                if nid not in net_ids:
                    self.store.delete_resolver(nid)
        self._ensure_resolvers(k)
        report += self._repair_watcher()
        # files of containers that were never recorded
        cdir = os.path.join(self.host.root, "containers")
        known = {c.id for c in cs}
        for d in os.listdir(cdir) if os.path.isdir(cdir) else []:
            if d not in known:
                shutil.rmtree(os.path.join(cdir, d), ignore_errors=True)
                report.append(f"removed files of unrecorded container {d[:12]}")
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
        """Remove every object of ours on HOST and the state root; carry on past errors."""
        from nsbridge.kernel import ns
        from nsbridge.state.store import Store

        from nsbridge.engine.cluster import reset_cluster

        report = reset_cluster(host)  # first: the store is reached from the host namespace
        known: set[str] = set()
        bridges: list[str] = []
        if os.path.exists(host.db):
            st = Store(host.db)
            cs = st.containers()
            for c in cs:
                if c.pid:
                    procs.signal_group(c.pid, c.pid_start, signal.SIGKILL)
                if c.netns:
                    known.add(c.netns)
            bridges = [n.bridge for n in st.networks() if n.driver == "bridge"]
            for _nid, (pid, start, _a, _l) in st.resolvers().items():
                procs.signal_group(pid, start, signal.SIGKILL)
            st.close()
        for pid in _resolver_pids(host.db):
            _kill_all([pid])
        for name in _our_netns(host, known):
            _kill_all(ns.pids_in_netns(ns.netns_path(name)))
            ns.remove_netns(name)
            report.append(f"removed network namespace {name}")
        if host.netns:
            if ns.netns_exists(host.netns):
                _kill_all(ns.pids_in_netns(ns.netns_path(host.netns)))
                ns.remove_netns(host.netns)
                report.append(f"removed sandbox host {host.netns}")
        elif bridges or known:
            from nsbridge.kernel.firewall import Firewall
            from nsbridge.kernel.netlink import NsLink

            link = NsLink()
            for li in link.links():
                if li.alias.startswith("nsbridge:"):
                    link.delete_link(li.name)
                    report.append(f"removed {li.kind} {li.name}")
            link.close()
            try:
                Firewall().remove_all()
                report.append("removed nsbridge's iptables chains and rules")
            except Exception as e:
                report.append(f"could not remove iptables rules: {e}")
        shutil.rmtree(host.root, ignore_errors=True)
        report.append(f"removed state root {host.root}")
        if host.netns is None and os.path.isdir(RUNTIME_DIR):
            # the machine's own reset: the runtime files shared by every host go too
            # (a sandbox's reset leaves them to the other sandboxes)
            shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
            report.append(f"removed runtime files {RUNTIME_DIR}")
        return report
