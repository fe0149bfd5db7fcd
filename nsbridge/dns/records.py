"""What the resolver of one network answers, decided from the state store.

This is the resolver's read-only view of the store schema (nsbridge/state/store.py):
the only SQL outside the store, and only SELECTs, over
  meta(key='generation', value), networks(id, name, data JSON),
  containers(id, name, data JSON: only its "dns" list, and "netns" when binding in it),
  endpoints(container_id, network_id, position, ip, endpoint_id, aliases JSON).
An endpoint is live when its ip is not NULL; containers with no live endpoint are
not answered. The whole view is loaded at once per store generation (three SELECTs),
so a query costs one SELECT of the generation plus dict lookups.

Rules (Docker's embedded DNS, scoped per querier):
- the querier is a container, known by the socket its query came in on (its own
  127.0.0.11, embedded.py); one with no live endpoint on a user network is refused,
  and so is everyone once this resolver's network is gone;
- a container's 127.0.0.11 is served by the resolver of its first user network (by
  attach order): `owned()` says which containers that is here;
- names: container names, per-network aliases, 12-character IDs, NAME.NETWORK,
  and the querier's own `network connect --link NAME:ALIAS` aliases on that network,
  case-insensitive, only on networks the querier is on (in attach order; the first
  network where the name exists wins, as Docker does) and answering the target's
  address on that network;
- host.docker.internal is the gateway of the querier's first network; PTR of container addresses is
  NAME.NETWORK; types other than A (or PTR) for our names get an empty NOERROR;
  anything else is forwarded upstream by the server: to the querier's own `--dns`
  servers when it has some (Docker's embedded DNS does the same), else to the host's.

Must not import dnslib, sockets or pyroute2: pure lookups, testable without a server.
"""
from __future__ import annotations

import json
import sqlite3

from nsbridge.model import network_from_dict
from nsbridge.record import field, record

A, PTR, AAAA = 1, 12, 28
TTL = 600  # Docker's TTL for its embedded names

LOCAL, FORWARD, REFUSED = "local", "forward", "refused"
HOST_GATEWAY = "host.docker.internal"
_REV = ".in-addr.arpa"

SQL_GENERATION = "SELECT value FROM meta WHERE key = 'generation'"
SQL_NETWORKS = "SELECT data FROM networks"
SQL_ENDPOINTS = (
    "SELECT e.network_id, e.container_id, e.ip, e.aliases, c.name, json_extract(c.data, '$.dns'),"
    " json_extract(c.data, '$.net_links'), e.endpoint_id"
    " FROM endpoints e JOIN containers c ON c.id = e.container_id"
    " WHERE e.ip IS NOT NULL ORDER BY e.position, e.container_id"
)


@record(frozen=True)
class Answer:
    """LOCAL: `records` (addresses for A, names for PTR; empty means NOERROR, no data)
    of type `rtype`; FORWARD: ask upstream; REFUSED: not our client."""

    action: str
    rtype: int = 0
    records: tuple[str, ...] = ()
    ttl: int = TTL

    def rotated(self, step: int) -> "Answer":
        n = len(self.records)
        if n < 2 or step % n == 0:
            return self
        k = step % n
        return Answer(self.action, self.rtype, self.records[k:] + self.records[:k], self.ttl)


FORWARDED = Answer(FORWARD)
REFUSE = Answer(REFUSED)
EMPTY = Answer(LOCAL)

#: a querier's view: the network ids whose names it sees, in attach order, then
#: LINKED + its container id when it has `network connect --link` names of its own
View = tuple[str, ...]
LINKED = "@"


def ip_int(ip: str) -> int | None:
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    try:
        b = [int(p) for p in parts]
    except ValueError:
        return None
    if any(x < 0 or x > 255 for x in b):
        return None
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def _ip_key(ip: str) -> int:
    return ip_int(ip) or 0


@record
class _Net:
    id: str
    name: str
    lname: str
    gateway: str
    dns: bool


@record
class Snapshot:
    """The store's answers at one generation."""

    nets: dict[str, _Net] = field(default_factory=dict)
    #: network id -> lower-case name, alias or 12-char id -> addresses on that network
    names: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    #: network id -> address -> "NAME.NETWORK"
    ptr: dict[str, dict[str, str]] = field(default_factory=dict)
    #: container id -> ids of its resolver networks, in attach order
    nets_of: dict[str, list[str]] = field(default_factory=dict)
    #: container id -> its endpoint id on its first resolver network
    first: dict[str, str] = field(default_factory=dict)
    #: container id -> its own upstream servers (`run --dns`), when it has some
    dns_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: (container id, network id) -> its `network connect --link` aliases there: alias -> name
    links: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def load(conn: sqlite3.Connection) -> Snapshot:
    snap = Snapshot()
    # fetchall everywhere: an unfinished statement would hold its read snapshot open.
    for (data,) in conn.execute(SQL_NETWORKS).fetchall():
        n = network_from_dict(json.loads(data))
        if n.ipam is None:
            continue
        if ip_int(n.ipam.subnet.partition("/")[0]) is None:
            continue  # not IPv4: this resolver serves IPv4 only
        snap.nets[n.id] = _Net(n.id, n.name, n.name.lower(), n.ipam.gateway, n.has_dns)
    names: dict[str, dict[str, list[str]]] = {}
    for nid, cid, ip, aliases, cname, dns, links, eid in conn.execute(SQL_ENDPOINTS).fetchall():
        net_ = snap.nets.get(nid)
        if net_ is None or not net_.dns:
            continue  # the default bridge has no names (Docker's legacy links only)
        if links and links != "{}":
            for link in json.loads(links).get(nid, ()):
                target, _, alias = link.partition(":")
                snap.links.setdefault((cid, nid), {})[alias.lower()] = target.lower()
        if dns and dns != "[]" and cid not in snap.dns_of:
            snap.dns_of[cid] = tuple(x for x in json.loads(dns) if isinstance(x, str))
        nets = snap.nets_of.setdefault(cid, [])
        if not nets:
            snap.first[cid] = eid or ""
        nets.append(nid)
        snap.ptr.setdefault(nid, {})[ip] = f"{cname}.{net_.name}"
        keys = [cname.lower(), cid[:12]]
        if aliases and aliases != "[]":
            keys += [a.lower() for a in json.loads(aliases) if isinstance(a, str)]
        table = names.setdefault(nid, {})
        for k in keys:
            ips = table.setdefault(k, [])
            if ip not in ips:
                ips.append(ip)
    # A fixed order per generation, so round robin rotates from a stable start.
    snap.names = {nid: {k: tuple(sorted(v, key=_ip_key)) for k, v in t.items()} for nid, t in names.items()}
    return snap


