"""The engine's side of a cluster store: `system join`, `system leave`, what
`system info` shows of it, and the watcher process (started with the
membership, restarted by any engine call that finds it dead, stopped by leave
and reset). The cluster logic itself is in nsbridge/cluster/."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING

from nsbridge import procs

if TYPE_CHECKING:
    from nsbridge.cluster.member import Membership
    from nsbridge.engine.core import Engine
    from nsbridge.engine.host import Host

log = logging.getLogger("nsbridge")
WATCHER_MODULE = "nsbridge.cluster.watcher"


class ClusterOps:
    def join(self: "Engine", url: str, advertise: str, ttl: int) -> "Membership":
        from nsbridge.cluster import member

        with self._session() as k:
            # the underlay is the host's own: not loopback, not a bridge of ours
            ours = {li.name for li in k.link.links() if li.alias.startswith("nsbridge:")}
            addrs = [a for ifname, a, _plen in k.link.ipv4_addrs() if ifname not in ours and not a.startswith("127.")]
            m = member.join(self.store, url, advertise, ttl, self.host.netns, addrs)
            self._ensure_watcher(strict=True)
        return m

    def leave(self: "Engine", force: bool = False) -> "Membership":
        from nsbridge.cluster import member

        with self._session():
            member.check_can_leave(self.store)
            self._stop_watcher()  # first: it must not put our keys back after the revoke
            try:
                return member.leave(self.store, force=force)
            except BaseException:
                self._ensure_watcher()
                raise

    def cluster_info(self: "Engine") -> dict | None:
        """What `system info` shows: the store, this host's advertise address
        and the hosts the store knows (or why it cannot be asked)."""
        if self.store.get_meta("cluster.store") is None:
            return None  # (and no import of the etcd client)
        from nsbridge.cluster import member
        from nsbridge.cluster.etcd import ClusterError, ClusterUnavailable

        m = member.membership(self.store, self.host.netns)
        if m is None:
            return None
        from nsbridge import supervise

        w = member.watcher_record(self.store) or {}
        logf = w.get("log", member.watcher_log(self.host.root))
        running = procs.alive(w.get("pid", 0), w.get("start", 0))
        info: dict = {
            "Store": m.store, "Advertise": m.advertise, "HostID": m.host_id, "TTL": m.ttl,
            "Watcher": {"Pid": w.get("pid", 0), "Log": logf, "State": "running" if running else "stopped",
                        "LastWords": "" if running else supervise.last_line(logf)},
            "Hosts": [], "Error": "",
        }
        try:
            with self.host.entered(), m.client(timeout=2) as etcd:
                info["Hosts"] = [{"Name": h.name, "Advertise": h.advertise, "ID": h.id, "Self": h.id == m.host_id}
                                 for h in member.hosts(etcd)]
        except (ClusterUnavailable, ClusterError) as e:
            info["Error"] = str(e)
        return info

    # -- the watcher -------------------------------------------------------------------
    def _ensure_watcher(self: "Engine", strict: bool = False) -> None:
        """Start the watcher if this host has joined and it is not running; the
        thread is in the host namespace (a session), so the process lives there.
        A watcher that will not start fails `join` (STRICT); any other command
        logs it and goes on (the next one tries again)."""
        if self.store.get_meta("cluster.store") is None:
            return  # not joined (and no import of the cluster modules on every session)
        from nsbridge.cluster import member

        w = member.watcher_record(self.store)
        if w and procs.alive(w["pid"], w["start"]):
            return
        from nsbridge import supervise
        from nsbridge.errors import NsbridgeError

        args = ["--db", self.host.db] + (["--host-netns", self.host.netns] if self.host.netns else [])
        logf = member.watcher_log(self.host.root)
        if w:
            log.warning("cluster watcher pid %s was dead (last words: %s): restarting", w["pid"],
                        supervise.last_line(w.get("log", logf)) or "none")
        try:
            child = supervise.spawn(WATCHER_MODULE, args, logf, "cluster watcher")
        except NsbridgeError as e:
            log.warning("%s", e)
            if strict:
                raise
            return
        member.set_watcher_record(self.store, child.pid, child.start, child.log)

    def _stop_watcher(self: "Engine") -> None:
        from nsbridge import supervise
        from nsbridge.cluster import member

        w = member.watcher_record(self.store)
        if w:
            supervise.stop(w["pid"], w["start"])
            member.clear_watcher_record(self.store)

    def _repair_watcher(self: "Engine") -> list[str]:
        """reconcile: watcher processes of this state root that no record points at."""
        from nsbridge import supervise
        from nsbridge.cluster import member

        w = member.watcher_record(self.store) or {}
        report = []
        for pid in supervise.pids_of(WATCHER_MODULE, self.host.db):
            if pid != w.get("pid") or not procs.alive(pid, w.get("start", 0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                report.append(f"stopped stray cluster watcher pid {pid}")
        return report


def reset_cluster(host: "Host") -> list[str]:
    """`system reset`: stop the watcher and revoke this host's lease (etcd drops
    its host, endpoint and address keys), best effort: an unreachable store is
    reported, not fatal (the keys then expire with the lease's TTL)."""
    from nsbridge import supervise
    from nsbridge.cluster import member
    from nsbridge.cluster.etcd import ClusterError, ClusterUnavailable
    from nsbridge.state.store import Store

    report: list[str] = []
    if not os.path.exists(host.db):
        return report
    st = Store(host.db)
    try:
        w = member.watcher_record(st)
        if w:
            procs.signal_group(w["pid"], w["start"], signal.SIGKILL)
        for pid in supervise.pids_of(WATCHER_MODULE, host.db):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        m = member.membership(st, host.netns)
        if m is None:
            return report
        try:
            with host.entered(), m.client(timeout=2) as etcd:
                etcd.revoke(m.lease)
            report.append(f"left the cluster store at {m.store} (this host's keys removed)")
        except (ClusterUnavailable, ClusterError, OSError) as e:
            report.append(f"could not remove this host's keys from the cluster store ({e}): they expire in {m.ttl} s")
    finally:
        st.close()
    return report
