"""`nsbridge why A B [--tcp PORT|--udp PORT|--icmp]`: can A reach B, and if
not, the first cause along the path, in one sentence, with the evidence.

The answer is what the kernel did: one real probe from A's namespace
(nsbridge.probe), the host's iptables packet counters read before and after
it (the rule that dropped it is the one whose counter went up), and the
state of the links, routes, sockets and neighbours on the way. A name is
first looked up from A, with A's own resolv.conf and hosts file, as A's libc
would. The per-network checks are one function per driver kind
(PATH_CHECKS); the causes are named by the constants below.
"""
from __future__ import annotations

import os

from nsbridge import probe
from nsbridge.dns import embedded
from nsbridge.engine.links import impairment_of, link_states
from nsbridge.errors import InvalidArgument, NotFound
from nsbridge.explain import sockets
from nsbridge.explain.hand import Hand
from nsbridge.explain.names import NameOps
from nsbridge.explain.verdict import (  # noqa: F401 (the causes are why's vocabulary too)
    FIREWALL, ICC, IMPAIRED, INTERNAL, ISOLATION, LINK_DOWN, NAME, NO_ANSWER, NO_HOST, NO_ROUTE, NOT_LISTENING,
    NOT_RUNNING, REACHABLE, Evidence, Verdict, render,
)
from nsbridge.kernel import counters, rtnl
from nsbridge.kernel.ns import in_netns, netns_path
from nsbridge.model import Container, Endpoint, Network
from nsbridge.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from nsbridge.engine.views import ViewOps

@record
class Side:
    """One end: a container (its namespace and endpoints) or the host."""

    label: str
    container: Container | None
    netns_path: str | None
    netns: str  # name for the by-hand commands ("" for the machine's own)
    endpoints: list[tuple[Network, Endpoint]] = field(default_factory=list)

    def networks(self) -> list[str]:
        return [n.name for n, _ in self.endpoints]


