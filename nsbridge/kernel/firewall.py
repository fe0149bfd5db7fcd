"""iptables rules as data, applied in one `iptables-restore --noflush` batch.

Layout (Docker's, with our names; see DESIGN.md "Firewall"):
  filter: FORWARD -> NSBRIDGE-USER, NSBRIDGE-ISOLATION-STAGE-1, NSBRIDGE-FORWARD
          NSBRIDGE (accepts toward published ports)
  nat:    PREROUTING/OUTPUT (local destinations) -> NSBRIDGE (DNAT)
          POSTROUTING -> NSBRIDGE-POSTROUTING (masquerade)
Per-network rules live in our chains, so rule count grows with networks and
published ports, never with containers. Rule specs are written in the exact
form iptables-save prints, so that "is it there?" is a set lookup. Every
operation's deletions go in the same single batch: each nf_tables delete
transaction costs 10-25 ms whatever its size.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from nsbridge.errors import KernelError

TAG = "-m comment --comment nsbridge"

FILTER_CHAINS = (
    "NSBRIDGE",
    "NSBRIDGE-USER",
    "NSBRIDGE-ISOLATION-STAGE-1",
    "NSBRIDGE-ISOLATION-STAGE-2",
    "NSBRIDGE-FORWARD",
)
NAT_CHAINS = ("NSBRIDGE", "NSBRIDGE-POSTROUTING")


@dataclass(frozen=True)
class Rule:
    table: str  # filter | nat
    chain: str
    spec: str  # as iptables-save prints it after "-A CHAIN "
    insert: bool = False  # -I CHAIN 1 instead of -A: goes before the chain's RETURN

    def key(self) -> tuple[str, str, str]:
        return (self.table, self.chain, self.spec)


def base_rules() -> list[Rule]:
    """Host-level jumps into our chains and the chains' final RETURNs."""
    return [
        # Inserted at the top in reverse, so FORWARD reads USER, ISOLATION, FORWARD.
        Rule("filter", "FORWARD", f"{TAG} -j NSBRIDGE-FORWARD", insert=True),
        Rule("filter", "FORWARD", f"{TAG} -j NSBRIDGE-ISOLATION-STAGE-1", insert=True),
        Rule("filter", "FORWARD", f"{TAG} -j NSBRIDGE-USER", insert=True),
        Rule("filter", "NSBRIDGE-USER", "-j RETURN"),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", "-j RETURN"),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-2", "-j RETURN"),
        Rule("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL {TAG} -j NSBRIDGE"),
        Rule("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL {TAG} -j NSBRIDGE"),
        Rule("nat", "POSTROUTING", f"{TAG} -j NSBRIDGE-POSTROUTING"),
    ]


def network_rules(bridge: str, subnet: str, *, icc: bool, masquerade: bool, internal: bool) -> list[Rule]:
    """The rules one bridge network owns."""
    rules = [
        Rule("filter", "NSBRIDGE-FORWARD", f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        Rule("filter", "NSBRIDGE-FORWARD", f"-o {bridge} -j NSBRIDGE"),
        Rule("filter", "NSBRIDGE-FORWARD", f"-i {bridge} -o {bridge} -j {'ACCEPT' if icc else 'DROP'}"),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"-i {bridge} ! -o {bridge} -j NSBRIDGE-ISOLATION-STAGE-2", True),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-2", f"-o {bridge} -j DROP", True),
        Rule("nat", "NSBRIDGE", f"-i {bridge} -j RETURN", True),
    ]
    if internal:
        rules += [
            Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"! -s {subnet} -o {bridge} -j DROP", True),
            Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"! -d {subnet} -i {bridge} -j DROP", True),
        ]
    else:
        rules.append(Rule("filter", "NSBRIDGE-FORWARD", f"-i {bridge} ! -o {bridge} -j ACCEPT"))
        if masquerade:
            rules.append(Rule("nat", "NSBRIDGE-POSTROUTING", f"-s {subnet} ! -o {bridge} -j MASQUERADE"))
    return rules


