"""The command that shows a thing by hand, next to it in `show` and `why`:
what a student types to see the same kernel object (`ip -n ...`, `bridge
link`, `iptables -t nat -S NSBRIDGE`), in the host namespace nsbridge uses
(a sandbox host's name goes in with `ip -n` / `ip netns exec`)."""
from __future__ import annotations

import shlex


class Hand:
    def __init__(self, host_netns: str | None) -> None:
        self.host = host_netns

    @staticmethod
    def _q(args: tuple[str, ...]) -> str:
        return " ".join(shlex.quote(a) for a in args)

    # -- in the host namespace -------------------------------------------------------
    def ip(self, *args: str) -> str:
        return f"ip -n {self.host} {self._q(args)}" if self.host else f"ip {self._q(args)}"

    def bridge(self, *args: str) -> str:
        return f"bridge -n {self.host} {self._q(args)}" if self.host else f"bridge {self._q(args)}"

    def run(self, *args: str) -> str:
        """Any other program, run in the host namespace."""
        return f"ip netns exec {self.host} {self._q(args)}" if self.host else self._q(args)

    def iptables(self, table: str, chain: str, counters: bool = False) -> str:
        if counters:
            return self.run("iptables", "-t", table, "-L", chain, "-v", "-x", "-n")
        return self.run("iptables", *(("-t", table) if table != "filter" else ()), "-S", chain)

    # -- in a container's namespace ------------------------------------------------------
    @staticmethod
    def ip_in(netns: str, *args: str) -> str:
        return f"ip -n {shlex.quote(netns)} {Hand._q(args)}"

    @staticmethod
    def tc_in(netns: str, *args: str) -> str:
        return f"tc -n {shlex.quote(netns)} {Hand._q(args)}"

    @staticmethod
    def run_in(netns: str, *args: str) -> str:
        return f"ip netns exec {shlex.quote(netns)} {Hand._q(args)}"