class Why(NameOps):
    def __init__(self, reader: "ViewOps", proto: str, port: int | None, timeout: float) -> None:
        self.r = reader
        self.store = reader.store
        self.hand = Hand(reader.host.netns)
        self.proto, self.port, self.timeout = proto, port, timeout
        self.links = link_states(self.store)
        self.nets = {n.id: n for n in self.store.networks()}

    # -- the two ends ------------------------------------------------------------------------
    def side(self, ref: str) -> Side | Container:
        """A running container's or the host's Side; a stopped container as is."""
        host = self.r.host
        if ref == "host":
            return Side("host", None, host.netns_path, host.netns or "")
        c = self.r.store.find_container(ref)
        if c is None and probe_ipv4(ref):
            c = next((self.store.container(e.container_id) for e in self.store.all_endpoints() if e.ip == ref), None)
        if c is None:
            raise NotFound(f"No such container: {ref}")
        c = self.r.ps_state(c)
        if not c.running:
            return c
        owner = c
        if c.network_mode.startswith("container:"):
            owner = self.r.ps_state(self.store.container(c.network_mode.split(":", 1)[1]))
        if c.network_mode == "host":
            return Side(c.name, c, host.netns_path, host.netns or "")
        eps = [(self.nets[e.network_id], e) for e in self.store.endpoints_of(owner.id) if e.ip and e.network_id in self.nets]
        return Side(c.name, c, netns_path(owner.netns) if owner.netns else None, owner.netns, eps)

    def files(self, c: Container) -> tuple[str, str]:
        if c.network_mode.startswith("container:"):
            c = self.store.container(c.network_mode.split(":", 1)[1])
        d = self.r.host.files_dir(c.id)
        return os.path.join(d, "resolv.conf"), os.path.join(d, "hosts")

    def ep_by_ip(self, ip: str) -> tuple[Container, Network, Endpoint] | None:
        for e in self.store.all_endpoints():
            if e.ip == ip and e.network_id in self.nets:
                return self.store.container(e.container_id), self.nets[e.network_id], e
        return None

    # -- steps ---------------------------------------------------------------------------------------
    def target_of(self, v: Verdict, a: Side, b_ref: str) -> str | None:
        if b_ref == "host":
            gw = next((n.ipam.gateway for n, _ in a.endpoints if n.ipam and not n.internal), None) or next(
                (n.ipam.gateway for n, _ in a.endpoints if n.ipam), None)
            if a.container is None or gw is None:
                return "127.0.0.1" if a.container is None or a.netns_path == self.r.host.netns_path else None
            v.evidence.append(Evidence("note", f"the host is {gw} from {a.label} (its network's gateway)"))
            return gw
        if probe_ipv4(b_ref):
            return b_ref
        if a.container is not None and a.netns_path != self.r.host.netns_path:
            return self.name_step(v, a, b_ref)
        b = self.store.find_container(b_ref)  # the host resolves no container names: take the store's address
        if b is None:
            raise NotFound(f"No such container: {b_ref}")
        ip = next((e.ip for e in self.store.endpoints_of(b.id) if e.ip), None)
        if ip is None:
            v.cause, v.sentence = NOT_RUNNING, f"{b.name} is {self.r.ps_state(b).state}: it has no address."
            return None
        v.evidence.append(Evidence("note", f"the host resolves no container names: {b.name}'s address {ip} from the store"))
        return ip

    def send(self, a: Side, target: str) -> tuple[probe.ProbeResult, list[tuple[counters.Counted, int]], list]:
        """The one probe, between two readings of the host's counters."""
        with in_netns(self.r.host.netns_path):
            before = counters.save()
        if self.proto == "tcp":
            res = probe.tcp(a.netns_path, target, self.port or 0, self.timeout)
        elif self.proto == "udp":
            res = probe.udp(a.netns_path, target, self.port or 0, b"nsbridge why\n", self.timeout)
        else:
            res = probe.icmp(a.netns_path, target, self.timeout)
        with in_netns(self.r.host.netns_path):
            after = counters.save()
        return res, counters.increased(before, after), before

    # -- classification -----------------------------------------------------------------------------
    def rule_cause(self, v: Verdict, a: Side, rule: counters.Counted, delta: int, before: list) -> None:
        old = next((c.packets for c in before if c.key() == rule.key()), 0)
        v.evidence.append(Evidence("rule", f"{rule.text()}  ({rule.table}): {old} -> {old + delta} packets",
                                   self.hand.iptables(rule.table, rule.chain, counters=True)))
        words = rule.spec.split()
        bridge = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", "-i")), "")
        net = next((n for n in self.nets.values() if n.bridge and n.bridge == bridge), None)
        nname = net.name if net else bridge
        b = self.ep_by_ip(v.target)
        if rule.chain == "NSBRIDGE-ISOLATION-STAGE-1" and ("!" in words) and net is not None and net.internal:
            v.cause = INTERNAL
            v.sentence = (f"network {nname} is --internal: the kernel drops what crosses between it and anything "
                          f"outside its subnet {net.ipam.subnet if net.ipam else ''}.")
        elif rule.chain == "NSBRIDGE-ISOLATION-STAGE-2":
            v.cause = ISOLATION
            bn = f"{b[0].name} (on {b[1].name})" if b else v.target
            v.sentence = (f"{a.label} (on {', '.join(a.networks()) or 'no network'}) and {bn} share no network: "
                          f"the isolation rule drops what goes from another bridge into {bridge} ({nname})"
                          + (f"; {nname} is --internal too: only its own subnet reaches it." if net and net.internal else "."))
        elif rule.chain == "NSBRIDGE-FORWARD" and "-i" in words and "-o" in words and rule.target == "DROP":
            v.cause = ICC
            v.sentence = (f"inter-container communication is off on network {nname} "
                          "(com.docker.network.bridge.enable_icc=false): the kernel drops traffic between its containers.")
        elif rule.chain == "NSBRIDGE-USER":
            v.cause = FIREWALL
            v.sentence = "a rule of your own in NSBRIDGE-USER drops it."
        elif rule.policy:
            v.cause = FIREWALL
            v.sentence = f"no rule accepted it and the {rule.chain} chain's policy is {rule.policy} ({rule.table} table)."
        else:
            v.cause = FIREWALL
            v.sentence = f"the firewall drops it: {rule.text()} ({rule.table} table)."

    def path_endpoint(self, a: Side, target: str) -> tuple[Network, Endpoint] | None:
        """The endpoint of A that a packet to TARGET leaves by (its route)."""
        view = rtnl.read(a.netns_path)
        dev = route_dev(view, target)
        return next(((n, e) for n, e in a.endpoints if e.ifname == dev), None)

    def timeout_cause(self, v: Verdict, a: Side) -> None:
        ends: list[tuple[str, Network, Endpoint, Container | None]] = []
        mine = self.path_endpoint(a, v.target)
        if mine is not None:
            ends.append((a.label, mine[0], mine[1], a.container))
        theirs = self.ep_by_ip(v.target)
        if theirs is not None:
            ends.append((theirs[0].name, theirs[1], theirs[2], theirs[0]))
        for who, net, ep, _c in ends:
            check = PATH_CHECKS.get(net.driver)
            if check is not None and check(self, v, who, net, ep):
                return
        if theirs is None and mine is not None and mine[0].ipam is not None and in_subnet(v.target, mine[0].ipam.subnet):
            v.cause = NO_HOST
            view = rtnl.read(a.netns_path, neigh=True)
            nb = next((n for n in view.neighbours if n.address == v.target), None)
            v.sentence = (f"nothing on network {mine[0].name} has the address {v.target}: "
                          "no container answers ARP for it.")
            v.evidence.append(Evidence("neighbour", f"{a.label}'s neighbour entry for {v.target}: "
                                       + (nb.state if nb else "none"), Hand.ip_in(a.netns, "neigh", "show", v.target)))
            return
        v.cause = NO_ANSWER
        v.sentence = "no answer came back, and no firewall rule counted a drop."
        if self.proto == "udp" and theirs is not None:
            b = self.side(theirs[0].name)
            listening = sockets.listening(b.netns_path, "udp") if isinstance(b, Side) else []
            if any(p == self.port for _ip, p in listening):
                v.sentence = (f"{theirs[0].name} has a socket on udp/{self.port} but sent nothing back "
                              "(a UDP service answers only if it wants to).")

    def refused(self, v: Verdict) -> None:
        v.cause = NOT_LISTENING
        owner = self.ep_by_ip(v.target)
        gateways = {n.ipam.gateway for n in self.nets.values() if n.ipam}
        who = owner[0].name if owner else ("the host" if v.target in gateways | {"127.0.0.1"} else v.target)
        side = self.side(owner[0].name) if owner else None
        path = side.netns_path if isinstance(side, Side) else self.r.host.netns_path
        listening = sockets.listening(path, self.proto)
        v.sentence = f"nothing listens on {self.proto}/{self.port} in {who}: its kernel answered with a refusal."
        dns = (embedded.ADDRESS, embedded.PORT)
        shown = ", ".join(f"{ip}:{p}" + (" (its embedded DNS)" if (ip, p) == dns else "") for ip, p in listening) or "none"
        ns_name = owner[0].netns if owner else (self.r.host.netns or "")
        flag = "-ltn" if self.proto == "tcp" else "-lun"
        cmd = Hand.run_in(ns_name, "ss", flag) if ns_name else f"ss {flag}"
        v.evidence.append(Evidence("sockets", f"{who} listens on {self.proto}: {shown}", cmd))

    def no_route(self, v: Verdict, a: Side, res: probe.ProbeResult) -> None:
        v.cause = NO_ROUTE
        view = rtnl.read(a.netns_path)
        routes = "; ".join(f"{r.dst}" + (f" via {r.gateway}" if r.gateway else "") for r in view.routes) or "none"
        cmd = Hand.ip_in(a.netns, "route") if a.netns and a.container else self.hand.ip("route")
        v.evidence.append(Evidence("routes", f"{a.label}'s routes: {routes}", cmd))
        if res.reason == probe.UNREACHABLE:
            v.sentence = (f"{v.target} is beyond the host's routes: {res.detail}"
                          + (" (a sandbox host has no route out)." if self.r.host.netns else "."))
        elif a.container is not None and not a.endpoints and a.container.network_mode == "none":
            v.sentence = f"{a.label} has no network (--network none): only loopback, no route to {v.target}."
        elif a.endpoints and all(n.internal for n, _ in a.endpoints):
            v.cause = INTERNAL
            v.sentence = (f"{a.label}'s networks ({', '.join(a.networks())}) are --internal: no default route, "
                          f"so nothing outside their subnets ({v.target}) is reachable.")
        else:
            v.sentence = f"{a.label} has no route to {v.target}."


