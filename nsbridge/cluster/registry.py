"""The cluster-wide state of overlay networks in etcd: what the overlay driver
asks for when it creates a network, attaches an endpoint or removes them.

Uniqueness comes from etcd alone, never from a lock or a read-then-write: a
network name, a VXLAN ID, a subnet and an address are each taken by creating
their key if it is absent (one etcd transaction), so two hosts doing the same
at the same moment cannot both win. The loser moves to the next candidate.
"""
from __future__ import annotations

from nsbridge.cluster import layout, member
from nsbridge.cluster.etcd import Etcd
from nsbridge.errors import Conflict, Forbidden, InvalidArgument, NotFound

MAX_TRIES = 256  # candidates tried before giving up on a VNI, a subnet or an address


class Registry:
    """ETCD: a client; ST: this host's state store (for its membership and the
    keys it announces); M: this host's membership."""

    def __init__(self, etcd: Etcd, st, m: member.Membership) -> None:
        self.etcd, self.st, self.m = etcd, st, m

    # -- networks ---------------------------------------------------------------
    def networks(self) -> list[layout.ClusterNetwork]:
        kvs, _ = self.etcd.get_prefix(layout.NETWORKS)
        return [layout.ClusterNetwork.from_json(kv.value) for kv in kvs]

    def network(self, ref: str) -> layout.ClusterNetwork | None:
        """By name, full id or unique id prefix, as local networks are found."""
        kv = self.etcd.get(layout.network_key(ref)) if "/" not in ref else None
        if kv is not None:
            return layout.ClusterNetwork.from_json(kv.value)
        found = [n for n in self.networks() if n.id == ref or (len(ref) >= 1 and n.id.startswith(ref))]
        exact = [n for n in found if n.id == ref]
        if exact or len(found) == 1:
            return (exact or found)[0]
        return None

    def create_network(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       ip_range: str | None = None, attachable: bool = False,
                       options: dict | None = None, labels: dict | None = None,
                       avoid: list[str] | None = None) -> layout.ClusterNetwork:
        """Claim a VXLAN ID, a subnet (SUBNET, or the lowest free /24 of 10.0.0.0/8
        overlapping nothing in AVOID), then the name; undo the claims if the
        name is taken. Raises Conflict with Docker's texts."""
        import ipaddress

        from nsbridge.model import new_id, now_iso

        net_id = new_id()
        if self.etcd.get(layout.network_key(name)) is not None:
            raise Conflict(f"network with name {name} already exists")
        claimed: list[str] = []
        try:
            vni = self._claim(layout.vni_key, layout.vni_candidates(self._taken_vnis()), net_id, claimed,
                              "no free VXLAN ID")
            taken = [n.subnet for n in self.networks()]
            if subnet:
                s = ipaddress.IPv4Network(subnet, strict=False)
                if any(s.overlaps(ipaddress.IPv4Network(t)) for t in taken):
                    raise Conflict("Pool overlaps with other one on this address space")
                cands, why = iter([str(s)]), "Pool overlaps with other one on this address space"
            else:
                cands = layout.subnet_candidates(taken + list(avoid or []))
                why = ("could not find an available, non-overlapping IPv4 address pool among the defaults "
                       "to assign to the network")
            sub = self._claim(layout.subnet_key, cands, net_id, claimed, why)
            net = ipaddress.IPv4Network(sub)
            gw = gateway or str(next(net.hosts()))
            if ipaddress.IPv4Address(gw) not in net:
                raise InvalidArgument(f"gateway {gw} is not in subnet {sub}")
            rec = layout.ClusterNetwork(id=net_id, name=name, subnet=sub, gateway=gw, vni=int(vni),
                                        created=now_iso(), attachable=attachable, ip_range=ip_range or "",
                                        options=dict(options or {}), labels=dict(labels or {}))
            if not self.etcd.create(layout.network_key(name), rec.to_json()):
                raise Conflict(f"network with name {name} already exists")
        except BaseException:
            for key in claimed:
                self.etcd.delete_if(key, net_id)
            raise
        return rec

    def _claim(self, key_fn, candidates, value: str, claimed: list[str], exhausted: str):
        for i, cand in enumerate(candidates):
            if i >= MAX_TRIES:
                break
            if self.etcd.create(key_fn(cand), value):
                claimed.append(key_fn(cand))
                return cand
        raise Conflict(exhausted)

    def _taken_vnis(self) -> list[int]:
        kvs, _ = self.etcd.get_prefix(layout.VXLAN)
        return [int(kv.key.rsplit("/", 1)[1]) for kv in kvs if kv.key.rsplit("/", 1)[1].isdigit()]

    def remove_network(self, ref: str) -> layout.ClusterNetwork:
        """Refuses while any host has an endpoint on it (Docker's text)."""
        n = self.network(ref)
        if n is None:
            raise NotFound(f"network {ref} not found")
        if self.endpoints(n.id):
            raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
        self.etcd.delete_if(layout.network_key(n.name), n.to_json())
        self.etcd.delete_if(layout.vni_key(n.vni), n.id)
        self.etcd.delete_if(layout.subnet_key(n.subnet), n.id)
        self.etcd.delete_prefix(layout.ipam_prefix(n.id))
        return n

    # -- addresses and endpoints ------------------------------------------------
    def allocate_ip(self, net: layout.ClusterNetwork, endpoint_id: str, requested: str | None = None) -> str:
        """An address of NET for ENDPOINT_ID, unique cluster-wide: the lowest
        free one (or REQUESTED), taken by creating its key under this host's lease."""
        from nsbridge.ipam.allocator import allocate, check_requested

        kvs, _ = self.etcd.get_prefix(layout.ipam_prefix(net.id))
        taken = {kv.key.rsplit("/", 1)[1] for kv in kvs}
        if requested:
            ip = check_requested(net.subnet, net.gateway, requested, taken)
            if not member.announce(self.st, self.etcd, self.m, layout.ip_key(net.id, ip), endpoint_id, create=True):
                raise Conflict("Address already in use")
            return ip
        for _ in range(MAX_TRIES):
            ip = allocate(net.subnet, net.gateway, net.ip_range or None, taken, net.name)
            if member.announce(self.st, self.etcd, self.m, layout.ip_key(net.id, ip), endpoint_id, create=True):
                return ip
            taken.add(ip)  # another host took it a moment ago: the next one
        raise Conflict(f"no available IPv4 addresses on this network's address pools: {net.name}")

    def release_ip(self, network_id: str, ip: str) -> None:
        member.withdraw(self.st, self.etcd, layout.ip_key(network_id, ip))

    def put_endpoint(self, ep: layout.ClusterEndpoint) -> None:
        member.announce(self.st, self.etcd, self.m, layout.endpoint_key(ep.network_id, ep.id), ep.to_json())

    def remove_endpoint(self, network_id: str, endpoint_id: str) -> None:
        member.withdraw(self.st, self.etcd, layout.endpoint_key(network_id, endpoint_id))

    def endpoints(self, network_id: str | None = None) -> list[layout.ClusterEndpoint]:
        prefix = layout.endpoints_prefix(network_id) if network_id else layout.ENDPOINTS
        kvs, _ = self.etcd.get_prefix(prefix)
        return [layout.ClusterEndpoint.from_json(kv.value) for kv in kvs]
