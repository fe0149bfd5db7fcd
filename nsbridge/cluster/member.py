"""This host's membership of a cluster store: join, leave, and the keys it holds.

What a host knows about its membership is in its own state store's meta table
(so it survives a reboot and every command sees it):

    cluster.store      etcd://HOST:PORT
    cluster.advertise  the underlay address other hosts send VXLAN packets to
    cluster.host_id    this host's id in the cluster (hosts/ID in etcd)
    cluster.ttl        seconds a silent host's keys live on in etcd
    cluster.lease      the etcd lease its keys hang on (renewed by the watcher)
    cluster.watcher    the watcher process: {"pid", "start", "log"}
    cluster.announce:KEY  every key this host put in etcd under its lease, with
                       its value: what the watcher puts back after the lease was
                       lost (the host was cut off longer than the TTL)

No pyroute2 here: `system info` and the watcher import this.
"""
from __future__ import annotations

import json
import os
import socket

from nsbridge.cluster import layout
from nsbridge.cluster.etcd import ClusterError, Etcd
from nsbridge.errors import Conflict, InvalidArgument
from nsbridge.record import record

STORE, ADVERTISE, HOST_ID, TTL, LEASE, WATCHER = (
    "cluster.store", "cluster.advertise", "cluster.host_id", "cluster.ttl", "cluster.lease", "cluster.watcher")
ANNOUNCE = "cluster.announce:"
DEFAULT_TTL = 20  # seconds, Docker's classic --cluster-store-opt discovery.ttl default
MIN_TTL = 2


@record
class Membership:
    store: str
    advertise: str
    host_id: str
    ttl: int
    lease: int
    name: str = ""

    def client(self, timeout: float | None = None) -> Etcd:
        return Etcd(self.store, timeout) if timeout else Etcd(self.store)

    def host_record(self) -> layout.ClusterHost:
        return layout.ClusterHost(id=self.host_id, name=self.name, advertise=self.advertise)


def host_name(netns: str | None) -> str:
    """How other hosts see this one: the sandbox host's name, else the hostname."""
    return netns or socket.gethostname()


def membership(st, netns: str | None = None) -> Membership | None:
    """This host's membership, or None when it has not joined."""
    meta = st.meta_items("cluster.")
    if STORE not in meta:
        return None
    return Membership(store=meta[STORE], advertise=meta.get(ADVERTISE, ""), host_id=meta.get(HOST_ID, ""),
                      ttl=int(meta.get(TTL, DEFAULT_TTL)), lease=int(meta.get(LEASE, 0) or 0),
                      name=host_name(netns))


