"""The per-host cluster watcher: keeps this host's lease alive and the kernel in
step with the cluster store while no command runs.

    python -m nsbridge.cluster.watcher --db STATE_DB [--host-netns NAME] [--ready-fd N]

Started by the engine in the host namespace (and restarted by any engine call
that finds it dead), recorded in the state store's meta table (cluster.watcher).
It:
- refreshes this host's etcd lease every TTL/3 seconds; when the lease was lost
  (the host was cut off longer than the TTL) it takes a new one and puts back
  every key this host had announced (member.reannounce);
- reads everything under /nsbridge/v1/ once, then follows etcd's watch stream
  from that revision (a reader thread; reconnecting and resuming on its own);
- for every overlay network namespace present on this host, keeps vxlan0's FDB
  and neighbour entries equal to the endpoints of OTHER hosts on that network
  (kernel/overlay.py): added and removed per event, fully re-synced at start,
  after a lost stream, and when an overlay namespace appears.
One log line per start, stop, loss and return of the store, and peer change.
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import threading
import time

from nsbridge.cluster import layout, member
from nsbridge.cluster.etcd import ClusterError, ClusterUnavailable, Compacted, Etcd

TICK = 1.0  # seconds between checks for new overlay namespaces (a listdir)
RESYNC = object()  # queue marker: the watch lost history, read everything again


def log(msg: str) -> None:
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stderr.write(f"{t} nsbridge-cluster-watcher[{os.getpid()}] {msg}\n")
    sys.stderr.flush()


# -- pure: what the kernel should hold ---------------------------------------------
def peer_of(ep: layout.ClusterEndpoint):
    from nsbridge.kernel.overlay import Peer

    return Peer(ep.ip, ep.mac, ep.vtep)


def desired_peers(endpoints: dict[str, layout.ClusterEndpoint], host_id: str) -> dict[str, set]:
    """network id -> the peers (endpoints of other hosts) its vxlan0 must know."""
    out: dict[str, set] = {}
    for ep in endpoints.values():
        if ep.host != host_id and ep.ip and ep.mac and ep.vtep:
            out.setdefault(ep.network_id, set()).add(peer_of(ep))
    return out


def overlay_names(host_netns: str | None) -> set[str]:
    """Names that may be overlay namespaces of this host (a listdir: every tick)."""
    from nsbridge.kernel import ns
    from nsbridge.kernel.overlay import netns_prefix

    prefix = netns_prefix(host_netns)
    return {n for n in ns.list_netns() if n.startswith(prefix)}


def local_overlays(host_netns: str | None, eid: str) -> dict[str, str]:
    """network id -> netns path of the overlay namespaces this host's engine
    (EID) made: the name narrows, the mark decides (another engine's or an
    unmarked `overlay@…` is never programmed)."""
    from nsbridge.engine import owner
    from nsbridge.kernel import ns
    from nsbridge.kernel.overlay import netns_prefix

    return {m.what: ns.netns_path(n) for n, m in owner.marked(eid, netns_prefix(host_netns), ("overlay",)).items()}


class Watcher:
    def __init__(self, st, m: member.Membership, host_netns: str | None, eid: str) -> None:
        self.st, self.m, self.host_netns, self.eid = st, m, host_netns, eid
        self.etcd = Etcd(m.store, timeout=max(1.0, min(3.0, m.ttl / 3)))
        self.endpoints: dict[str, layout.ClusterEndpoint] = {}
        self.events: queue.Queue = queue.Queue()
        self.reader: threading.Thread | None = None
        self.overlays: dict[str, str] = {}  # network id -> netns path, peers in sync
        self.seen: set[str] = set()  # overlay_names() when last synced, less those that failed
        self.store_ok = True
        self.stopping = False

    # -- lease ----------------------------------------------------------------------
    def keepalive(self) -> None:
        try:
            ttl = self.etcd.keepalive(self.m.lease)
            if ttl == 0:
                lease, conflicts = member.reannounce(self.st, self.etcd, self.m)
                log(f"lease lost (cut off longer than {self.m.ttl} s): new lease {lease:x}, this host's keys put back")
                for line in conflicts:
                    log(f"conflict: {line}")
            self._store_state(True, "")
        except ClusterUnavailable as e:
            self._store_state(False, str(e))
        except ClusterError as e:
            log(f"keepalive failed: {e}")

    def _store_state(self, ok: bool, why: str) -> None:
        if ok != self.store_ok:
            log("the cluster store answers again" if ok else f"lost the cluster store: {why}")
            self.store_ok = ok

    # -- state ----------------------------------------------------------------------
    def snapshot(self) -> int | None:
        """Read every endpoint; the revision to watch from (None: store away)."""
        try:
            kvs, rev = self.etcd.get_prefix(layout.ENDPOINTS)
        except ClusterUnavailable as e:
            self._store_state(False, str(e))
            return None
        self.endpoints = {}
        for kv in kvs:
            self._put(kv.key, kv.value)
        self.sync_all()
        return rev

    def _put(self, key: str, value: str) -> layout.ClusterEndpoint | None:
        if layout.parse_key(key)[0] != "endpoint":
            return None
        try:
            ep = layout.ClusterEndpoint.from_json(value)
        except (ValueError, TypeError):
            log(f"ignored unreadable endpoint record at {key}")
            return None
        self.endpoints[key] = ep
        return ep

    def start_reader(self, rev: int) -> None:
        def follow() -> None:
            client = Etcd(self.m.store, timeout=self.etcd.timeout)
            try:
                for batch in client.watch(layout.ENDPOINTS, rev, retry=1.0,
                                          on_error=lambda e: self.events.put(e)):
                    self.events.put(batch)
            except Compacted as e:
                log(f"{e}: reading the store again")
                self.events.put(RESYNC)
            except Exception as e:  # the reader must never die silently
                log(f"watch failed: {type(e).__name__}: {e}")
                self.events.put(RESYNC)

        self.reader = threading.Thread(target=follow, name="watch", daemon=True)
        self.reader.start()

    # -- kernel ---------------------------------------------------------------------
    def sync_all(self) -> None:
        from nsbridge.kernel.overlay import sync_peers

        want = desired_peers(self.endpoints, self.m.host_id)
        self.seen = overlay_names(self.host_netns)
        self.overlays = {}
        for net_id, path in local_overlays(self.host_netns, self.eid).items():
            try:
                added, removed = sync_peers(path, want.get(net_id, set()))
            except Exception as e:
                # (a namespace still being built: its name exists before its vxlan0) next tick
                log(f"could not sync peers in {os.path.basename(path)}: {e}")
                self.seen.discard(os.path.basename(path))
                continue
            self.overlays[net_id] = path
            for p in added:
                log(f"peer {p.ip} ({p.mac}) at {p.vtep} added in {os.path.basename(path)}")
            for p in removed:
                log(f"peer {p.ip} ({p.mac}) at {p.vtep} removed from {os.path.basename(path)}")

    def apply(self, batch) -> None:
        from nsbridge.kernel.overlay import add_peer, remove_peer

        for ev in batch:
            if ev.type == "DELETE":
                ep = self.endpoints.pop(ev.kv.key, None)
            else:
                ep = self._put(ev.kv.key, ev.kv.value)
            if ep is None or ep.host == self.m.host_id:
                continue
            path = self.overlays.get(ep.network_id)
            if path is None:
                continue  # no local container on that network: nothing to program
            p = peer_of(ep)
            try:
                if ev.type == "DELETE":
                    last = not any(o.network_id == ep.network_id and o.vtep == ep.vtep and o.host != self.m.host_id
                                   for o in self.endpoints.values())
                    remove_peer(path, p, last_on_host=last)
                    log(f"peer {p.ip} ({p.mac}) at {p.vtep} removed from {os.path.basename(path)}")
                else:
                    add_peer(path, p)
                    log(f"peer {p.ip} ({p.mac}) at {p.vtep} added in {os.path.basename(path)}")
            except Exception as e:
                log(f"could not program peer {p.ip} at {p.vtep}: {e}")

    # -- loop -----------------------------------------------------------------------
    def run(self) -> None:
        every = max(0.5, self.m.ttl / 3)
        next_keepalive = 0.0
        rev: int | None = None
        while not self.stopping:
            now = time.monotonic()
            if now >= next_keepalive:
                self.keepalive()
                next_keepalive = now + every
            if rev is None:
                rev = self.snapshot()
                if rev is not None:
                    self.start_reader(rev + 1)
            if overlay_names(self.host_netns) != self.seen:
                self.sync_all()
            try:
                item = self.events.get(timeout=min(TICK, max(0.05, next_keepalive - time.monotonic())))
            except queue.Empty:
                continue
            if item is RESYNC:
                rev = None  # the old reader has ended; snapshot and a new reader next turn
            elif isinstance(item, ClusterUnavailable):
                self._store_state(False, str(item))
            else:
                self._store_state(True, "")
                self.apply(item)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nsbridge.cluster.watcher")
    ap.add_argument("--db", required=True)
    ap.add_argument("--host-netns")
    ap.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    from nsbridge.engine.host import refuse_machine
    from nsbridge.errors import PermissionDenied
    from nsbridge.state.store import Store

    try:
        refuse_machine(os.path.dirname(a.db), a.host_netns)
    except PermissionDenied as e:
        log(str(e))
        return 1

    st = Store(a.db)
    m = member.membership(st, a.host_netns)
    if m is None:
        log("this host has not joined a cluster store: nothing to watch")
        return 1
    from nsbridge.engine.owner import engine_id

    w = Watcher(st, m, a.host_netns, engine_id(a.host_netns, os.path.dirname(a.db)))
    signal.signal(signal.SIGTERM, lambda *_: setattr(w, "stopping", True))
    log(f"watching {m.store} as host {m.name} ({m.host_id}, advertise {m.advertise}, ttl {m.ttl} s)")
    if a.ready_fd is not None:
        os.write(a.ready_fd, b"1")
        os.close(a.ready_fd)
    try:
        w.run()
    except BaseException as e:
        log(f"failed: {type(e).__name__}: {e}")
        return 1
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
