"""checks.yaml: what must hold in a running lab, graded with real probes from
inside its containers (nsbridge.probe: ICMP, TCP, UDP and DNS made from the
container's own network namespace, with its own resolv.conf and hosts file).

    checks:
      - reach: web -> db:6379/tcp          # TCP connect (a port means tcp)
      - reach: web -> db                   # ICMP echo (no port)
      - not-reach: web -> 10.1.0.5 icmp
      - reach: client -> @web%front:80     # @SERVICE: its address (on network NET)
      - reach: host -> 127.0.0.1:8080      # from the lab's host itself
      - resolve: {from: web, name: db, expect: "@db"}     # or an IP, a list, or none
      - exec: {in: web, run: "ip -o link", expect-exit: 0, expect-output: eth0, reject-output: eth1}
      - name: a label of your own          # any check may be named, and given a timeout
        reach: web -> db:5432/udp
        timeout: 2

A target that is a name is looked up from the source, as its programs would
(a name the source cannot resolve is not reached). A source or target is a
service (its first container), a container name, or `host`. One line per
check: PASS/FAIL, what was checked, and why.
"""
from __future__ import annotations

import ipaddress
import re

from nsbridge.compose.load import ComposeError, parse_yaml
from nsbridge.record import field, record

KINDS = ("reach", "not-reach", "resolve", "exec")
_REACH = re.compile(r"^\s*(?P<src>[^\s]+)\s*->\s*(?P<dst>[^\s:/]+)(?::(?P<port>\d+))?(?:/(?P<proto>\w+))?(?:\s+(?P<proto2>\w+))?\s*$")


class CheckError(ComposeError):
    """A checks.yaml that cannot be read: one line naming the check."""


@record
class Check:
    kind: str
    text: str  # as written, for the report
    name: str = ""
    src: str = ""
    dst: str = ""
    port: int = 0
    proto: str = "icmp"
    expect: list[str] | None = None  # resolve: addresses (or "@svc"); [] = must not resolve
    run: list[str] = field(default_factory=list)
    expect_exit: int | None = 0
    expect_output: list[str] = field(default_factory=list)
    reject_output: list[str] = field(default_factory=list)
    timeout: float | None = None  # seconds; None: 1 for a probe, 10 for exec


@record
class Outcome:
    check: Check
    ok: bool
    detail: str

    def line(self) -> str:
        label = self.check.name or f"{self.check.kind} {self.check.text}"
        return f"{'PASS' if self.ok else 'FAIL'}  {label}: {self.detail}"


# -- reading ---------------------------------------------------------------------------------
def load(path: str) -> list[Check]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = parse_yaml(f.read(), path)
    except OSError as e:
        raise CheckError(f"cannot read {path}: {e.strerror}") from None
    items = doc.get("checks") if isinstance(doc, dict) else doc
    if items is None:
        return []
    if not isinstance(items, list):
        raise CheckError(f"{path}: `checks` must be a list")
    return [parse_item(item, f"{path}: check {i + 1}") for i, item in enumerate(items)]


def parse_item(item: object, where: str) -> Check:
    if not isinstance(item, dict):
        raise CheckError(f"{where}: must be a mapping such as `reach: web -> db:80`")
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1:
        raise CheckError(f"{where}: needs exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    unknown = set(item) - {kind, "name", "timeout"}
    if unknown:
        raise CheckError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    v = item[kind]
    c = Check(kind, "", name=str(item.get("name") or ""))
    try:
        c.timeout = float(item["timeout"]) if "timeout" in item else None
    except (TypeError, ValueError):
        raise CheckError(f"{where}: timeout must be a number of seconds") from None
    if kind in ("reach", "not-reach"):
        _reach(c, v, where)
    elif kind == "resolve":
        _resolve(c, v, where)
    else:
        _exec(c, v, where)
    return c


def _reach(c: Check, v: object, where: str) -> None:
    m = _REACH.match(str(v)) if isinstance(v, str) else None
    if m is None:
        raise CheckError(f"{where}: {c.kind} must read `SOURCE -> TARGET[:PORT][/tcp|/udp]` or `SOURCE -> TARGET icmp`")
    c.text = " ".join(str(v).split())
    c.src, c.dst = m["src"], m["dst"]
    c.port = int(m["port"] or 0)
    proto = (m["proto"] or m["proto2"] or ("tcp" if c.port else "icmp")).lower()
    if proto not in ("icmp", "tcp", "udp"):
        raise CheckError(f"{where}: protocol {proto!r} is not icmp, tcp or udp")
    if (proto == "icmp") != (c.port == 0) or not 0 <= c.port < 65536:
        raise CheckError(f"{where}: tcp and udp need a port (1-65535), icmp has none")
    c.proto = proto


def _resolve(c: Check, v: object, where: str) -> None:
    if not isinstance(v, dict) or not v.get("from") or not v.get("name"):
        raise CheckError(f"{where}: resolve needs `from` and `name` (and optionally `expect`)")
    unknown = set(v) - {"from", "name", "expect"}
    if unknown:
        raise CheckError(f"{where}: resolve has no key {sorted(unknown)[0]!r}")
    c.src, c.dst = str(v["from"]), str(v["name"])
    exp = v.get("expect", "any")
    if exp is None or (isinstance(exp, str) and exp.lower() == "none"):
        c.expect = []
    elif exp == "any":
        c.expect = None
    else:
        c.expect = [str(x) for x in (exp if isinstance(exp, list) else [exp])]
    shown = "nothing" if c.expect == [] else (", ".join(c.expect) if c.expect else "an address")
    c.text = f"{c.dst} from {c.src} (expect {shown})"


def _exec(c: Check, v: object, where: str) -> None:
    if not isinstance(v, dict) or not v.get("in") or not v.get("run"):
        raise CheckError(f"{where}: exec needs `in` and `run`")
    unknown = set(v) - {"in", "run", "expect-exit", "expect-output", "reject-output"}
    if unknown:
        raise CheckError(f"{where}: exec has no key {sorted(unknown)[0]!r}")
    c.src = str(v["in"])
    run = v["run"]
    c.run = ["sh", "-c", run] if isinstance(run, str) else [str(x) for x in run]
    c.expect_exit = None if v.get("expect-exit", 0) in (None, "any") else int(v.get("expect-exit", 0))
    c.expect_output = _strs(v.get("expect-output"))
    c.reject_output = _strs(v.get("reject-output"))
    c.text = f"in {c.src}: {run if isinstance(run, str) else ' '.join(c.run)}"


def _strs(v: object) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def is_ipv4(s: str) -> bool:
    try:
        ipaddress.IPv4Address(s)
        return True
    except ValueError:
        return False