# -- per-driver checks of one endpoint on the path: True when they found the cause ------------
def _bridge_endpoint(w: Why, v: Verdict, who: str, net: Network, ep: Endpoint) -> bool:
    st = w.links.get(ep.endpoint_id, {})
    host = rtnl.read(w.r.host.netns_path).link(ep.host_ifname)
    cmd = w.hand.ip("link", "show", "dev", ep.host_ifname)
    if st.get("down") or (host is not None and not host.admin_up):
        v.cause = LINK_DOWN
        by = " (nsbridge link ... down)" if st.get("down") else " (not by nsbridge)"
        v.sentence = f"{who}'s link on network {net.name} is down{by}: {ep.ifname} has no carrier, nothing passes."
        v.evidence.append(Evidence("link", f"{ep.host_ifname} (host end of {who}:{ep.ifname}): "
                                   f"{'down' if host is None or not host.admin_up else host.operstate}", cmd))
        return True
    imp = impairment_of(st)
    if imp is not None and imp.loss_pct is not None and imp.loss_pct >= 100:
        v.cause = IMPAIRED
        v.sentence = f"{who}'s link on network {net.name} is impaired with 100 % loss ({imp.describe()})."
        c = w.store.find_container(who)
        v.evidence.append(Evidence("qdisc", f"{who}:{ep.ifname} shaped: {imp.describe()}",
                                   Hand.tc_in(c.netns if c else "", "qdisc", "show", "dev", ep.ifname)))
        return True
    if imp is not None and imp.loss_pct:
        v.evidence.append(Evidence("note", f"{who}:{ep.ifname} loses {imp.loss_pct:g}% of what it sends: try again"))
    return False


