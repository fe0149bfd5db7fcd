"""`why`'s first step when B is a name: look it up from A as A's libc would
(its resolv.conf and hosts file), and when no address comes, say why: the
default bridge has no names, B is stopped, disconnected or on a network A is
not on, or the resolver that answers 127.0.0.11 inside A (the one of A's
first user network) is not running, holds no socket there, or is silent."""
from __future__ import annotations

from nsbridge import probe
from nsbridge.dns import embedded
from nsbridge.explain import sockets
from nsbridge.explain.hand import Hand
from nsbridge.explain.verdict import NAME, Evidence, Verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.explain.why import Side, Why


class NameOps:
    """Why's name steps (a mixin: self is the Why)."""

    def name_step(self: "Why", v: Verdict, a: "Side", name: str) -> str | None:
        """NAME looked up from A: the address, or None with the cause set in V."""
        assert a.container is not None
        resolv, hosts = self.files(a.container)
        res = probe.resolve(a.netns_path, name, resolv, hosts, timeout=self.timeout)
        cmd = f"nsbridge exec {a.label} getent hosts {name}"
        if res.ok:
            v.evidence.append(Evidence("name", f"{name} from {a.label}: {res.detail}", cmd))
            return res.addresses[0]
        v.cause = NAME
        v.evidence.append(Evidence("name", f"looking up {name} from {a.label}: {res.detail}", cmd))
        v.sentence = f'the name "{name}" does not resolve from {a.label}: ' + self.name_reason(v, a, name, res)
        b = self.store.find_container(name)
        if b is not None:
            ip = next((e.ip for e in self.store.endpoints_of(b.id) if e.ip), None)
            if ip:
                v.evidence.append(Evidence("note", f"{b.name} has the address {ip}: by address, ask `nsbridge why {a.label} {ip}`"))
        return None

    def name_reason(self: "Why", v: Verdict, a: "Side", name: str, res: probe.ProbeResult) -> str:
        dns_nets = [n for n, _ in a.endpoints if n.has_dns]
        if dns_nets:
            trouble = self.embedded_dns(v, a, res)
            if trouble:
                return trouble
        b = self.store.find_container(name)
        if b is None:
            alias = any(name.lower() in (x.lower() for x in e.aliases) for e in self.store.all_endpoints())
            if not alias:
                return f"no container, alias or network name {name!r} is known to nsbridge."
        if not dns_nets:
            where = ", ".join(f"the default bridge ({n.name})" if n.is_default_bridge else n.name
                              for n, _ in a.endpoints) or "no network"
            return (f"{a.label} is on {where}, which has no embedded DNS (the default bridge resolves no names: "
                    "only --link entries in /etc/hosts, as on Docker); put both on a user network.")
        if b is not None:
            b = self.r.ps_state(b)
            live = [self.nets[e.network_id] for e in self.store.endpoints_of(b.id) if e.ip and e.network_id in self.nets]
            if not b.running:
                return f"{b.name} is {b.state}: a stopped container has no address to answer with."
            if not live:
                return f"{b.name} is on no network (disconnected): it has no address to answer with."
            shared = {n.id for n in live} & {n.id for n in dns_nets}
            if not shared:
                return (f"{b.name} is on {', '.join(n.name for n in live)}, a network {a.label} is not on: "
                        f"the resolver at {embedded.ADDRESS} in {a.label} answers only for {a.label}'s networks "
                        f"({', '.join(n.name for n in dns_nets)}).")
        return f"its resolver at {embedded.ADDRESS} did not answer with an address ({res.detail})."

    def embedded_dns(self: "Why", v: Verdict, a: "Side", res: probe.ProbeResult) -> str | None:
        """Who answers 127.0.0.11 in A (the resolver of its first user network,
        holding a socket inside A's namespace), as evidence; the cause when the
        lookup got no answer because of it."""
        from nsbridge import procs

        ep = embedded.owner([e for _, e in a.endpoints], lambda nid: self.nets[nid].has_dns)
        if ep is None:
            return None
        net = self.nets[ep.network_id]
        r = self.store.resolvers().get(net.id)
        alive = r is not None and procs.alive(r[0], r[1])
        addr = f"{embedded.ADDRESS}:{embedded.PORT}"
        held = (embedded.ADDRESS, embedded.PORT) in sockets.listening(a.netns_path, "udp")
        who = f"the resolver of network {net.name}" + (f" (pid {r[0]})" if r else "")
        v.evidence.append(Evidence(
            "resolver", f"{addr} in {a.label}: " + (f"held by {who}" if held else "nothing listens there")
            + ("" if alive else f"; {who} is not running"), Hand.run_in(a.netns, "ss", "-lunp", "src", addr)))
        if res.reason not in (probe.TIMEOUT, probe.REFUSED):  # it answered: the name is the matter
            return None
        first = f"{net.name} is {a.label}'s first user network" + (f"; its log: {r[3]}" if r else "")
        if not alive:
            return f"{who}, which answers {addr} in {a.label}, is not running ({first})."
        if not held:
            return f"nothing listens on {addr} in {a.label}: {who}, which answers there, holds no socket in it ({first})."
        return f"{who} holds {addr} in {a.label} but did not answer within {self.timeout:g} s ({first})."
