"""A throwaway sandbox host for tests, the demo and the benchmarks: a fresh
network namespace playing the host and a temporary state root, removed
afterwards with a check that nothing was left behind."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile

from nsbridge.record import field, record


@record
class Sandbox:
    name: str = field(default_factory=lambda: "nsbt" + secrets.token_hex(3))
    root: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.root:
            self.root = tempfile.mkdtemp(prefix=f"nsbridge-{self.name}-")
        # NSBRIDGE_SANDBOX_ONLY: a command or child of ours that loses the other two is
        # refused rather than run on the machine's own namespace (engine/host.py)
        self.env = {**os.environ, "NSBRIDGE_ROOT": self.root, "NSBRIDGE_HOST_NETNS": self.name,
                    "NSBRIDGE_SANDBOX_ONLY": "1"}

    # -- running nsbridge -------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "nsbridge", *args]

    def cli(self, *args: str, check: bool = False, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """Run `nsbridge ARGS` against this sandbox; text output captured."""
        p = subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"nsbridge {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p

    def engine(self):
        from nsbridge.engine.core import Engine

        return Engine(self.root, self.name)

    def host_run(self, *cmd: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        """A command in the sandbox host's namespace (e.g. iptables-save, ip link)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, timeout=timeout, check=check
        )

    @property
    def engine_id(self) -> str:
        """The id its engine marks its kernel objects with (engine/owner.py)."""
        from nsbridge.engine.host import Host

        return Host(os.path.abspath(self.root), self.name).engine_id

    def netns_names(self) -> list[str]:
        """The sandbox host and the namespaces marked as its engine's containers
        (never guessed from the name: `lab-2-web` may be sandbox `lab-2`'s)."""
        from nsbridge.engine import owner

        eid = self.engine_id
        mine = owner.our_namespaces(eid, self.name + "-", ("container", "overlay"))
        if os.path.exists(f"/run/netns/{self.name}"):
            m = owner.read(self.name)  # (anyone's but another engine's: a leftover of ours)
            if m is None or (m.kind == "host" and m.engine == eid):
                mine.append(self.name)
        return sorted(mine)

    def processes(self) -> list[str]:
        """Processes still pointing at this sandbox's state root (resolvers, commands)."""
        import re

        from nsbridge import procs

        # the root as a whole path: /tmp/x-lab is not in /tmp/x-lab-2/state.db
        root = re.compile(re.escape(self.root) + r"(?=/|\s|$)")
        out = []
        for pid, argv in procs.cmdlines():
            line = b" ".join(argv).decode(errors="replace")
            if root.search(line):
                out.append(f"{pid}: {line.strip()}")
        return out

    # -- teardown ---------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """`system reset -f`, then report anything of ours still there."""
        self.cli("system", "reset", "-f", timeout=120)
        leaks = [f"netns {n}" for n in self.netns_names()]
        leaks += [f"process {p}" for p in self.processes()]
        if os.path.exists(self.root):
            leaks.append(f"state root {self.root}")
            shutil.rmtree(self.root, ignore_errors=True)
        return leaks

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
