"""`show --format html`: one self-contained page (no external file, font or
script) with an SVG drawing of the host's networks and bridges, the
containers, and the veth of each endpoint, then the text listing with the
commands that show each thing by hand. A lab VM can serve it as it is.

Layout: networks are horizontal bars in the host's box; containers stand in
one row under it, ordered by their first network, each joined to the bars of
its networks by a vertical line through a dot for its host veth. A link set
down is dashed red, an impaired one orange. Hovering an element shows the
command that shows it by hand.

A small script at the end lists, in #rendered, each drawn element whose box
the browser actually laid out (tests read it in a headless browser).
"""
from __future__ import annotations

from html import escape

from nsbridge.explain import text
from nsbridge.explain.picture import ContainerView, NetworkView, Picture

CW, CH = 170, 86  # container column width, box height
BAR_H, BAR_GAP = 26, 44
LEFT, TOP = 20, 50

STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#111}
h1{font-size:18px} .meta{color:#555;font-size:13px}
svg{border:1px solid #ccc;background:#fff} svg text{font-family:monospace;font-size:11px}
.host{fill:#f8fafc;stroke:#94a3b8;stroke-dasharray:4 3}
.bar{fill:#dbeafe;stroke:#2563eb} .bar.internal{fill:#fef3c7;stroke:#d97706} .bar.none{fill:#e5e7eb;stroke:#6b7280}
.box{fill:#ecfdf5;stroke:#059669} .box.stopped{fill:#f3f4f6;stroke:#9ca3af}
.wire{stroke:#2563eb;stroke-width:2} .wire.down{stroke:#dc2626;stroke-dasharray:6 4} .wire.impaired{stroke:#ea580c}
.veth{fill:#fff;stroke:#2563eb} .problem{color:#b91c1c}
pre{background:#f8fafc;border:1px solid #e5e7eb;padding:8px;overflow-x:auto;font-size:12px}
"""

SCRIPT = """
(function(){
  var out=[];
  document.querySelectorAll('svg g[data-kind]').forEach(function(g){
    var b=g.getBBox(); if(b.width>0&&b.height>0){out.push(g.getAttribute('data-kind')+':'+g.getAttribute('data-name'));}
  });
  document.getElementById('rendered').textContent=out.join('\\n');
})();
"""


def _t(x: float, y: float, s: str, cls: str = "", anchor: str = "start") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def _order(p: Picture) -> list[ContainerView]:
    rank = {n.name: i for i, n in enumerate(p.networks)}

    def key(c: ContainerView) -> tuple[int, str]:
        first = min((rank.get(e.network, 999) for e in c.endpoints), default=rank.get(
            "host" if c.mode == "host" else "none", 999))
        return (first, c.name)

    return sorted(p.containers, key=key)


def _bar(n: NetworkView, y: float, width: float) -> str:
    from nsbridge import drivers

    # host and none are network modes, not networks with endpoints: drawn as such
    cls = "bar internal" if n.internal else ("bar none" if not drivers.get(n.driver).caps.endpoints else "bar")
    label = f"{n.name} ({n.driver})"
    if n.device is not None:
        label += f"  {n.device.name}  {' '.join(n.device.addresses)}  {n.device.state}"
    elif n.subnet:
        label += f"  {n.subnet}"
    if n.internal:
        label += "  internal"
    if not n.icc:
        label += "  icc off"
    if n.resolver is not None:
        label += f"  resolver {n.resolver.address} ({n.resolver.state})"
    tip = n.cmds.get("bridge") or n.cmds.get("network", "")
    return (f'<g data-kind="network" data-name="{escape(n.name)}"><title>{escape(tip)}</title>'
            f'<rect class="{cls}" x="{LEFT + 10}" y="{y:.0f}" width="{width - 2 * LEFT - 20:.0f}" height="{BAR_H}" rx="4"/>'
            + _t(LEFT + 18, y + 17, label) + "</g>")


def svg(p: Picture) -> str:
    cs = _order(p)
    nets = p.networks
    width = max(760, LEFT * 2 + len(cs) * CW)
    host_h = TOP + len(nets) * (BAR_H + BAR_GAP)
    ctr_y = host_h + 70
    height = ctr_y + CH + 30
    bar_y = {n.name: TOP + i * (BAR_H + BAR_GAP) for i, n in enumerate(nets)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect class="host" x="{LEFT}" y="10" width="{width - 2 * LEFT}" height="{host_h}" rx="8"/>',
             _t(LEFT + 10, 30, f"{p.host}: host namespace {p.host_netns or '(the machine)'}")]
    wires: list[str] = []
    for i, c in enumerate(cs):
        x = LEFT + i * CW + CW / 2
        for k, e in enumerate(c.endpoints):
            if e.network not in bar_y:
                continue
            y0 = bar_y[e.network] + BAR_H
            cls = "wire down" if e.link == "down" else ("wire impaired" if e.impairment else "wire")
            dx = x - 30 + k * 14  # several endpoints of one container side by side
            tip = f"{c.name}:{e.ifname} {e.ip} <-> {e.host_veth}" + (" (link down)" if e.link == "down" else "") + (
                f" impaired: {e.impairment}" if e.impairment else "")
            wires.append(
                f'<g data-kind="endpoint" data-name="{escape(c.name)}:{escape(e.ifname)}"><title>{escape(tip)}\n{escape(e.cmd)}</title>'
                f'<line class="{cls}" x1="{dx:.0f}" y1="{y0:.0f}" x2="{dx:.0f}" y2="{ctr_y:.0f}"/>'
                f'<circle class="veth" cx="{dx:.0f}" cy="{y0 + 8:.0f}" r="4"/>'
                + _t(dx + 6, y0 + 12, e.host_veth) + _t(dx + 6, ctr_y - 6 - 12 * k, f"{e.ifname} {e.ip}") + "</g>"
            )
        if c.mode == "host" and "host" in bar_y:
            y0 = bar_y["host"] + BAR_H
            wires.append(f'<line class="wire" x1="{x:.0f}" y1="{y0:.0f}" x2="{x:.0f}" y2="{ctr_y:.0f}" stroke-dasharray="2 3"/>')
    parts += wires
    parts += [_bar(n, bar_y[n.name], width) for n in nets]
    for i, c in enumerate(cs):
        x = LEFT + i * CW + 8
        cls = "box" if c.state == "running" else "box stopped"
        lines = [c.name, c.state + (f" pid {c.pid}" if c.pid and c.state == "running" else ""), f"mode {c.mode}"]
        lines += [f"{e.ifname} {e.ip}" + (" DOWN" if e.link == "down" else "") for e in c.endpoints][:3]
        tip = c.cmds.get("interfaces") or c.cmds.get("exec", "")
        body = "".join(_t(x + 8, ctr_y + 16 + 14 * k, s) for k, s in enumerate(lines[:5]))
        parts.append(f'<g data-kind="container" data-name="{escape(c.name)}"><title>{escape(tip)}</title>'
                     f'<rect class="{cls}" x="{x:.0f}" y="{ctr_y:.0f}" width="{CW - 16}" height="{CH}" rx="6"/>{body}</g>')
    parts.append("</svg>")
    return "\n".join(parts)


def render(p: Picture) -> str:
    problems = p.all_problems()
    probs = "".join(f"<li class=problem>{escape(x)}</li>" for x in problems)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>nsbridge show: {escape(p.host)}</title><style>{STYLE}</style></head><body>\n"
        f"<h1>nsbridge: {escape(p.host)}</h1>"
        f"<p class=meta>{len(p.networks)} networks, {len(p.containers)} containers; state in {escape(p.root)}. "
        "Hover an element for the command that shows it by hand.</p>\n"
        + svg(p)
        + (f"\n<h2>Problems</h2><ul>{probs}</ul>" if problems else "")
        + f"\n<h2>Kernel objects</h2><pre>{escape(text.render(p))}</pre>"
        + "\n<h2>Drawn</h2><pre id=rendered></pre>"
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
