"""`nsbridge show [NET|CTR]`: what exists, read from the kernel and set next
to what the store says, with the command that shows each thing by hand.

One visit per namespace (links, addresses, routes, qdiscs in a few rtnetlink
dumps, no pyroute2), one `iptables-save -c` in the host namespace. The
per-network part is one function per driver kind (NETWORK_VIEWS).
"""
from __future__ import annotations

from nsbridge.dns import embedded
from nsbridge.engine.links import impairment_of, link_states
from nsbridge.errors import NotFound
from nsbridge.explain.hand import Hand
from nsbridge.explain.picture import ContainerView, EndpointView, Iface, NetworkView, Picture, ResolverView, RuleView
from nsbridge.kernel import counters, rtnl
from nsbridge.kernel.counters import Counted
from nsbridge.kernel.shaping import fmt_rate
from nsbridge.model import Container, Endpoint, Network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from nsbridge.engine.views import ViewOps


class Context:
    """What one `show` read: the store, the host namespace, the ruleset."""

    def __init__(self, reader: "ViewOps") -> None:
        self.reader = reader
        self.store = reader.store
        self.hand = Hand(reader.host.netns)
        self.host = rtnl.read(reader.host.netns_path)
        from nsbridge.kernel.ns import in_netns

        with in_netns(reader.host.netns_path):
            self.rules = counters.save()
        self.links = link_states(self.store)
        self.nets = {n.id: n for n in self.store.networks()}
        self.containers = {c.id: reader.ps_state(c) for c in self.store.containers()}
        self.eps: dict[str, list[Endpoint]] = {}
        for e in self.store.all_endpoints():
            self.eps.setdefault(e.container_id, []).append(e)
        for lst in self.eps.values():
            lst.sort(key=lambda e: e.position)
        # container id -> the endpoint whose network's resolver holds its 127.0.0.11
        self.dns_owner = {cid: embedded.owner(eps, lambda nid: nid in self.nets and self.nets[nid].has_dns)
                          for cid, eps in self.eps.items()}
        self.by_alias = {li.alias.split(":", 1)[1]: li for li in self.host.links if li.alias.startswith("nsbridge:")}
        self.views: dict[str, rtnl.NetnsView] = {}
        # published ports' rules, by the container address they name (DNAT target, -d ADDR/32)
        self.by_address: dict[str, list[Counted]] = {}
        for r in self.rules:
            words = r.spec.split()
            for flag, val in zip(words, words[1:]):
                if flag == "--to-destination":
                    self.by_address.setdefault(val.split(":")[0], []).append(r)
                elif flag == "-d" and val.endswith("/32"):
                    self.by_address.setdefault(val[:-3], []).append(r)

    def endpoint_name(self, endpoint_id: str) -> str:
        """"web:eth0" for a live endpoint id (a host veth's mark)."""
        for cid, eps in self.eps.items():
            for e in eps:
                if e.endpoint_id == endpoint_id and e.ip:
                    c = self.containers.get(cid)
                    return f"{c.name if c else cid[:12]}:{e.ifname}"
        return ""

    def netns_view(self, c: Container) -> rtnl.NetnsView | None:
        if not c.running or not c.netns:
            return None
        if c.id not in self.views:
            from nsbridge.kernel.ns import netns_path

            self.views[c.id] = rtnl.read(netns_path(c.netns))
        return self.views[c.id]

    def rule_view(self, r: Counted) -> RuleView:
        return RuleView(r.table, r.text(), r.packets, self.hand.iptables(r.table, r.chain, counters=True))

    def rules_mentioning(self, *words: str) -> list[RuleView]:
        want = set(w for w in words if w)
        return [self.rule_view(r) for r in self.rules if r.spec and want & set(r.spec.split())]

    def owner(self, ip: str) -> str:
        """The container that has IP on some network, by name."""
        for cid, eps in self.eps.items():
            if any(e.ip == ip for e in eps):
                return self.containers[cid].name if cid in self.containers else cid[:12]
        return ""