def port_rules(
    bridge: str, container_ip: str, container_port: int, proto: str, host_ip: str, host_port: int
) -> list[Rule]:
    """DNAT and accept for one published port (kernel only, no userland proxy).

    The hairpin MASQUERADE lets a container reach itself through the host
    address; the loopback MASQUERADE makes replies to 127.0.0.1 sources
    (with route_localnet on) return through the host.
    """
    dst = f"-d {host_ip}/32 " if host_ip and host_ip != "0.0.0.0" else ""
    m = f"-p {proto} -m {proto}"
    return [
        Rule(
            "nat",
            "NSBRIDGE",
            f"{dst}! -i {bridge} {m} --dport {host_port} -j DNAT --to-destination {container_ip}:{container_port}",
        ),
        Rule(
            "filter",
            "NSBRIDGE",
            f"-d {container_ip}/32 ! -i {bridge} -o {bridge} {m} --dport {container_port} -j ACCEPT",
        ),
        Rule(
            "nat",
            "NSBRIDGE-POSTROUTING",
            f"-s {container_ip}/32 -d {container_ip}/32 {m} --dport {container_port} -j MASQUERADE",
        ),
        Rule(
            "nat",
            "NSBRIDGE-POSTROUTING",
            f"-s 127.0.0.0/8 -d {container_ip}/32 {m} --dport {container_port} -j MASQUERADE",
        ),
    ]


def _run(args: list[str], data: str | None = None) -> str:
    try:
        p = subprocess.run(args, input=data, capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelError(f"{args[0]} not found: install the iptables package") from None
    if p.returncode != 0:
        raise KernelError(f"{args[0]} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return p.stdout


class Firewall:
    """Reads and changes the ruleset of the namespace the calling thread is in."""

    def save(self) -> str:
        return _run(["iptables-save"])

    def present(self) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
        """(rules, chains) currently in the kernel, as keys."""
        rules: set[tuple[str, str, str]] = set()
        chains: set[tuple[str, str]] = set()
        table = ""
        for line in self.save().splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.add((table, line[1:].split()[0]))
            elif line.startswith("-A "):
                chain, _, spec = line[3:].partition(" ")
                rules.add((table, chain, spec))
        return rules, chains

    def apply(self, add: Iterable[Rule] = (), delete: Iterable[Rule] = (), *, check: bool = True) -> None:
        """One iptables-restore batch. With check, rules already present are
        not added twice and rules already gone are not deleted (idempotent)."""
        add, delete = list(add), list(delete)
        if not add and not delete:
            return
        chains_needed = {(r.table, r.chain) for r in add}
        if check:
            rules, chains = self.present()
            add = [r for r in add if r.key() not in rules]
            delete = [r for r in delete if r.key() in rules]
            new_chains = {c for c in chains_needed if c not in chains}
        else:
            new_chains = set()
        if not add and not delete and not new_chains:
            return
        self.restore(self.render(add, delete, new_chains))

    @staticmethod
    def render(add: list[Rule], delete: list[Rule], new_chains: set[tuple[str, str]]) -> str:
        out: list[str] = []
        for table in ("filter", "nat"):
            lines = [f":{c} - [0:0]" for t, c in sorted(new_chains) if t == table]
            lines += [f"-D {r.chain} {r.spec}" for r in delete if r.table == table]
            lines += [
                f"-I {r.chain} 1 {r.spec}" if r.insert else f"-A {r.chain} {r.spec}" for r in add if r.table == table
            ]
            if lines:
                out += [f"*{table}", *lines, "COMMIT"]
        return "\n".join(out) + "\n"

    def restore(self, batch: str) -> None:
        try:
            _run(["iptables-restore", "-w", "5", "--noflush"], batch)
        except KernelError as e:
            raise KernelError(f"{e.message} (batch: {batch.strip().splitlines()[1:3]})") from None

    def ensure_base(self) -> None:
        rules, chains = self.present()
        new_chains = {("filter", c) for c in FILTER_CHAINS} | {("nat", c) for c in NAT_CHAINS}
        new_chains -= chains
        add = [r for r in base_rules() if r.key() not in rules]
        if add or new_chains:
            self.restore(self.render(add, [], new_chains))

    def remove_all(self) -> None:
        """Remove every rule and chain of ours (system reset)."""
        rules, chains = self.present()
        ours_f = set(FILTER_CHAINS)
        ours_n = set(NAT_CHAINS)
        dels = [
            Rule(t, c, s)
            for (t, c, s) in rules
            if "--comment nsbridge" in s and c not in (ours_f if t == "filter" else ours_n)
        ]
        out: list[str] = []
        for table, ours in (("filter", ours_f), ("nat", ours_n)):
            present = [c for c in ours if (table, c) in chains]
            lines = [f"-D {r.chain} {r.spec}" for r in dels if r.table == table]
            lines += [f"-F {c}" for c in present] + [f"-X {c}" for c in present]
            if lines:
                out += [f"*{table}", *lines, "COMMIT"]
        if out:
            self.restore("\n".join(out) + "\n")
