"""`show --format dot`: the picture as a Graphviz graph (`dot -Tsvg`): the
host's bridges in a cluster, each container a node, each endpoint an edge
through its host veth."""
from __future__ import annotations

from nsbridge.explain.picture import Picture


def q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render(p: Picture) -> str:
    out = ["graph nsbridge {", '  rankdir=TB; node [fontname="monospace", fontsize=10]; edge [fontname="monospace", fontsize=9];',
           f"  label={q(p.host)}; labelloc=t;", "  subgraph cluster_host {", f"    label={q('host namespace ' + (p.host_netns or '(the machine)'))};"]
    for n in p.networks:
        label = f"{n.name}\n{n.driver}"
        if n.device is not None:
            label += f"\n{n.device.name}" + "".join(f"\n{a}" for a in n.device.addresses)
        attrs = "shape=box, style=filled, fillcolor=\"#dbeafe\""
        if n.internal:
            label += "\ninternal"
        out.append(f"    {q('net:' + n.name)} [label={q(label)}, {attrs}];")
        for port in n.ports:
            out.append(f"    {q('veth:' + port.name)} [label={q(port.name)}, shape=ellipse, fontsize=8];")
            out.append(f"    {q('net:' + n.name)} -- {q('veth:' + port.name)};")
    out.append("  }")
    for c in p.containers:
        label = f"{c.name}\n{c.state}" + (f"\n{c.netns}" if c.netns and c.state == "running" else "")
        out.append(f"  {q('ctr:' + c.name)} [label={q(label)}, shape=box3d];")
        for e in c.endpoints:
            style = ", style=dashed, color=red" if e.link == "down" else (", color=orange" if e.impairment else "")
            lab = f"{e.ifname} {e.ip}" + (" DOWN" if e.link == "down" else "") + (f"\n{e.impairment}" if e.impairment else "")
            out.append(f"  {q('veth:' + e.host_veth)} -- {q('ctr:' + c.name)} [label={q(lab)}{style}];")
        if c.mode == "host":
            out.append(f"  {q('net:host')} -- {q('ctr:' + c.name)} [style=dotted];")
    out.append("}")
    return "\n".join(out) + "\n"