def _qdisc_text(qs: list[rtnl.Qdisc]) -> str:
    root = next((q for q in qs if q.parent == 0xFFFFFFFF), None)
    if root is None or root.kind in ("noqueue", "pfifo_fast", "fq_codel", "mq", "noop"):
        return ""
    parts = [root.kind]
    for q in qs:
        if q.kind == "tbf" and q.rate_bps:
            parts.append(f"{'' if q is root else 'tbf '}rate {fmt_rate(q.rate_bps * 8)}")
    return " ".join(parts)


def _iface(ctx: Context, view: rtnl.NetnsView, li: rtnl.Link, cmd: str) -> Iface:
    return Iface(
        name=li.name, index=li.index, kind=li.kind, mac=li.mac, mtu=li.mtu,
        state=li.operstate if li.admin_up else "down",
        addresses=[f"{a.address}/{a.prefixlen}" for a in view.addrs_of(li.index)],
        port_state=li.port_state, hairpin=li.hairpin, qdisc=_qdisc_text(view.qdiscs_of(li.index)), cmd=cmd,
    )


# -- networks, one function per driver kind --------------------------------------------------
def _bridge_network(ctx: Context, n: Network) -> NetworkView:
    hand = ctx.hand
    v = NetworkView(n.name, n.id, n.driver, n.ipam.subnet if n.ipam else "", n.ipam.gateway if n.ipam else "",
                    n.internal, n.icc, n.masquerade)
    v.cmds = {"network": f"nsbridge network inspect {n.name}", "bridge": hand.ip("-d", "addr", "show", "dev", n.bridge),
              "ports": hand.bridge("link", "show", "master", n.bridge)}
    br = ctx.host.link(n.bridge)
    if br is None:
        v.problems.append(f"network {n.name}: bridge {n.bridge} is missing from the kernel (nsbridge system reconcile)")
    else:
        v.device = _iface(ctx, ctx.host, br, v.cmds["bridge"])
        if not br.admin_up:
            v.problems.append(f"network {n.name}: bridge {n.bridge} is down")
        for li in ctx.host.links:
            if li.master == br.index:
                port = _iface(ctx, ctx.host, li, hand.bridge("-d", "link", "show", "dev", li.name))
                port.bridge = n.bridge
                if li.alias.startswith("nsbridge:"):
                    port.peer = ctx.endpoint_name(li.alias.split(":", 1)[1])
                v.ports.append(port)
    v.rules = ctx.rules_mentioning(n.bridge, v.subnet)
    v.cmds["rules"] = f"{hand.run('iptables-save', '-c')} | grep -w -e {n.bridge} -e {v.subnet}"
    r = ctx.store.resolvers().get(n.id)
    if n.has_dns:
        from nsbridge import procs

        if r is None:
            v.problems.append(f"network {n.name}: no resolver recorded")
        else:
            alive = procs.alive(r[0], r[1])
            serves = sum(1 for o in ctx.dns_owner.values() if o is not None and o.network_id == n.id)
            v.resolver = ResolverView(r[0], r[2], "running" if alive else "stopped", r[3],
                                      hand.run("ps", "-o", "pid,args", "-p", str(r[0])), serves)
            if not alive:
                v.problems.append(f"network {n.name}: its resolver (pid {r[0]}) is not running")
    for cid, eps in ctx.eps.items():
        if any(e.network_id == n.id and e.ip for e in eps) and cid in ctx.containers:
            v.containers.append(ctx.containers[cid].name)
    return v


def _mode_network(mode: str) -> "Callable[[Context, Network], NetworkView]":
    """host and none: no device of their own; members are containers in that mode."""

    def view(ctx: Context, n: Network) -> NetworkView:
        v = NetworkView(n.name, n.id, n.driver)
        v.cmds = {"network": f"nsbridge network inspect {n.name}"}
        if mode == "host":
            v.cmds["interfaces"] = ctx.hand.ip("addr")
        v.containers = [c.name for c in ctx.containers.values() if c.network_mode == mode and c.running]
        return v

    return view


