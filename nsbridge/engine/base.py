"""What every engine object has: the host, the store, the lock, lookups.

Read-only commands (ls, ps, inspect, exec) use a Reader built on this alone,
so they import neither the operations nor pyroute2 (Python start-up is the
cost of a one-shot CLI: bare 9 ms, `import pyroute2` 110-140 ms; docs/architecture.md).
"""
from __future__ import annotations

import os

from nsbridge.engine.host import Host
from nsbridge.engine.lock import HostLock
from nsbridge.errors import NotFound
from nsbridge.model import Container, Network
from nsbridge.state.store import Store


class EngineBase:
    def __init__(self, root: str | None = None, host_netns: str | None = None) -> None:
        self.host = Host.from_env(root, host_netns)
        self.host.prepare_root()
        self.store = Store(self.host.db)
        self.lock = HostLock(self.host.lock)
        self._k = None
        self._depth = 0
        self._attached = None
        #: one-line warnings for the CLI to print (Docker's WARNING: lines)
        self.warnings: list[str] = []

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_ready(self) -> None:
        """First use of a state root: record the predefined networks (read-only
        commands call this so that `network ls` shows them from the start)."""
        if self.store.get_meta("initialized") == "1" and self._resolvers_alive() and self._watcher_alive():
            return
        # first use, or a resolver died: a full session sets up / restarts
        # (DNS promises "restarted by any engine call that finds it dead")
        from nsbridge.engine.core import Engine

        if isinstance(self, Engine):
            with self._session():
                pass
        else:
            with Engine(self.host.root, self.host.netns) as e:
                with e._session():
                    pass

    def _resolvers_alive(self) -> bool:
        """One SELECT and a stat per user bridge: cheap enough for every read."""
        from nsbridge import procs

        return all(procs.alive(pid, start) for pid, start, _a, _l in self.store.resolvers().values())

    def _watcher_alive(self) -> bool:
        """The cluster watcher runs if this host joined a cluster store (meta
        reads only: the cluster modules are not imported on the read path)."""
        if self.store.get_meta("cluster.store") is None:
            return True
        import json

        from nsbridge import procs

        w = json.loads(self.store.get_meta("cluster.watcher") or "{}")
        return procs.alive(w.get("pid", 0), w.get("start", 0))

    def network(self, ref: str) -> Network:
        n = self.store.find_network(ref)
        if n is None:
            raise NotFound(f"network {ref} not found")
        return n

    def container(self, ref: str) -> Container:
        c = self.store.find_container(ref)
        if c is None:
            raise NotFound(f"No such container: {ref}")
        return c

    def _exit_code(self, c: Container, default: int = 0) -> int:
        try:
            with open(os.path.join(self.host.container_dir(c.id), "exitcode")) as f:
                return int(f.read().strip() or default)
        except (OSError, ValueError):
            return default
