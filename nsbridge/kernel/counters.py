"""The ruleset with its packet counters (`iptables-save -c`), for `show`
and `why`: one process for the whole ruleset, in the namespace the calling
thread is in (a child inherits the thread's network namespace)."""
from __future__ import annotations

from nsbridge.errors import KernelError
from nsbridge.record import record


@record(frozen=True)
class Counted:
    table: str
    chain: str
    spec: str  # as iptables-save prints it after "-A CHAIN "; "" for a chain's policy
    packets: int
    bytes: int
    policy: str = ""  # the built-in chain's policy (ACCEPT/DROP) for a policy line

    @property
    def target(self) -> str:
        if self.policy:
            return self.policy
        _, _, after = self.spec.rpartition("-j ")
        return after.split()[0] if after else ""

    def key(self) -> tuple[str, str, str]:
        return (self.table, self.chain, self.spec)

    def text(self) -> str:
        return f"-P {self.chain} {self.policy}" if self.policy else f"-A {self.chain} {self.spec}"


def _count(field: str) -> tuple[int, int]:
    pk, _, by = field.strip("[]").partition(":")
    return int(pk or 0), int(by or 0)


def parse(text: str) -> list[Counted]:
    """iptables-save -c output: every rule and built-in chain policy with its counters."""
    out: list[Counted] = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            name, policy, *rest = line[1:].split()
            if policy != "-" and rest:
                out.append(Counted(table, name, "", *_count(rest[0]), policy=policy))
        elif line.startswith("["):
            counts, _, rule = line.partition(" ")
            if rule.startswith("-A "):
                chain, _, spec = rule[3:].partition(" ")
                out.append(Counted(table, chain, spec, *_count(counts)))
    return out


def save() -> list[Counted]:
    import subprocess

    try:
        p = subprocess.run(["iptables-save", "-c"], capture_output=True, text=True)
    except FileNotFoundError:
        raise KernelError("iptables-save not found: install the iptables package") from None
    if p.returncode != 0:
        raise KernelError(f"iptables-save -c failed: {p.stderr.strip() or p.returncode}")
    return parse(p.stdout)


def increased(before: list[Counted], after: list[Counted]) -> list[tuple[Counted, int]]:
    """Rules and policies whose packet counter went up, with by how much, in
    the order of AFTER (the kernel's order within each chain)."""
    old = {c.key(): c.packets for c in before}
    return [(c, c.packets - old[c.key()]) for c in after if c.key() in old and c.packets > old[c.key()]]
