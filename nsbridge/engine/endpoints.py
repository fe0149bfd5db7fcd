"""Attaching a running container to its networks, and releasing it.

Bringing a container up: its netns (unless it shares one), an address per
network (its --ip, else its previous one if free, else the lowest free),
veth pairs made in place, its /etc files, its port rules. Releasing: the
veths deleted and the netns removed, addresses freed, rules gone.
"""
from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from nsbridge.dns import embedded
from nsbridge.engine import files
from nsbridge.engine import owner as ownership  # (`owner` below is the endpoint whose resolver answers)
from nsbridge.engine.embedded_dns import EmbeddedDnsOps
from nsbridge.engine.plan import Plan
from nsbridge.ipam import allocator
from nsbridge.model import Container, Endpoint, Network, mac_for

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel


def new_endpoint_id() -> str:
    return os.urandom(32).hex()


class EndpointOps(EmbeddedDnsOps):
    def _taken_ips(self: "Engine", net: Network, live: set[str] | None = None) -> set[str]:
        """Addresses IPAM must not hand out: live endpoints' (LIVE if read already) and
        --aux-address ones."""
        assert net.ipam is not None
        return (self.store.taken_ips(net.id) if live is None else live) | set(net.ipam.aux_addresses.values())

    def _assign_ip(self: "Engine", net: Network, ep: Endpoint, fresh: set[str], container: str) -> str:
        """An address for a new endpoint of CONTAINER, if the bridge has room for it."""
        from nsbridge.drivers import bridge as drv

        assert net.ipam is not None
        live = self.store.taken_ips(net.id)
        drv.check_room(net, len(live), container)
        taken = self._taken_ips(net, live) | fresh
        if ep.ip_requested:
            return allocator.check_requested(net.ipam.subnet, net.ipam.gateway, ep.ip_requested, taken)
        rng = allocator.usable(net.ipam.subnet, net.ipam.ip_range)
        if ep.last_ip and ep.last_ip not in taken and ep.last_ip != net.ipam.gateway:
            import ipaddress

            if ipaddress.IPv4Address(ep.last_ip) in rng:
                return ep.last_ip
        return allocator.allocate(net.ipam.subnet, net.ipam.gateway, net.ipam.ip_range, taken, f"{net.name} ({net.id})")

    def _bring_up(self: "Engine", plan: Plan, k: "Kernel", c: Container, eps: list[Endpoint]) -> list[Endpoint]:
        """Create the container's netns and endpoints; returns the live endpoints."""
        from nsbridge.drivers import bridge as drv
        from nsbridge.kernel import netlink, ns

        if c.network_mode == "host" or c.network_mode.startswith("container:"):
            return []
        c.netns = self.host.ctr_netns_name(c.name)
        eid = self.host.engine_id
        ownership.refuse_taken(c.netns, eid)  # a leftover of ours, or someone else's: never reused
        nets = [self.store.network(ep.network_id) for ep in eps]
        bridged = [(ep, net) for ep, net in zip(eps, nets) if net.driver == "bridge"]
        self.lock.note(f"netns {c.netns}")
        with ns.returning():
            ctr, fd = plan.step(
                "container.netns",
                # loopback comes up with its mark, in the request that marks it
                lambda: netlink.open_in_new_netns(c.netns, ownership.container_mark(eid, c.id)),
                lambda: ns.remove_netns(c.netns),
            )
        live: list[Endpoint] = []
        try:
            fresh: set[str] = set()
            first_gw = True
            for ep, net in bridged:
                ip = self._assign_ip(net, ep, fresh, c.name)
                fresh.add(ip)
                ep.ip = ip
                ep.last_ip = ip
                ep.mac = c.endpoint_macs.get(net.id) or mac_for(ip)
                ep.endpoint_id = new_endpoint_id()
                ep.ifname = f"eth{len(live)}"
                ep.host_ifname = "veth" + ep.endpoint_id[:7]
                default_route = first_gw and not net.internal
                if default_route:
                    first_gw = False
                drv.join(plan, k.link, ctr, fd, net, ep, default_route,
                         ipv6_off_by_default=self.host.netns is not None, sysctls=c.endpoint_sysctls.get(net.id, ()))
                live.append(ep)
            owner = next((ep for ep, net in bridged if net.has_dns), None)
            if owner is not None:
                # 127.0.0.11:53 bound before the command starts: its first query waits there
                socks = plan.step("container.dns", lambda: self._dns_bind(fd), self._dns_discard)
                self._dns_pending = (owner, socks)
        finally:
            ctr.close()
            os.close(fd)
        return live

    def _attach_one(self: "Engine", plan: Plan, k: "Kernel", c: Container, ep: Endpoint, net: Network) -> None:
        """`network connect` of a running container: one more veth, eth<N>."""
        from nsbridge.drivers import bridge as drv
        from nsbridge.kernel import netlink, ns

        live = [e for e in self.store.endpoints_of(c.id) if e.ip]
        used = {e.ifname for e in live}
        ep.ip = self._assign_ip(net, ep, set(), c.name)
        ep.last_ip = ep.ip
        ep.mac = mac_for(ep.ip)
        ep.endpoint_id = new_endpoint_id()
        ep.ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        ep.host_ifname = "veth" + ep.endpoint_id[:7]
        path = ns.netns_path(c.netns)
        ctr, fd = netlink.open_in_netns(path)
        try:
            has_default = any(not self.store.network(e.network_id).internal for e in live)
            drv.join(plan, k.link, ctr, fd, net, ep, default_route=not has_default and not net.internal,
                     ipv6_off_by_default=self.host.netns is not None)
        finally:
            ctr.close()
            os.close(fd)

    def _detach_one(self: "Engine", k: "Kernel", c: Container, ep: Endpoint) -> None:
        from nsbridge.drivers import bridge as drv
        from nsbridge.kernel import netlink, ns

        ctr, fd = netlink.open_in_netns(ns.netns_path(c.netns))
        try:
            drv.leave(ctr, ep)
            # the default route went with it: take the next network's gateway
            rest = [e for e in self.store.endpoints_of(c.id) if e.ip and e.network_id != ep.network_id]
            for other in rest:
                net = self.store.network(other.network_id)
                if not net.internal and net.ipam is not None:
                    with contextlib.suppress(Exception):
                        ctr.set_default_route(net.ipam.gateway, other.ifname)
                    break
        finally:
            ctr.close()
            os.close(fd)

    def _release_kernel(self: "Engine", k: "Kernel", c: Container) -> None:
        """Kill what still runs in the netns, delete its veths and remove it
        (kernel/ns.py flush_devices says why not leave them to the kernel), drop
        port rules. Already gone is success."""
        import signal

        from nsbridge.kernel import ns

        from nsbridge.engine.plan import checkpoint

        if c.netns:
            path = ns.netns_path(c.netns)
            for pid in ns.pids_in_netns(path):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.lock.note(f"netns {c.netns}")
            ns.remove_netns(c.netns, devices_first=True)
            checkpoint("container.netns-remove")
        self._remove_port_rules(k, c)
        checkpoint("container.ports-remove")

    # -- files ----------------------------------------------------------------------
    def _write_files(self: "Engine", c: Container, live: list[Endpoint]) -> None:
        """The container's hosts, resolv.conf and hostname as Docker writes them
        (nsbridge/engine/files.py says how), for its live endpoints in attach order."""
        d = self.host.container_dir(c.id)
        os.makedirs(d, mode=0o700, exist_ok=True)
        live = sorted((e for e in live if e.ip), key=lambda e: e.position)
        nets = {e.network_id: self.store.network(e.network_id) for e in live}
        # the default bridge matters only for host-gateway and --link (decoding every network costs)
        default = (
            next((n for n in self.store.networks() if n.is_default_bridge), None)
            if c.links or any(h.endswith(":host-gateway") for h in c.extra_hosts)
            else None
        )
        extra: list[files.HostsEntry] = []
        for h in c.extra_hosts:
            name, _, ip = h.partition(":")
            if ip == "host-gateway":
                # Docker's HostGatewayIP: the default bridge's address, on any network.
                if default is None or default.ipam is None:
                    continue
                ip = default.ipam.gateway
            extra.append(files.HostsEntry(ip, [name]))
        for link in c.links:
            name, _, alias = link.partition(":")
            other = self.store.find_container(name)
            if other is None:
                continue
            oep = next((e for e in self.store.endpoints_of(other.id)
                        if e.ip and default is not None and e.network_id == default.id), None)
            if oep is not None and oep.ip:
                extra.append(files.HostsEntry(oep.ip, files.link_names(alias or name, other.hostname, other.name)))
        dns_net = next((nets[e.network_id] for e in live if nets[e.network_id].has_dns), None)
        primary = nets[live[0].network_id] if live else None
        if primary is not None and primary.ipam is not None and dns_net is None and not any(
            "host.docker.internal" in e.names for e in extra
        ):
            # Docker on Linux lacks it without --add-host; the tutorials expect it. On
            # user networks the resolver answers it (the querier's first network's gateway).
            extra.append(files.HostsEntry(primary.ipam.gateway, ["host.docker.internal"]))
        own = [files.HostsEntry(e.ip or "", files.own_names(c.hostname)) for e in live]
        if c.network_mode == "host":
            with open("/etc/hosts") as f:
                hosts = f.read()
        else:
            hosts = files.hosts_file(extra, own)
        try:
            with open(self.host.upstream_resolv) as f:
                upstream = files.parse_resolv_conf(f.read())
        except OSError:
            upstream = files.Upstream()
        nameserver = embedded.ADDRESS if dns_net is not None else None
        resolv = files.resolv_conf(nameserver, upstream, c.dns, c.dns_search, c.dns_options)
        for fname, text in (("hosts", hosts), ("resolv.conf", resolv), ("hostname", c.hostname + "\n")):
            # Rewritten in place (same inode): running containers see the bind-mounted file change.
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)

    def _remove_port_rules(self: "Engine", k: "Kernel", c: Container) -> None:
        """Published ports' rules go with the endpoints (engine/ports.py)."""
        self._ports_teardown(k, c)