PATH_CHECKS: dict[str, "Callable[[Why, Verdict, str, Network, Endpoint], bool]"] = {"bridge": _bridge_endpoint}


# -- helpers -------------------------------------------------------------------------------------
def probe_ipv4(text: str) -> bool:
    try:
        probe._ipv4(text)
        return True
    except ValueError:
        return False


def _int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def in_subnet(ip: str, cidr: str) -> bool:
    net, _, plen = cidr.partition("/")
    mask = (0xFFFFFFFF << (32 - int(plen))) & 0xFFFFFFFF if plen else 0xFFFFFFFF
    return _int(ip) & mask == _int(net) & mask


def route_dev(view: rtnl.NetnsView, target: str) -> str:
    """The device a packet to TARGET leaves by: longest prefix of the main table."""
    best, dev = -1, ""
    for r in view.routes:
        plen = 0 if r.dst == "default" else int(r.dst.rsplit("/", 1)[1])
        if (r.dst == "default" or in_subnet(target, r.dst)) and plen > best:
            li = view.link(r.oif)
            best, dev = plen, li.name if li else ""
    return dev


def explain(reader: "ViewOps", a_ref: str, b_ref: str, proto: str = "icmp", port: int | None = None,
            timeout: float = 1.0) -> Verdict:
    if proto != "icmp" and not port:
        raise InvalidArgument(f"--{proto} needs a port")
    reader.ensure_ready()
    w = Why(reader, proto, port, timeout)
    v = Verdict(a_ref, b_ref, proto, port)
    a = w.side(a_ref)
    if not isinstance(a, Side):
        v.cause, v.sentence = NOT_RUNNING, f"{a.name} is {a.state}: it has no network namespace to send from."
        return v
    target = w.target_of(v, a, b_ref)
    if target is None:
        return v
    v.target = target
    res, up, before = w.send(a, target)
    what = f"{proto}" + (f"/{port}" if port else "") + f" from {a.label} to {target}"
    v.evidence.insert(0, Evidence("probe", f"{what}: {res.detail}" + (f" in {res.rtt_ms:.2f} ms" if res.rtt_ms else "")))
    if res.ok:
        v.reachable, v.sentence = True, f"{a.label} reaches {b_ref} ({target}): {res.detail}."
        deciding = [(r, d) for r, d in up if r.chain.startswith("NSBRIDGE") and r.target in ("ACCEPT", "DNAT")]
        for rule, delta in deciding[:4]:
            v.evidence.append(Evidence("rule", f"{rule.text()}  ({rule.table}): +{delta}",
                                       w.hand.iptables(rule.table, rule.chain, counters=True)))
        return v
    drops = [(r, d) for r, d in up if r.target in ("DROP", "REJECT")]
    if drops:
        w.rule_cause(v, a, drops[0][0], drops[0][1], before)
    elif res.reason in (probe.NO_ROUTE, probe.UNREACHABLE):
        w.no_route(v, a, res)
    elif res.reason == probe.REFUSED:
        w.refused(v)
    else:
        w.timeout_cause(v, a)
    return v
