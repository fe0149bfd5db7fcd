"""Running a lab's checks against the live lab: probes from inside its
containers (nsbridge.probe), exec for the rest. Probes run side by side (each
thread enters its source's namespace only to open its socket); exec checks
run one after the other."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from nsbridge.compose import naming
from nsbridge.errors import NsbridgeError
from nsbridge.lab.checks import Check, Outcome, is_ipv4
from nsbridge.record import record


@record
class Source:
    label: str
    netns: str | None  # path of the namespace probes are made from
    resolv: str
    hosts: str | None
    container: object = None  # the Container, for exec and `@` lookups


class Grader:
    def __init__(self, e, project: str, networks: dict[str, str]) -> None:
        """E: a Reader or Engine of the lab's host; NETWORKS: compose key -> engine name."""
        self.e = e
        self.project = project
        self.networks = networks
        e.ensure_ready()

    # -- where things are -----------------------------------------------------------------
    def container(self, ref: str):
        """A service's first container, or a container by name; None if neither."""
        for c in self.e.store.containers():
            if c.labels.get(naming.PROJECT) == self.project and c.labels.get(naming.SERVICE) == ref \
                    and c.labels.get(naming.NUMBER, "1") == "1":
                return self.e.ps_state(c)
        c = self.e.store.find_container(ref)
        return self.e.ps_state(c) if c is not None else None

    def source(self, ref: str) -> Source:
        h = self.e.host
        if ref == "host" and self.container(ref) is None:
            return Source("host", h.netns_path, h.upstream_resolv, "/etc/hosts")
        c = self.container(ref)
        if c is None:
            raise NsbridgeError(f"no service or container {ref!r} in this lab")
        if not c.running:
            raise NsbridgeError(f"{ref} is not running")
        _, entry = self.e.exec_entry(c.id)
        return Source(ref, entry.netns, entry.binds.get("/etc/resolv.conf", h.upstream_resolv),
                      entry.binds.get("/etc/hosts", "/etc/hosts"), c)

    def address(self, ref: str, src: Source) -> str:
        """`@svc` or `@svc%net`: the address nsbridge gave it (on NET, or on a
        network shared with the source, or its first)."""
        name, _, net = ref[1:].partition("%")
        c = self.container(name)
        if c is None or not c.running:
            raise NsbridgeError(f"{name} is not running" if c else f"no service or container {name!r} in this lab")
        eps = [ep for ep in self.e.store.endpoints_of(c.id) if ep.ip]
        if net:
            want = self.e.store.find_network(self.networks.get(net, net))
            eps = [ep for ep in eps if want is not None and ep.network_id == want.id]
            if not eps:
                raise NsbridgeError(f"{name} has no address on network {net}")
        shared = set()
        if src.container is not None:
            shared = {ep.network_id for ep in self.e.store.endpoints_of(src.container.id) if ep.ip}
        eps.sort(key=lambda ep: (ep.network_id not in shared, ep.position))
        if not eps:
            raise NsbridgeError(f"{name} has no address of its own (network mode {c.network_mode})")
        return eps[0].ip

    # -- checks -------------------------------------------------------------------------------
    def run(self, checks: list[Check]) -> list[Outcome]:
        """Every check, in order. What needs the store is looked up here, in
        this thread (SQLite's connection is this thread's); the probes then
        run side by side."""
        jobs = {}
        for c in checks:
            if c.kind != "exec":
                jobs[id(c)] = self._guard(lambda c=c: self._prepare(c))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {k: pool.submit(self._guard, j) if callable(j) else None for k, j in jobs.items()}
        out = []
        for c in checks:
            if c.kind == "exec":
                out.append(_outcome(c, self._guard(lambda c=c: self._exec(c))))
            else:
                f = futures[id(c)]
                out.append(_outcome(c, f.result() if f is not None else jobs[id(c)]))
        return out

    @staticmethod
    def _guard(fn):
        try:
            return fn()
        except NsbridgeError as err:
            return _Failed(str(err))

    def _prepare(self, c: Check):
        """A function doing the check's probes (no store access), or an Outcome now."""
        src = self.source(c.src)
        target = self.address(c.dst, src) if c.dst.startswith("@") else c.dst
        want = None
        if c.kind == "resolve" and c.expect:
            want = {self.address(x, src) if x.startswith("@") else x for x in c.expect}
        return lambda: _probe(c, src, target, want)

    def _exec(self, c: Check) -> Outcome:
        import subprocess

        src = self.source(c.src)
        t = c.timeout or 10
        try:
            p = self.e.exec(src.container.id, c.run, timeout=t)
        except subprocess.TimeoutExpired:
            return Outcome(c, False, f"still running after {t:g} s")
        out = (p.stdout or b"").decode(errors="replace") + (p.stderr or b"").decode(errors="replace")
        problems = []
        if c.expect_exit is not None and p.returncode != c.expect_exit:
            problems.append(f"exit code {p.returncode}, not {c.expect_exit}")
        problems += [f"output lacks {x!r}" for x in c.expect_output if x not in out]
        problems += [f"output has {x!r}" for x in c.reject_output if x in out]
        if problems:
            last = (out.strip().splitlines() or [""])[-1]
            return Outcome(c, False, "; ".join(problems) + (f" (last line: {last[:80]!r})" if last else ""))
        has = f", output has {', '.join(map(repr, c.expect_output))}" if c.expect_output else ""
        return Outcome(c, True, f"exit code {p.returncode}{has}")


class _Failed(Exception):
    """A check that could not be made (no such service, not running): its outcome is a failure."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _outcome(c: Check, r) -> Outcome:
    return Outcome(c, False, r.detail) if isinstance(r, _Failed) else r


def _probe(c: Check, src: Source, target: str, want: set[str] | None) -> Outcome:
    from nsbridge import probe

    t = c.timeout or 1.0
    if c.kind == "resolve":
        r = probe.resolve(src.netns, target, src.resolv, src.hosts, timeout=t)
        if c.expect == []:
            return Outcome(c, not r.ok, r.detail if not r.ok else f"resolved to {', '.join(r.addresses)}")
        if not r.ok or want is None:
            return Outcome(c, r.ok, r.detail)
        missing = want - set(r.addresses)
        return Outcome(c, not missing, r.detail + (f", not {', '.join(sorted(missing))}" if missing else ""))
    note = ""
    if not is_ipv4(target):  # a name: looked up from the source, as its programs would
        r = probe.resolve(src.netns, target, src.resolv, src.hosts, timeout=t)
        if not r.ok:
            note = f"{target} does not resolve from {src.label} ({r.detail})"
            return Outcome(c, c.kind == "not-reach", note)
        target, note = r.addresses[0], f"{target} is {r.addresses[0]}: "
    if c.proto == "icmp":
        r = probe.icmp(src.netns, target, t)
    elif c.proto == "tcp":
        r = probe.tcp(src.netns, target, c.port, t)
    else:
        r = probe.udp(src.netns, target, c.port, b"nsbridge lab check\n", t)
    said = r.detail + (f" in {r.rtt_ms:.2f} ms" if r.ok and r.rtt_ms is not None else "")
    if c.kind == "reach":
        return Outcome(c, r.ok, note + said)
    return Outcome(c, not r.ok, note + ("reached: " if r.ok else "not reached: ") + said)
