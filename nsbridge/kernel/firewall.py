"""iptables rules as data, applied in one `iptables-restore --noflush` batch.

Layout (Docker's, with our names; docs/architecture.md, "Firewall"):
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

from nsbridge.errors import KernelError
from nsbridge.record import record

TAG = "-m comment --comment nsbridge"

FILTER_CHAINS = (
    "NSBRIDGE",
    "NSBRIDGE-USER",
    "NSBRIDGE-ISOLATION-STAGE-1",
    "NSBRIDGE-ISOLATION-STAGE-2",
    "NSBRIDGE-FORWARD",
)
NAT_CHAINS = ("NSBRIDGE", "NSBRIDGE-POSTROUTING")


@record(frozen=True)
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
        # Published ports answer on 127.0.0.1 through route_localnet on the bridges
        # (kernel-only, no proxy); that setting would also let a container send to the
        # host's loopback services: drop 127/8 arriving from anywhere but lo unless it
        # belongs to a connection we translated (as kube-proxy does, CVE-2020-8558).
        Rule(
            "filter",
            "INPUT",
            f"-d 127.0.0.0/8 ! -i lo -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {TAG} -j DROP",
            insert=True,
        ),
    ]


def network_rules(bridge: str, subnet: str, *, icc: bool, masquerade: bool, internal: bool) -> list[Rule]:
    """The rules one bridge network owns."""
    rules = [
        Rule("filter", "NSBRIDGE-FORWARD", f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        Rule("filter", "NSBRIDGE-FORWARD", f"-o {bridge} -j NSBRIDGE"),
        Rule("filter", "NSBRIDGE-FORWARD", f"-i {bridge} -o {bridge} -j {'ACCEPT' if icc else 'DROP'}"),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"-i {bridge} ! -o {bridge} -j NSBRIDGE-ISOLATION-STAGE-2", True),
        Rule("filter", "NSBRIDGE-ISOLATION-STAGE-2", f"-o {bridge} -j DROP", True),
        # Containers reach published ports through the host's addresses (hairpin, no
        # proxy), so the DNAT rules see the bridges' traffic too (Docker's `-i BRIDGE
        # -j RETURN` is there for its userland proxy). DNS needs no exception: the
        # embedded resolver answers on 127.0.0.11 inside each container.
    ]
    if internal:
        rules += [
            Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"! -s {subnet} -o {bridge} -j DROP", True),
            Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"! -d {subnet} -i {bridge} -j DROP", True),
        ]
    else:
        # A published port is for everyone: a container of another network reaching
        # it through the host's address is translated (state DNAT, both directions)
        # and must pass isolation, as it does through Docker's proxy. Listed after the
        # jump to STAGE-2 so that, inserted at the top, it comes before it.
        rules.append(
            Rule("filter", "NSBRIDGE-ISOLATION-STAGE-1", f"-i {bridge} -m conntrack --ctstate DNAT -j RETURN", True)
        )
        rules.append(Rule("filter", "NSBRIDGE-FORWARD", f"-i {bridge} ! -o {bridge} -j ACCEPT"))
        if masquerade:
            rules.append(Rule("nat", "NSBRIDGE-POSTROUTING", f"-s {subnet} ! -o {bridge} -j MASQUERADE"))
        # Published ports, for the whole network rather than per port (DESIGN: a published
        # port costs one DNAT and one accept): the host's own 127.0.0.1:PORT, routed to the
        # bridge by route_localnet, comes back from the bridge's address; and a container
        # reaching a published port of its own bridge (itself included: hairpin) is seen
        # coming from the gateway, as Docker's userland proxy shows it.
        rules.append(Rule("nat", "NSBRIDGE-POSTROUTING", f"-s 127.0.0.0/8 -o {bridge} -j MASQUERADE"))
        rules.append(
            Rule("nat", "NSBRIDGE-POSTROUTING", f"-s {subnet} -o {bridge} -m conntrack --ctstate DNAT -j MASQUERADE")
        )
    return rules


def port_rules(
    bridge: str, container_ip: str, container_port: int, proto: str, host_ip: str, host_port: int
) -> list[Rule]:
    """One DNAT and one accept for one published port (kernel only, no userland
    proxy), in iptables-save's form; the masquerades it needs are the network's.

    The DNAT has no `! -i BRIDGE` (Docker's with its proxy): containers reach
    published ports through the host's addresses (hairpin), as Docker does with
    `--userland-proxy=false`.
    """
    dst = f"-d {host_ip}/32 " if host_ip and host_ip != "0.0.0.0" else ""
    m = f"-p {proto} -m {proto}"
    return [
        Rule("nat", "NSBRIDGE", f"{dst}{m} --dport {host_port} -j DNAT --to-destination {container_ip}:{container_port}"),
        Rule("filter", "NSBRIDGE", f"-d {container_ip}/32 ! -i {bridge} -o {bridge} {m} --dport {container_port} -j ACCEPT"),
    ]


def enable_route_localnet(ifname: str) -> None:
    """Let the host route 127.0.0.1-sourced packets out of IFNAME (a bridge), so
    that DNAT of 127.0.0.1:PORT works without a proxy. Per interface, in the
    namespace the calling thread is in; written by path since bridge names may
    contain dots. The INPUT rule of base_rules() keeps containers off the
    host's loopback services."""
    with open(f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet", "w") as f:
        f.write("1")


def _run(args: list[str], data: str | None = None) -> str:
    try:
        p = subprocess.run(args, input=data, capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelError(f"{args[0]} not found: install the iptables package") from None
    if p.returncode != 0:
        raise KernelError(f"{args[0]} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return p.stdout


#: a known batch deleting more rules than this reads the ruleset to delete by position
BULK_DELETE = 16


def _numbered(order: dict[tuple[str, str], list[str]], delete: list[Rule]) -> list[Rule]:
    """DELETE as `-D CHAIN N` (a Rule whose spec is the position), from the last
    position up in each chain so that none shifts another; rules not there are dropped."""
    where: dict[tuple[str, str], dict[str, list[int]]] = {}  # chain -> spec -> positions left, last first
    numbered = []
    for r in delete:
        at = where.get((r.table, r.chain))
        if at is None:
            at = where[(r.table, r.chain)] = {}
            for i, spec in reversed(list(enumerate(order.get((r.table, r.chain), []), 1))):
                at.setdefault(spec, []).append(i)
        left = at.get(r.spec)
        if left:
            numbered.append(Rule(r.table, r.chain, str(left.pop())))  # the first one, as -D SPEC would
    numbered.sort(key=lambda r: (r.table, r.chain, -int(r.spec)))
    return numbered


class Firewall:
    """Reads and changes the ruleset of the namespace the calling thread is in."""

    def save(self) -> str:
        return _run(["iptables-save"])

    def listing(self) -> tuple[dict[tuple[str, str], list[str]], set[tuple[str, str]]]:
        """(the rules of each chain in order, the chains) currently in the kernel."""
        order: dict[tuple[str, str], list[str]] = {}
        chains: set[tuple[str, str]] = set()
        table = ""
        for line in self.save().splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.add((table, line[1:].split()[0]))
            elif line.startswith("-A "):
                chain, _, spec = line[3:].partition(" ")
                order.setdefault((table, chain), []).append(spec)
        return order, chains

    def present(self) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
        """(rules, chains) currently in the kernel, as keys."""
        order, chains = self.listing()
        return {(t, c, spec) for (t, c), specs in order.items() for spec in specs}, chains

    def apply(self, add: Iterable[Rule] = (), delete: Iterable[Rule] = (), *, check: bool = True,
              known: bool = False) -> None:
        """One iptables-restore batch. With check, rules already present are
        not added twice and rules already gone are not deleted (idempotent).

        KNOWN: the caller holds the lock and its store says ADD are absent and
        DELETE present (published ports), so a batch with few deletions goes
        without reading the ruleset first: iptables-save grows with every
        published port on the host (50 ms at a thousand) while appending does
        not. Should the kernel disagree, the batch fails and is redone checked.

        Once the ruleset is read, deletions go by position: iptables-nft compares
        a `-D CHAIN SPEC` with every rule before its match (ms each in a chain of
        thousands: removing a container with 5,000 published ports took minutes),
        while `-D CHAIN N` compares nothing."""
        add, delete = list(add), list(delete)
        if not add and not delete:
            return
        if known and check and len(delete) <= BULK_DELETE:
            try:
                self.restore(self.render(add, delete, set()))
                return
            except KernelError:
                pass  # a stray or missing rule, or a chain gone: read the ruleset and redo
        if not check:
            self.restore(self.render(add, delete, set()))
            return
        order, chains = self.listing()
        present = {(t, c, spec) for (t, c), specs in order.items() for spec in specs}
        add = [r for r in add if r.key() not in present]
        new_chains = {(r.table, r.chain) for r in add} - chains
        delete = _numbered(order, delete)
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
