"""Network operations: create, remove, prune, and restore after a reboot."""
from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from nsbridge import drivers
from nsbridge.engine import validate
from nsbridge.engine.plan import Plan
from nsbridge.errors import Conflict, Forbidden, NsbridgeError, each
from nsbridge.model import OPT_BRIDGE_NAME, PREDEFINED, IpamConfig, Network, new_id, now_iso

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel

log = logging.getLogger("nsbridge")


class NetworkOps:
    def network_create(
        self: "Engine",
        name: str,
        driver: str = drivers.DEFAULT,
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        aux_addresses: dict[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        # 1. validate everything before touching anything (the driver: its -o options)
        drv = drivers.get(driver)
        opts = drv.validate(dict(options or {}), internal)
        validate.network_name(name)
        req = validate.ipam_request(subnet, gateway, ip_range, aux_addresses)
        with self._session() as k:
            # 2. under the lock: conflicts with what exists
            nets = self.store.networks()
            if any(n.name == name for n in nets):  # by name only: a hex name may also be an ID prefix
                raise Conflict(f"network with name {name} already exists")
            if drv.caps.ipam == "driver":  # made where its driver's networks live (overlay: the cluster store)
                return self._claim_network(k, drv, name, req, internal, attachable, dict(labels or {}), opts, nets)
            used = [ipaddress.IPv4Network(n.ipam.subnet) for n in nets if n.ipam]
            if req.subnet is not None:
                if any(req.subnet.overlaps(u) for u in used):
                    raise Conflict("Pool overlaps with other one on this address space")
                sub = req.subnet
            else:
                from nsbridge.ipam.pools import pick_pool

                sub = pick_pool(used + self._host_routes(k))
            net_id = new_id()
            bridge = (opts.get(OPT_BRIDGE_NAME) or f"br-{net_id[:12]}") if drv.caps.bridge else ""
            from nsbridge.ipam import allocator

            gw = req.gateway or allocator.default_gateway(sub, req.ip_range)
            allocator.reserve_aux(str(sub), gw, req.aux_addresses)
            net = Network(
                id=net_id,
                name=name,
                driver=driver,
                created=now_iso(),
                ipam=IpamConfig(
                    subnet=str(sub),
                    gateway=gw,
                    ip_range=str(req.ip_range) if req.ip_range else None,
                    gateway_given=req.gateway is not None,
                    aux_addresses=dict(req.aux_addresses),
                ),
                internal=internal,
                attachable=attachable,
                options=opts,
                labels=dict(labels or {}),
                bridge=bridge,
            )
            drv.check(k, net, nets)  # what exists: a device name taken, a parent in use, a kernel feature
            # 3. plan and apply with undo; 4. record in one transaction
            with Plan("network create") as plan:
                k.fw.ensure_base()
                drv.create(plan, k, net)
                resolver = self._start_resolver(plan, net) if net.has_dns else None
                plan.commit("network.record", lambda: self._record_network(net, resolver))
            return net

    def _claim_network(self: "Engine", k: "Kernel", drv, name: str, req, internal: bool, attachable: bool,
                       labels: dict[str, str], opts: dict[str, str], nets: list[Network]) -> Network:
        """A network whose driver makes its record (its subnet, its addresses):
        claimed there, then this host's copy in the store."""
        avoid = [str(r) for r in self._host_routes(k)] + [n.ipam.subnet for n in nets if n.ipam and n.scope == "local"]
        with Plan("network create") as plan:
            net = drv.claim(k, plan, name, req, internal, attachable, labels, opts, avoid)
            drv.check(k, net, nets)
            drv.create(plan, k, net)
            resolver = self._start_resolver(plan, net) if net.has_dns else None
            plan.commit("network.record", lambda: self._record_network(net, resolver))
        return net

    def network(self: "Engine", ref: str) -> Network:
        """By name, ID or ID prefix: this host's networks, then those its drivers
        know beyond it (a cluster store's), of which this host records a copy
        when called in a session (a command about to use it)."""
        n = self.store.find_network(ref)
        if n is not None:
            return n
        env = self._driver_env()
        for drv in drivers.every():
            n = drv.find(env, ref) if drv.caps.scope != "local" else None
            if n is None:
                continue
            if self._depth and self.store.find_network(n.name) is None:
                assert self._k is not None
                self._record_network(n, None)
                self._ensure_resolvers(self._k)
            return self.store.find_network(n.name) or n
        from nsbridge.errors import NotFound

        raise NotFound(f"network {ref} not found")

    def _egress_for(self: "Engine", eps: list, cid: str) -> None:
        """A container none of whose networks reaches out (NAT) but one of whose
        networks' drivers names an egress network (overlay: docker_gwbridge, a
        local bridge, made at first need) gets one more endpoint there: its way
        out and its `-p`, as on Docker."""
        from nsbridge.model import Endpoint

        nets = [self.store.network(e.network_id) for e in eps]
        if any(n.nat and not n.internal for n in nets):
            return
        egress = next((d.egress for d in map(drivers.of, nets) if d.egress), None)
        if egress is None:
            return
        name, options = egress
        gw = self.store.find_network(name) or self.network_create(name, options=dict(options))
        eps.append(Endpoint(cid, gw.id, len(eps)))

    def _record_network(self: "Engine", net: Network, resolver) -> None:
        with self.store.tx():
            self.store.put_network(net)
            if resolver is not None:
                self.store.put_resolver(net.id, resolver.pid, resolver.pid_start, resolver.address, resolver.log)

    def _restore_network(self: "Engine", k: "Kernel", net: Network) -> None:
        drivers.of(net).restore(Plan("network restore"), k, net)

    def network_rm(self: "Engine", refs: list[str]) -> list[str]:
        """Remove several networks; report every failure, remove the rest."""
        with self._session() as k:
            return each(refs, lambda ref: self._network_rm_one(k, self.network(ref)))

    def _network_rm_one(self: "Engine", k: "Kernel", net: Network) -> None:
        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        eps = self.store.endpoints_on(net.id)
        if any(e.ip for e in eps):
            raise Conflict(
                f"error while removing network: network {net.name} id {net.id} has active endpoints"
            )
        from nsbridge.engine.plan import checkpoint
        from nsbridge.engine.signals import held

        drivers.of(net).withdraw(k.env, net)  # where it lives beyond this host (or refused there)
        with held():  # a teardown is finished, not interrupted
            self._stop_resolver(net.id)
            checkpoint("network.resolver-stop")
            errors = drivers.of(net).delete(k, net)
            checkpoint("network.teardown")
            with self.store.tx():
                for e in eps:  # attachments of stopped containers go with the network
                    self.store.delete_endpoint(e.container_id, e.network_id)
                self.store.delete_network(net.id)
        if errors:
            log.warning("network rm %s: %s", net.name, "; ".join(errors))

    def network_prune(self: "Engine") -> list[str]:
        removed = []
        with self._session() as k:
            for net in self.store.networks():
                if net.predefined or net.name in PREDEFINED or net.scope != "local":
                    continue  # (a cluster's network is removed by name: other hosts may be using it)
                if self.store.endpoints_on(net.id):
                    continue
                self._network_rm_one(k, net)
                removed.append(net.name)
        return removed

    # -- resolvers ----------------------------------------------------------------
    def _start_resolver(self: "Engine", plan: Plan, net: Network):
        """Start the network's resolver as a plan step; returns its ResolverInfo."""
        from nsbridge.dns import supervisor

        info = plan.step(
            "network.resolver",
            lambda: supervisor.start(self.host.db, net.id, self.host.upstream_resolv, self.host.dns_dir),
        )
        plan.undos.append(("network.resolver", lambda: supervisor.stop((info.pid, info.pid_start))))
        return info

    def _stop_resolver(self: "Engine", network_id: str) -> None:
        r = self.store.resolvers().get(network_id)
        if r is None:
            return
        from nsbridge.dns import supervisor

        supervisor.stop((r[0], r[1]))
        supervisor.forget(r[3])

    def _ensure_resolvers(self: "Engine", k: "Kernel") -> None:
        """Restart the resolver of any user bridge whose process is gone, keeping
        its last words (how it ended, its last log lines) for `system info`."""
        from nsbridge.dns import embedded, supervisor

        running = self.store.resolvers()
        rewrite: set[str] = set()
        for net in self.store.networks():
            if not net.has_dns or net.ipam is None:
                continue
            r = running.get(net.id)
            alive = r is not None and supervisor.is_alive(r[0], r[1])
            if alive and r[2] == embedded.ADDRESS:
                continue
            if alive:  # one from before 127.0.0.11 (it listens on the gateway): replaced
                supervisor.stop((r[0], r[1]))
                rewrite.add(net.id)
            elif r is not None:
                words = supervisor.keep_last_words(supervisor.ResolverInfo(*r))
                log.info("resolver of network %s (pid %d) had ended, %s: restarting it", net.name, r[0],
                            words["Ended"])
            try:
                info = supervisor.start(self.host.db, net.id, self.host.upstream_resolv, self.host.dns_dir)
            except NsbridgeError as e:
                log.warning("resolver for %s did not start: %s", net.name, e)
                continue
            with self.store.tx():
                self.store.put_resolver(net.id, info.pid, info.pid_start, info.address, info.log)
        for c in self.store.containers() if rewrite else []:
            live = [e for e in self.store.endpoints_of(c.id) if e.ip]
            if c.running and any(e.network_id in rewrite for e in live):
                self._write_files(c, live)  # resolv.conf: nameserver 127.0.0.11