def check_advertise(addr: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        raise InvalidArgument(f"invalid advertise address {addr!r}: expected this host's IPv4 address on the underlay") from None


def join(st, url: str, advertise: str, ttl: int, netns: str | None, host_addrs: list[str]) -> Membership:
    """Record the membership after registering this host in etcd under a new
    lease. HOST_ADDRS: the host's IPv4 addresses (the advertise address must be
    one). Joining again with the same store and address is a no-op."""
    from nsbridge.cluster.etcd import parse_url
    from nsbridge.model import new_id, now_iso

    try:
        h, p = parse_url(url)
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
    url = f"etcd://{h}:{p}"
    advertise = check_advertise(advertise)
    if advertise not in host_addrs:
        raise InvalidArgument(f"advertise address {advertise} is not an address of this host "
                              f"(it has: {', '.join(host_addrs) or 'none'})")
    if not MIN_TTL <= ttl <= 3600:
        raise InvalidArgument(f"invalid --ttl {ttl}: between {MIN_TTL} and 3600 seconds")
    have = membership(st, netns)
    if have is not None:
        if (have.store, have.advertise) == (url, advertise):
            return have
        raise Conflict(f"this host has already joined the cluster store at {have.store} as {have.advertise}: "
                       f"run `nsbridge system leave` first")
    m = Membership(store=url, advertise=advertise, host_id=new_id()[:24], ttl=ttl, lease=0, name=host_name(netns))
    with m.client() as etcd:
        m.lease = etcd.grant(ttl)
        rec = layout.ClusterHost(id=m.host_id, name=m.name, advertise=advertise, joined=now_iso())
        kvs, _rev = etcd.get_prefix(layout.HOSTS)
        for kv in kvs:
            try:
                other = layout.ClusterHost.from_json(kv.value)
            except (ValueError, TypeError):
                continue
            if other.advertise != advertise:
                continue
            if other.name != m.name:
                etcd.revoke(m.lease)
                raise Conflict(f"advertise address {advertise} is already used by host {other.name} in the cluster store")
            # this host's own earlier membership, forgotten here (leave -f, a wiped state root):
            # its lease goes, and with it every key it still held
            etcd.revoke(kv.lease) if kv.lease else etcd.delete(kv.key)
        etcd.put(layout.host_key(m.host_id), rec.to_json(), lease=m.lease)
    with st.tx():
        for k, v in ((STORE, url), (ADVERTISE, advertise), (HOST_ID, m.host_id), (TTL, str(ttl)),
                     (LEASE, str(m.lease))):
            st.set_meta(k, v)
        st.set_meta(ANNOUNCE + layout.host_key(m.host_id), rec.to_json())
    return m


def local_endpoints(st) -> list[layout.ClusterEndpoint]:
    """The overlay endpoints this host announced (its own containers')."""
    return [layout.ClusterEndpoint.from_json(v) for k, v in st.meta_items(ANNOUNCE + layout.ENDPOINTS).items()]


def forget(st) -> None:
    """Drop every trace of the membership from the local state."""
    with st.tx():
        for k in st.meta_items("cluster."):
            if k != WATCHER:
                st.delete_meta(k)


def check_can_leave(st) -> "Membership":
    """Leaving is refused while this host has containers on overlay networks,
    as `network rm` is refused while a network has endpoints."""
    m = membership(st)
    if m is None:
        raise InvalidArgument("this host has not joined a cluster store")
    eps = local_endpoints(st)
    if eps:
        names = ", ".join(sorted({e.name for e in eps}))
        raise Conflict(f"this host has {len(eps)} endpoint(s) on overlay networks (containers: {names}): "
                       f"remove them before leaving the cluster store")
    return m


def leave(st, force: bool = False) -> Membership:
    """Revoke this host's lease (etcd deletes its host, endpoint and address
    keys at once) and forget the membership. FORCE: forget it locally even
    when the store cannot be reached (the keys then expire with the lease)."""
    from nsbridge.cluster.etcd import ClusterUnavailable

    m = check_can_leave(st)
    try:
        with m.client() as etcd:
            etcd.revoke(m.lease)
            etcd.delete(layout.host_key(m.host_id))
    except ClusterUnavailable:
        if not force:
            raise
    forget(st)
    return m


def hosts(etcd: Etcd) -> list[layout.ClusterHost]:
    kvs, _rev = etcd.get_prefix(layout.HOSTS)
    out = []
    for kv in kvs:
        try:
            out.append(layout.ClusterHost.from_json(kv.value))
        except (ValueError, TypeError):
            continue  # not ours to read: skip it
    return sorted(out, key=lambda h: (h.name, h.id))


# -- keys under the lease ---------------------------------------------------------------
def announce(st, etcd: Etcd, m: Membership, key: str, value: str, create: bool = False) -> bool:
    """Put KEY under this host's lease and remember it for re-announcing; with
    CREATE only if absent (returns False, recording nothing, when it exists)."""
    if create:
        if not etcd.create(key, value, lease=m.lease):
            return False
    else:
        etcd.put(key, value, lease=m.lease)
    st.set_meta(ANNOUNCE + key, value)
    return True


def withdraw(st, etcd: Etcd, key: str) -> None:
    """Delete KEY (only while it still holds what we announced) and forget it."""
    value = st.get_meta(ANNOUNCE + key)
    if value is not None:
        etcd.delete_if(key, value)
    st.delete_meta(ANNOUNCE + key)


def reannounce(st, etcd: Etcd, m: Membership) -> tuple[int, list[str]]:
    """After the lease was lost: a new lease, every announced key put back under
    it (created if absent: an address another host took meanwhile stays theirs).
    Returns the new lease and one line per key that could not be restored."""
    lease = etcd.grant(m.ttl)
    conflicts = []
    for k, v in st.meta_items(ANNOUNCE).items():
        key = k[len(ANNOUNCE):]
        if key == layout.host_key(m.host_id):
            etcd.put(key, v, lease=lease)
            continue
        if not etcd.create(key, v, lease=lease):
            cur = etcd.get(key)
            if cur is not None and cur.value != v:
                conflicts.append(f"{key} was taken by another host while this one was away")
            elif cur is not None:
                etcd.put(key, v, lease=lease)
    with st.tx():
        st.set_meta(LEASE, str(lease))
    m.lease = lease
    return lease, conflicts


def watcher_record(st) -> dict | None:
    v = st.get_meta(WATCHER)
    try:
        return json.loads(v) if v else None
    except ValueError:
        return None


def set_watcher_record(st, pid: int, start: int, log: str) -> None:
    with st.tx():
        st.set_meta(WATCHER, json.dumps({"pid": pid, "start": start, "log": log}))


def clear_watcher_record(st) -> None:
    with st.tx():
        st.delete_meta(WATCHER)


def watcher_log(root: str) -> str:
    return os.path.join(root, "cluster-watcher.log")


__all__ = ["ClusterError", "Membership", "join", "leave", "membership"]
