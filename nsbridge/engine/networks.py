"""Network operations: create, remove, prune, and restore after a reboot."""
from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from nsbridge.engine import validate
from nsbridge.engine.plan import Plan
from nsbridge.errors import Conflict, Forbidden, NotFound, NsbridgeError, each
from nsbridge.model import OPT_BRIDGE_NAME, PREDEFINED, IpamConfig, Network, new_id, now_iso

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine, Kernel

log = logging.getLogger("nsbridge")

#: Docker's daemon, asked for a swarm-scoped network on a host that is in no swarm (nsbridge never is)
NOT_IN_SWARM = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)


class NetworkOps:
    def network_create(
        self: "Engine",
        name: str,
        driver: str = "bridge",
        subnet: str | None = None,
        gateway: str | None = None,
        ip_range: str | None = None,
        aux_addresses: dict[str, str] | None = None,
        internal: bool = False,
        attachable: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        # 1. validate everything before touching anything
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver == "overlay":  # Docker's answer on a host that is not in a swarm
            raise Forbidden(NOT_IN_SWARM)
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        validate.network_name(name)
        opts = validate.network_options(dict(options or {}))
        req = validate.ipam_request(subnet, gateway, ip_range, aux_addresses)
        with self._session() as k:
            # 2. under the lock: conflicts with what exists
            nets = self.store.networks()
            if any(n.name == name for n in nets):  # by name only: a hex name may also be an ID prefix
                raise Conflict(f"network with name {name} already exists")
            used = [ipaddress.IPv4Network(n.ipam.subnet) for n in nets if n.ipam]
            if req.subnet is not None:
                if any(req.subnet.overlaps(u) for u in used):
                    raise Conflict("Pool overlaps with other one on this address space")
                sub = req.subnet
            else:
                from nsbridge.ipam.pools import pick_pool

                sub = pick_pool(used + self._host_routes(k))
            net_id = new_id()
            bridge = opts.get(OPT_BRIDGE_NAME) or f"br-{net_id[:12]}"
            if bridge in {n.bridge for n in nets} or k.link.index(bridge) is not None:
                raise Conflict(f"bridge name {bridge} is already in use by another interface")
            from nsbridge.ipam import allocator

            gw = req.gateway or allocator.default_gateway(sub, req.ip_range)
            allocator.reserve_aux(str(sub), gw, req.aux_addresses)
            net = Network(
                id=net_id,
                name=name,
                driver="bridge",
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
            # 3. plan and apply with undo; 4. record in one transaction
            with Plan("network create") as plan:
                from nsbridge.drivers import bridge as drv

                k.fw.ensure_base()
                drv.setup_network(plan, k.link, k.fw, net)
                resolver = self._start_resolver(plan, net) if net.has_dns else None
                plan.commit("network.record", lambda: self._record_network(net, resolver))
            return net

    def _record_network(self: "Engine", net: Network, resolver) -> None:
        with self.store.tx():
            self.store.put_network(net)
            if resolver is not None:
                self.store.put_resolver(net.id, resolver.pid, resolver.pid_start, resolver.address, resolver.log)

    def _restore_network(self: "Engine", k: "Kernel", net: Network) -> None:
        plan = Plan("network restore")
        from nsbridge.drivers import bridge as drv

        drv.setup_network(plan, k.link, k.fw, net)

    def network_rm(self: "Engine", refs: list[str]) -> list[str]:
        """Remove several networks; report every failure, remove the rest."""
        with self._session() as k:
            return each(refs, lambda ref: self._network_rm_one(k, self.network(ref)))

    def _network_rm_one(self: "Engine", k: "Kernel", net: Network) -> None:
        from nsbridge.drivers import bridge as drv

        if net.predefined:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        eps = self.store.endpoints_on(net.id)
        if any(e.ip for e in eps):
            raise Conflict(
                f"error while removing network: network {net.name} id {net.id} has active endpoints"
            )
        from nsbridge.engine.plan import checkpoint
        from nsbridge.engine.signals import held

        with held():  # a teardown is finished, not interrupted
            self._stop_resolver(net.id)
            checkpoint("network.resolver-stop")
            errors = drv.teardown_network(k.link, k.fw, net)
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
                if net.predefined or net.name in PREDEFINED:
                    continue
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
