"""What `why` answers: reachable or not, the cause (one of the names below),
one sentence, and the evidence with the commands that show it by hand; and
its text form."""
from __future__ import annotations

from nsbridge.record import field, record

# causes
REACHABLE = ""
NOT_RUNNING = "not-running"
NAME = "name"
ISOLATION = "no-common-network"
INTERNAL = "internal"
ICC = "icc-disabled"
NO_ROUTE = "no-route"
NOT_LISTENING = "not-listening"
LINK_DOWN = "link-down"
IMPAIRED = "impairment"
NO_HOST = "no-such-host"
FIREWALL = "firewall"
NO_ANSWER = "no-answer"


@record
class Evidence:
    what: str  # probe, name, rule, routes, link, qdisc, sockets, neighbour, note
    text: str
    cmd: str = ""


@record
class Verdict:
    a: str
    b: str
    proto: str
    port: int | None
    target: str = ""  # the address probed
    reachable: bool = False
    cause: str = ""
    sentence: str = ""
    evidence: list[Evidence] = field(default_factory=list)


def render(v: Verdict) -> str:
    how = v.proto + (f" port {v.port}" if v.port else "")
    head = f"why {v.a} -> {v.b} ({how}" + (f" to {v.target}" if v.target and v.target != v.b else "") + ")"
    out = [head, ("  REACHABLE: " if v.reachable else "  NOT REACHABLE: ") + v.sentence]
    if v.cause:
        out.append(f"  cause: {v.cause}")
    if v.evidence:
        out.append("  evidence:")
        for e in v.evidence:
            out.append(f"    {e.what:<10} {e.text}")
            if e.cmd:
                out.append(f"    {'':<10} $ {e.cmd}")
    return "\n".join(out) + "\n"