NETWORK_VIEWS: dict[str, "Callable[[Context, Network], NetworkView]"] = {
    "bridge": _bridge_network,
    "host": _mode_network("host"),
    "null": _mode_network("none"),
}


def network_view(ctx: Context, n: Network) -> NetworkView:
    fn = NETWORK_VIEWS.get(n.driver)
    if fn is None:
        return NetworkView(n.name, n.id, n.driver, problems=[f"network {n.name}: no view for driver {n.driver}"])
    return fn(ctx, n)


# -- containers ---------------------------------------------------------------------------------
def _mode(ctx: Context, c: Container) -> str:
    if c.network_mode.startswith("container:"):
        other = ctx.containers.get(c.network_mode.split(":", 1)[1])
        return f"container:{other.name if other else c.network_mode[10:22]}"
    return c.network_mode


def _nameservers(ctx: Context, c: Container) -> list[str]:
    import os

    try:
        with open(os.path.join(ctx.reader.host.files_dir(c.id), "resolv.conf")) as f:
            return [ln.split()[1] for ln in f if ln.startswith("nameserver ") and len(ln.split()) > 1]
    except OSError:
        return []


def container_view(ctx: Context, c: Container) -> ContainerView:
    v = ContainerView(c.name, c.id, c.state, _mode(ctx, c), c.netns, c.pid)
    v.nameservers = _nameservers(ctx, c)
    if not c.running:
        return v
    if c.network_mode == "host" or c.network_mode.startswith("container:"):
        v.cmds = {"interfaces": ctx.hand.ip("addr") if c.network_mode == "host" else "",
                  "exec": f"nsbridge exec {c.name} ip addr"}
        return v
    view = ctx.netns_view(c)
    ns = c.netns
    v.cmds = {"interfaces": Hand.ip_in(ns, "addr"), "routes": Hand.ip_in(ns, "route"),
              "exec": f"nsbridge exec {c.name} ip addr"}
    if view is None or view.error:
        v.problems.append(f"container {c.name}: running, but its namespace {ns} cannot be read"
                          + (f" ({view.error})" if view and view.error else ""))
        return v
    host_by_index = {li.index: li for li in ctx.host.links}
    bridges = {li.index: li.name for li in ctx.host.links if li.kind == "bridge"}
    for li in view.links:
        iface = _iface(ctx, view, li, Hand.ip_in(ns, "-d", "addr", "show", "dev", li.name))
        peer = host_by_index.get(li.peer) if li.kind == "veth" else None
        if peer is not None and peer.peer == li.index:
            on = bridges.get(peer.master, "")
            iface.peer = f"{peer.name}@if{peer.index}" + (f" on {on}" if on else "")
        v.interfaces.append(iface)
    for r in view.routes:
        dev = view.link(r.oif)
        v.routes.append(f"{r.dst}" + (f" via {r.gateway}" if r.gateway else "") + (f" dev {dev.name}" if dev else ""))
    for e in ctx.eps.get(c.id, []):
        if not e.ip:
            continue
        net = ctx.nets.get(e.network_id)
        name = net.name if net else e.network_id[:12]
        st = ctx.links.get(e.endpoint_id, {})
        imp = impairment_of(st)
        ev = EndpointView(name, e.ifname, e.ip, e.mac, e.host_ifname,
                          "down" if st.get("down") else "up", imp.describe() if imp else "",
                          Hand.tc_in(ns, "qdisc", "show", "dev", e.ifname))
        v.endpoints.append(ev)
        _check_endpoint(ctx, c, view, e, name, v.problems)
        v.published += [ctx.rule_view(r) for r in ctx.by_address.get(e.ip, [])]
    if v.published:
        v.cmds["published"] = ctx.hand.iptables("nat", "NSBRIDGE")
    _embedded_dns(ctx, c, v)
    return v


