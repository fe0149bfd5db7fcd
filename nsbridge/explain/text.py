"""`show` as text for the terminal: one line per kernel object, the command
that shows it by hand at the right (or under it when the line is long)."""
from __future__ import annotations

from nsbridge.explain.picture import ContainerView, Iface, NetworkView, Picture, RuleView

COL = 72


def _line(out: list[str], text: str, cmd: str = "") -> None:
    if not cmd:
        out.append(text)
    elif len(text) < COL:
        out.append(f"{text:<{COL}}$ {cmd}")
    else:
        out += [text, f"{'':<{COL}}$ {cmd}"]


def _iface(i: Iface) -> str:
    parts = [f"{i.name}@{i.index}", i.state or "?"]
    parts += i.addresses
    if i.mac and i.mac != "00:00:00:00:00:00":
        parts.append(i.mac)
    if i.port_state:
        parts.append(i.port_state)
    if i.hairpin is not None:
        parts.append(f"hairpin {'on' if i.hairpin else 'off'}")
    if i.peer:
        parts.append(f"<-> {i.peer}")
    if i.qdisc:
        parts.append(f"qdisc {i.qdisc}")
    return " ".join(parts)


def _rules(out: list[str], rules: list[RuleView], indent: str) -> None:
    for r in rules:
        _line(out, f"{indent}{r.packets:>8} pkts  {r.rule}" + ("" if r.table == "filter" else f"  ({r.table})"))


def network(out: list[str], n: NetworkView) -> None:
    head = f"network {n.name}  ({n.driver}"
    if n.subnet:
        head += f", {n.subnet}, gateway {n.gateway}"
    flags = [f for f, on in (("internal", n.internal), ("icc off", not n.icc), ("no masquerade", not n.masquerade)) if on]
    head += "".join(f", {f}" for f in flags) + ")"
    _line(out, head, n.cmds.get("network", ""))
    if n.device is not None:
        _line(out, f"  bridge {_iface(n.device)}", n.device.cmd)
    for p in n.ports:
        _line(out, f"  port {_iface(p)}", p.cmd)
    if n.resolver is not None:
        r = n.resolver
        _line(out, f"  resolver pid {r.pid} ({r.state}), answers on {r.address}:53 inside {r.serves} "
              f"container{'' if r.serves == 1 else 's'}, log {r.log}", r.cmd)
    if n.rules:
        _line(out, "  rules that name it (packet counters):", n.cmds.get("rules", ""))
        _rules(out, n.rules, "  ")
    if n.containers:
        out.append("  containers: " + ", ".join(n.containers))
    elif "interfaces" in n.cmds:
        _line(out, "  (the host's own interfaces)", n.cmds["interfaces"])


def container(out: list[str], c: ContainerView) -> None:
    head = f"container {c.name}  {c.state}"
    if c.pid and c.state == "running":
        head += f", pid {c.pid}"
    head += f", network mode {c.mode}"
    if c.netns and c.state == "running":
        head += f", namespace {c.netns}"
    _line(out, head, c.cmds.get("interfaces") or c.cmds.get("exec", ""))
    for i in c.interfaces:
        _line(out, f"  {_iface(i)}", i.cmd)
    for e in c.endpoints:
        extra = ("  LINK DOWN (nsbridge link)" if e.link == "down" else "") + (
            f"  impaired: {e.impairment}" if e.impairment else "")
        _line(out, f"  endpoint {e.network}: {e.ifname} {e.ip} {e.mac} <-> {e.host_veth}{extra}", e.cmd)
    if c.routes:
        _line(out, "  routes: " + "; ".join(c.routes), c.cmds.get("routes", ""))
    if c.nameservers:
        _line(out, "  nameservers (resolv.conf): " + ", ".join(c.nameservers) + (f"; {c.dns}" if c.dns else ""),
              c.cmds.get("dns", ""))
    if c.published:
        _line(out, "  published ports (DNAT and its rules):", c.cmds.get("published", ""))
        _rules(out, c.published, "  ")


def render(p: Picture) -> str:
    out: list[str] = [f"host: {p.host} (state in {p.root})"]
    if p.host_rules:
        out.append("")
        _line(out, "host rules (jumps into nsbridge's chains):", "")
        _rules(out, p.host_rules, "")
    for n in p.networks:
        out.append("")
        network(out, n)
    for c in p.containers:
        out.append("")
        container(out, c)
    problems = p.all_problems()
    out.append("")
    out += ["problems (the kernel and the store disagree):", *(f"  - {x}" for x in problems)] if problems else [
        "no problems: the kernel has what the store says"]
    return "\n".join(out) + "\n"
