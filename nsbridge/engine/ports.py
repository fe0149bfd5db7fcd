"""Published ports: the engine's side (nsbridge/ports.py is the grammar).

- validate (before the lock): every -p/--expose parses; none with container: mode.
- prepare (under the lock, before any kernel step): exposed ports normalised,
  host ports picked (lowest free of the dynamic range) and checked against
  the ports running containers publish: Docker's "port is already allocated",
  nothing created. Host mode drops them with Docker's warning.
- setup (a step of `run`/`start`): one DNAT and one accept per binding (the
  masquerades are the network's) in ONE iptables-restore batch, toward the
  container's address on its first network that reaches outside (Docker's
  gateway endpoint); route_localnet on that bridge for 127.0.0.1. The bindings
  stay in the container (c.ports) across stop/start, so a restarted container
  gets the same host ports.
- teardown (stop, rm, exit, disconnect): that batch's rules deleted, in one batch.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from nsbridge import ports as grammar
from nsbridge.errors import Conflict, InvalidArgument, KernelError
from nsbridge.model import OPT_HOST_BINDING, Container, Endpoint, Network, PortBinding

if TYPE_CHECKING:
    from nsbridge.engine.containers import RunSpec
    from nsbridge.engine.core import Engine, Kernel
    from nsbridge.engine.plan import Plan
    from nsbridge.kernel.firewall import Rule

log = logging.getLogger("nsbridge")

HOST_MODE_WARNING = "Published ports are discarded when using host network mode"


def _dedupe(rules: list["Rule"]) -> list["Rule"]:
    """Two host ports onto one container port share their accept rule."""
    seen: set = set()
    out = []
    for r in rules:
        if r.key() not in seen:
            seen.add(r.key())
            out.append(r)
    return out


class PortOps:
    # -- before the lock ----------------------------------------------------------------
    def _ports_validate(self: "Engine", spec: "RunSpec") -> None:
        grammar.parse_all(spec.publish, spec.expose)
        if any(n.startswith("container:") for n in spec.networks):
            if spec.publish or spec.publish_all:
                raise InvalidArgument("conflicting options: port publishing and the container type network mode")
            if spec.expose:
                raise InvalidArgument("conflicting options: port exposing and the container type network mode")

    # -- under the lock, nothing made yet -------------------------------------------------
    def _ports_prepare(self: "Engine", spec: "RunSpec", c: Container) -> None:
        specs, _ = grammar.parse_all(spec.publish, [])
        # the image's EXPOSE (its stand-in's port), then --expose; normalised ("5000/tcp")
        _, c.exposed = grammar.parse_all([], [*self._image_exposed(c.image), *c.exposed])
        if c.publish_all:
            specs += grammar.publish_all_specs(specs, c.exposed)
        c.ports = []
        if c.network_mode == "host":
            if spec.publish:
                self.warnings.append(HOST_MODE_WARNING)
            return
        if not specs:
            return
        net = self._ports_network_for(spec)
        if net is None:  # none, or internal networks only: nothing reaches it from outside
            return
        default_ip = net.options.get(OPT_HOST_BINDING, "")
        dynamic = self._ports_dynamic_range()
        allocated, avoid = self._ports_held(c.id, grammar.spans(specs, dynamic))
        try:
            c.ports = grammar.allocate(grammar.docker_order(specs), default_ip, allocated, avoid, dynamic)
        except grammar.PortAllocated as e:
            # Docker names the endpoint it was programming; it is never made here
            from nsbridge.engine.endpoints import new_endpoint_id

            raise self._ports_conflict(c, new_endpoint_id(), str(e)) from None

    @staticmethod
    def _image_exposed(image: str) -> list[str]:
        if not image:
            return []
        from nsbridge import standins

        try:
            return standins.exposed_ports(image)
        except (OSError, ValueError, KeyError) as e:  # a broken catalog must not break `run`
            log.warning("exposed ports of image %s: %s", image, e)
            return []

    def _ports_network_for(self: "Engine", spec: "RunSpec") -> Network | None:
        names = spec.networks or ["bridge"]
        for ref in names:
            if ref in ("host", "none") or ref.startswith("container:"):
                return None
            net = self.network(ref)
            if net.driver == "bridge" and not net.internal:
                return net
        return None

    def _ports_held(self: "Engine", exclude: str, spans: list[tuple[str, int, int]],
                    host_sockets: bool = True) -> tuple[list[grammar.Held], list[grammar.Held]]:
        """(ports published by running containers, ports to avoid when picking:
        those kept by stopped containers and, with HOST_SOCKETS, the host's
        own), within SPANS only: read by index, not by decoding every container."""
        allocated: list[grammar.Held] = []
        avoid: list[grammar.Held] = []
        for proto, lo, hi in spans:
            for running, ip, port in self.store.held_ports(exclude, proto, lo, hi):
                (allocated if running else avoid).append(grammar.Held(proto, ip, port))
        for proto in grammar.PROTOS if host_sockets else ():
            try:
                with open(f"/proc/thread-self/net/{proto}") as f:  # the host netns: the thread is in it
                    avoid += grammar.listening(f.read(), proto)
            except OSError:
                pass
        return allocated, avoid

    @staticmethod
    def _ports_dynamic_range() -> tuple[int, int]:
        from nsbridge.kernel import sysctl

        try:
            lo, hi = (int(x) for x in (sysctl.read("net.ipv4.ip_local_port_range") or "").split())
            return lo, hi
        except ValueError:
            return grammar.EPHEMERAL

    @staticmethod
    def _ports_conflict(c: Container, endpoint_id: str, why: str) -> Conflict:
        return Conflict(f"driver failed programming external connectivity on endpoint {c.name} ({endpoint_id}): {why}")

    # -- kernel ------------------------------------------------------------------------------
    def _ports_endpoint(self: "Engine", eps: list[Endpoint], skip: str = "") -> tuple[Endpoint, Network] | None:
        """The endpoint published ports go to: the first live one on a bridge
        network that is not internal (Docker's gateway endpoint)."""
        for ep in sorted(eps, key=lambda e: e.position):
            if not ep.ip or ep.network_id == skip:
                continue
            net = self.store.network(ep.network_id)
            if net.driver == "bridge" and not net.internal:
                return ep, net
        return None

    @staticmethod
    def _ports_rules(bindings: list[PortBinding], ep: Endpoint, net: Network) -> list["Rule"]:
        from nsbridge.kernel.firewall import port_rules

        assert ep.ip is not None
        rules = []
        for b in bindings:
            rules += port_rules(net.bridge, ep.ip, b.container_port, b.proto, b.host_ip, b.host_port)
        return _dedupe(rules)

    def _ports_container_rules(self: "Engine", c: Container, skip: str = "") -> list["Rule"]:
        """The rules a running container's bindings have now (from the store)."""
        if not c.ports or c.network_mode == "host" or c.network_mode.startswith("container:"):
            return []
        found = self._ports_endpoint(self.store.endpoints_of(c.id), skip)
        return self._ports_rules(c.ports, *found) if found else []

    def _ports_setup(self: "Engine", plan: "Plan", k: "Kernel", c: Container, live: list[Endpoint]) -> None:
        if not c.ports or c.network_mode == "host" or c.network_mode.startswith("container:"):
            return
        found = self._ports_endpoint(live)
        if found is None:
            return
        ep, net = found
        # `start`: another container may have published one of these while this one was stopped
        kept = [grammar.PublishSpec(b.container_port, b.proto, b.host_ip, b.host_port) for b in c.ports]
        allocated, _ = self._ports_held(c.id, grammar.spans(kept), host_sockets=False)
        b = grammar.first_taken(c.ports, allocated)
        if b is not None:
            raise self._ports_conflict(
                c, ep.endpoint_id, f"Bind for {b.host_ip or '0.0.0.0'}:{b.host_port} failed: port is already allocated"
            )
        from nsbridge.kernel import firewall

        rules = self._ports_rules(c.ports, ep, net)
        plan.step("container.ports.hairpin", lambda: k.link.set_hairpin(ep.host_ifname))
        plan.step("container.ports.localnet", lambda: firewall.enable_route_localnet(net.bridge))
        plan.step("container.ports", lambda: k.fw.apply(add=rules, known=True), lambda: k.fw.apply(delete=rules, known=True))

    def _ports_teardown(self: "Engine", k: "Kernel", c: Container) -> None:
        """Before the endpoints are released (their addresses name the rules)."""
        rules = self._ports_container_rules(c)
        if rules:
            try:
                k.fw.apply(delete=rules, known=True)
            except KernelError as e:  # carry on: `system reconcile` removes strays
                log.warning("removing port rules of %s: %s", c.name, e)

    def _ports_teardown_endpoint(self: "Engine", k: "Kernel", c: Container, ep: Endpoint) -> None:
        """`network disconnect` of a running container: if its ports went to
        EP, they move to the next network reaching outside (as Docker re-elects
        the gateway endpoint), in one batch."""
        before = self._ports_container_rules(c)
        after = self._ports_container_rules(c, skip=ep.network_id)
        if before == after:
            return
        moved = self._ports_endpoint(self.store.endpoints_of(c.id), skip=ep.network_id)
        if moved is not None:
            from nsbridge.kernel import firewall

            firewall.enable_route_localnet(moved[1].bridge)
            k.link.set_hairpin(moved[0].host_ifname)
        k.fw.apply(add=after, delete=before, known=True)

    def _all_port_rules(self: "Engine") -> list["Rule"]:
        """What `system reconcile` expects: every running container's port rules."""
        out: list = []
        for c in self.store.containers():
            if c.running:
                out += self._ports_container_rules(c)
        return out