def reverse_ip(name: str) -> str | None:
    """'3.0.18.172.in-addr.arpa' -> '172.18.0.3' (name lower-case, no trailing dot)."""
    parts = name[: -len(_REV)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return None
    return ".".join(reversed([str(int(p)) for p in parts]))


class Records:
    """Answers of the resolver serving `network_id`, over a store connection."""

    def __init__(self, conn: sqlite3.Connection, network_id: str) -> None:
        self.conn = conn
        self.network_id = network_id
        self.generation: str | None = None
        self.loaded = False
        self.snap = Snapshot()
        self._rr: dict[tuple, int] = {}

    def refresh(self) -> bool:
        """One SELECT; reloads the view when the store changed. True when it did."""
        rows = self.conn.execute(SQL_GENERATION).fetchall()
        gen = rows[0][0] if rows else None
        if gen == self.generation and self.loaded:
            return False
        # The generation is read before the load: a write racing the load bumps it
        # again, so the next query reloads rather than keeping a stale view.
        self.snap = load(self.conn)
        self.generation = gen
        self.loaded = True
        self._rr.clear()
        return True

    def view(self, cid: str) -> View | None:
        """The networks whose names container CID sees; None: refuse it."""
        nets = self.snap.nets_of.get(cid)
        if not nets or self.network_id not in self.snap.nets:
            return None
        view = tuple(nets)
        if any((cid, n) in self.snap.links for n in view):
            view += (LINKED + cid,)  # its answers are its own: a view apart
        return view

    def upstreams(self, cid: str) -> tuple[str, ...]:
        """The querier's own `--dns` servers; () means the host's."""
        return self.snap.dns_of.get(cid, ())

    def owned(self) -> dict[str, str]:
        """The containers whose 127.0.0.11 this resolver serves: container id -> its
        endpoint ID here (which changes at each start)."""
        me = self.network_id
        return {cid: self.snap.first[cid] for cid, nets in self.snap.nets_of.items() if nets[0] == me}

    def netns_of(self, cids: list[str]) -> dict[str, str]:
        """Container id -> its network namespace's name (read when binding in it only:
        one more json_extract per row would cost every reload)."""
        out: dict[str, str] = {}
        for i in range(0, len(cids), 500):
            part = cids[i : i + 500]
            rows = self.conn.execute(
                f"SELECT id, json_extract(data, '$.netns') FROM containers WHERE id IN ({','.join('?' * len(part))})",
                part).fetchall()
            out.update((cid, netns or "") for cid, netns in rows)
        return out

    def lookup(self, view: View, qname: str, qtype: int) -> Answer:
        """The answer in a fixed order (rotation is the caller's: see Answer.rotated)."""
        snap = self.snap
        name = qname.rstrip(".").lower()
        querier = view[-1][len(LINKED):] if view[-1].startswith(LINKED) else None
        nets = view[:-1] if querier else view
        if name == HOST_GATEWAY:
            return Answer(LOCAL, A, (snap.nets[nets[0]].gateway,)) if qtype == A else EMPTY
        if name.endswith(_REV):
            ip = reverse_ip(name)
            if ip is not None:
                for nid in nets:
                    target = snap.ptr.get(nid, {}).get(ip)
                    if target is not None:
                        return Answer(LOCAL, PTR, (target,)) if qtype == PTR else EMPTY
            return FORWARDED
        for nid in nets:
            target = snap.links.get((querier, nid), {}).get(name, name) if querier else name
            ips = snap.names.get(nid, {}).get(target)
            if ips:
                return Answer(LOCAL, A, ips) if qtype == A else EMPTY
        for nid in nets:
            suffix = "." + snap.nets[nid].lname
            if name.endswith(suffix):
                ips = snap.names.get(nid, {}).get(name[: -len(suffix)])
                if ips:
                    return Answer(LOCAL, A, ips) if qtype == A else EMPTY
        return FORWARDED

    def resolve(self, cid: str, qname: str, qtype: int) -> Answer:
        """refresh + view + lookup, rotating multi-address answers between calls."""
        self.refresh()
        view = self.view(cid)
        if view is None:
            return REFUSE
        ans = self.lookup(view, qname, qtype)
        if len(ans.records) > 1:
            key = (view, qname.rstrip(".").lower(), qtype)
            step = self._rr.get(key, 0)
            self._rr[key] = step + 1
            ans = ans.rotated(step)
        return ans