def _embedded_dns(ctx: Context, c: Container, v: ContainerView) -> None:
    """Who answers 127.0.0.11:53 in C: a socket the resolver of its first user
    network holds inside C's namespace (nsbridge/dns/embedded.py)."""
    owner = ctx.dns_owner.get(c.id)
    if owner is None or embedded.ADDRESS not in v.nameservers:
        return
    from nsbridge.explain import sockets
    from nsbridge.kernel.ns import netns_path

    net = ctx.nets[owner.network_id]
    r = ctx.store.resolvers().get(net.id)
    addr = f"{embedded.ADDRESS}:{embedded.PORT}"
    v.cmds["dns"] = Hand.run_in(c.netns, "ss", "-lunp", "src", addr)
    if (embedded.ADDRESS, embedded.PORT) in sockets.listening(netns_path(c.netns), "udp"):
        v.dns = f"{addr} answered by the resolver of network {net.name}" + (f" (pid {r[0]})" if r else "")
    else:
        v.dns = f"nothing listens on {addr}"
        v.problems.append(f"container {c.name}: nothing listens on {addr} in its namespace "
                          f"(the resolver of network {net.name} should hold a socket there)")


def _check_endpoint(ctx: Context, c: Container, view: rtnl.NetnsView, e: Endpoint, net: str, out: list[str]) -> None:
    """Where the kernel and the store disagree about one endpoint."""
    inside = view.link(e.ifname)
    if inside is None:
        out.append(f"container {c.name}: {e.ifname} (network {net}) is missing from its namespace")
        return
    if e.ip and not any(a.address == e.ip for a in view.addrs_of(inside.index)):
        out.append(f"container {c.name}: {e.ifname} lacks its address {e.ip} (network {net})")
    host = ctx.by_alias.get(e.endpoint_id)
    if host is None:
        out.append(f"container {c.name}: the host end of {e.ifname} ({e.host_ifname}, network {net}) is missing")
        return
    recorded_down = bool(ctx.links.get(e.endpoint_id, {}).get("down"))
    if not host.admin_up and not recorded_down:
        out.append(f"container {c.name}: {host.name} (host end of {e.ifname}, network {net}) is down, "
                   "and not by `nsbridge link`")
    if not inside.admin_up:
        out.append(f"container {c.name}: {e.ifname} (network {net}) is down inside the container")


# -- the whole picture -------------------------------------------------------------------------------
def gather(reader: "ViewOps", target: str | None = None) -> Picture:
    """Everything, or what concerns one container (its networks) or one network
    (its containers). A name that is both is taken as the container, as
    `inspect` does."""
    reader.ensure_ready()
    ctx = Context(reader)
    host = reader.host
    pic = Picture(f"sandbox host {host.netns}" if host.netns else "this machine", host.netns, host.root)
    nets = list(ctx.nets.values())
    cs = sorted(ctx.containers.values(), key=lambda c: c.name)
    if target is not None:
        c = reader.store.find_container(target)
        n = reader.store.find_network(target) if c is None else None
        if c is not None:
            cs = [ctx.containers[c.id]]
            mine = {e.network_id for e in ctx.eps.get(c.id, []) if e.ip}
            mode_net = {"host": "host", "none": "null"}.get(c.network_mode)
            nets = [n for n in nets if n.id in mine or (mode_net and n.driver == mode_net)]
        elif n is not None:
            nets = [n]
        else:
            raise NotFound(f"No such container or network: {target}")
    pic.networks = [network_view(ctx, n) for n in sorted(nets, key=lambda n: (not n.predefined, n.name))]
    if target is not None and len(nets) == 1 and len(cs) != 1:
        members = set(pic.networks[0].containers)
        cs = [c for c in cs if c.name in members]
    pic.containers = [container_view(ctx, c) for c in cs]
    if target is None:
        pic.host_rules = [ctx.rule_view(r) for r in ctx.rules
                          if "--comment nsbridge" in r.spec and not r.chain.startswith("NSBRIDGE")]
    return pic
