"""Read-only views for inspect, ps and ls: store reads only, no kernel, no lock."""
from __future__ import annotations

import os
TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms on every read command

from nsbridge.engine.base import EngineBase
from nsbridge.errors import NotFound
from nsbridge.model import Container, Endpoint, Network

if TYPE_CHECKING:
    from nsbridge.engine.core import Engine


class ViewOps(EngineBase):
    """Read-only views; a ViewOps alone is the Reader of read-only commands."""

    def network_ls(self: "Engine") -> list[Network]:
        self.ensure_ready()
        return self.store.networks()

    def ps(self: "Engine", all: bool = False) -> list[Container]:
        self.ensure_ready()
        out = []
        for c in self.store.containers():
            self.ps_state(c)
            if all or c.running:
                out.append(c)
        return out

    def network_inspect(self: "Engine", ref: str) -> dict:
        self.ensure_ready()
        n = self.network(ref)
        members: list[tuple[Container, Endpoint]] = []
        for e in self.store.endpoints_on(n.id):
            if e.ip:
                members.append((self.store.container(e.container_id), e))
        resolver = None
        r = self.store.resolvers().get(n.id)
        if n.has_dns:
            from nsbridge import procs

            resolver = {
                "Pid": r[0] if r else 0,
                # 127.0.0.11:53 inside each container it serves (those whose first user network this is)
                "Address": f"{r[2]}:53" if r else "",
                "ServedContainers": self._dns_served().get(n.id, 0),
                "State": "running" if r and procs.alive(r[0], r[1]) else "stopped",
                "Log": r[3] if r else "",
            }
        if n.driver == "host":
            for c in self.store.containers():
                if c.network_mode == "host" and c.running:
                    members.append((c, Endpoint(c.id, n.id, 0, endpoint_id=c.id, ip="")))
        from nsbridge.render import inspect as render

        return render.network(n, members, resolver)

    def _dns_served(self: "Engine") -> dict[str, int]:
        """Network id -> how many containers its resolver serves: each running
        container is served by the resolver of its first user network."""
        dns = {n.id for n in self.store.networks() if n.has_dns}
        first: dict[str, tuple[int, str]] = {}
        for e in self.store.all_endpoints():
            if e.ip and e.network_id in dns and (e.container_id not in first or e.position < first[e.container_id][0]):
                first[e.container_id] = (e.position, e.network_id)
        out: dict[str, int] = {}
        for _pos, nid in first.values():
            out[nid] = out.get(nid, 0) + 1
        return out

    def container_endpoints(self: "Engine", c: Container) -> list[tuple[Network, Endpoint | None]]:
        if c.network_mode == "host":
            return [(self.network("host"), None)]
        if c.network_mode.startswith("container:"):
            return []
        return [(self.store.network(e.network_id), e) for e in self.store.endpoints_of(c.id)]

    def container_inspect(self: "Engine", ref: str) -> dict:
        self.ensure_ready()
        c = self.ps_state(self.container(ref))
        from nsbridge.kernel.ns import netns_path

        from nsbridge.render import inspect as render

        return render.container(
            c, self.container_endpoints(c), self.host.container_dir(c.id), netns_path(c.netns) if c.netns else ""
        )

    def exec_entry(self: "Engine", ref: str):
        """(container, how to enter it) for `exec`; refuses stopped containers."""
        from nsbridge.errors import Conflict

        self.ensure_ready()
        c = self.ps_state(self.container(ref))
        if not c.running:
            raise Conflict(f"Container {c.id} is not running")
        return c, self._entry(c)

    def _netns_path(self: "Engine", c: Container) -> str | None:
        """The netns a container's processes join (host mode: the host's)."""
        from nsbridge.kernel import ns

        if c.network_mode == "host":
            return self.host.netns_path
        if c.network_mode.startswith("container:"):
            other = self.store.container(c.network_mode.split(":", 1)[1])
            return self._netns_path(other)
        return ns.netns_path(c.netns) if c.netns else None

    def _entry(self: "Engine", c: Container):
        from nsbridge.engine.process import Entry, entry_caps

        d = self.host.container_dir(c.id)
        caps = entry_caps(c)
        if c.network_mode == "host":
            return Entry(self.host.netns_path, None, {}, caps)
        if c.network_mode.startswith("container:"):
            other = self.store.container(c.network_mode.split(":", 1)[1])
            od = self.host.container_dir(other.id)
            binds = {f"/etc/{n}": os.path.join(od, n) for n in ("hosts", "resolv.conf", "hostname")}
            return Entry(self._netns_path(c), other.hostname, binds, caps)
        binds = {f"/etc/{n}": os.path.join(d, n) for n in ("hosts", "resolv.conf", "hostname")}
        if not c.netns:
            raise NotFound(f"container {c.name} has no network namespace")
        return Entry(self._netns_path(c), c.hostname, binds, caps)

    def ps_state(self: "Engine", c: Container) -> Container:
        """The state as it is now (a detached command may have exited since)."""
        from nsbridge import procs

        if c.running and c.pid and not procs.alive(c.pid, c.pid_start):
            c.state = "exited"
            c.exit_code = self._exit_code(c)
        elif c.running and c.netns:
            from nsbridge.kernel.ns import netns_exists

            if not netns_exists(c.netns):  # after a reboot, before any command restored things
                c.state, c.exit_code = "exited", 137
        return c

    def inspect_any(self: "Engine", ref: str, kind: str | None = None) -> dict:
        """Docker's generic `inspect`: containers first, then networks."""
        if kind in (None, "container"):
            try:
                return self.container_inspect(ref)
            except NotFound:
                if kind == "container":
                    raise
        if kind in (None, "network"):
            try:
                return self.network_inspect(ref)
            except NotFound:
                pass
        raise NotFound(f"No such object: {ref}")

    def ports_text(self: "Engine", c: Container) -> str:
        """ps's PORTS column as the docker CLI builds it (0.0.0.0:8080->80/tcp,
        0.0.0.0:7000-7001->7000-7001/tcp, 5000/tcp for exposed only); empty
        when not running. No `[::]:` twins: nsbridge publishes IPv4 only."""
        if not c.running:
            return ""
        from nsbridge import ports

        return ports.displayable_ports(ports.api_ports(c.ports, c.exposed))

    def networks_text(self: "Engine", c: Container) -> str:
        if c.network_mode in ("host", "none"):
            return c.network_mode
        if c.network_mode.startswith("container:"):
            return ""
        return ",".join(self.store.network(e.network_id).name for e in self.store.endpoints_of(c.id))

    def port_lines(self: "Engine", c: Container, port: str | None) -> list[str]:
        """`port NAME [PORT[/PROTO]]` as the docker CLI prints it (IPv4 only,
        so no `[::]:` lines); a stopped container publishes nothing."""
        from nsbridge import ports

        return ports.port_lines(c.ports if c.running else [], port, c.name)


Reader = ViewOps
