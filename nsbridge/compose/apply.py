"""Running a plan through the Engine (`up`), and `down`.

Everything happens in one engine session (one lock, one netlink socket), in
the plan's order: leftovers removed, networks made, then the containers in
dependency order, each created on its first network, connected to the others
and started, so that a service's `depends_on` is running before it starts
(Compose's `service_started`; nsbridge has no health checks, so
`service_healthy` waits for the start too). An `up` that changes nothing
takes no lock and touches no kernel object: it reads the store only.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from nsbridge.compose import naming
from nsbridge.compose.model import Project, Service
from nsbridge.compose.plan import (
    CREATE, KEEP, RECREATE, REMOVE, START, XNSBRIDGE, Observed, Plan, Step, Wanted, make, network_labels,
)
from nsbridge.errors import NsbridgeError
from nsbridge.model import PREDEFINED, Network

Say = Callable[[str], None]


def observe(e) -> Observed:
    """What the store shows, read without the lock (a Reader will do)."""
    e.ensure_ready()
    containers = [e.ps_state(c) for c in e.store.containers()]
    attached: dict[str, set[str]] = {}
    for ep in e.store.all_endpoints():
        attached.setdefault(ep.container_id, set()).add(ep.network_id)
    return Observed(containers, e.store.networks(), attached)


def plan(e, project: Project) -> Plan:
    return make(project, observe(e))


def up(host, project: Project, say: Say, dry_run: bool = False) -> Plan:
    """Converge HOST's engine to PROJECT; SAY gets Compose's progress lines.
    The plan is made from the store alone (a Reader: no lock, no kernel); an
    unchanged project, or a dry run, ends there."""
    from nsbridge.engine.views import Reader

    for w in project.warnings:
        say(f"WARNING: {w}")
    if dry_run and not os.path.exists(host.db):
        # a host never used (a new lab's sandbox): a dry run does not make it
        p = make(project, Observed(networks=[Network(id=n, name=n, driver=n, created="") for n in PREDEFINED]))
    else:
        with Reader(host.root, host.netns) as r:
            p = plan(r, project)
    for w in p.warnings:
        say(f"WARNING: {w}")
    if p.changes and not dry_run:
        from nsbridge.engine.core import Engine

        with Engine(host.root, host.netns) as e:
            _converge(e, project, p, say)
        return p
    if p.changes:  # a dry run still checks the whole file as `up` would
        import shutil
        import tempfile

        from nsbridge.engine.core import Engine

        # checking needs no state: a host never used gets a scratch root, not its own
        root = host.root if os.path.exists(host.db) else tempfile.mkdtemp(prefix="nsbridge-dry-run-")
        try:
            with Engine(root, host.netns) as e:
                _specs(e, project, p, say)
        finally:
            if root != host.root:
                shutil.rmtree(root, ignore_errors=True)
    for s in p.steps:
        say(s.line(dry_run))
    return p


def _specs(e, project: Project, p: Plan, say: Say) -> dict:
    specs = {s.name: _run_spec(s.wanted, project, say) for s in p.steps if s.wanted is not None and s.action in (CREATE, RECREATE)}
    from nsbridge.record import replace

    for spec in specs.values():
        # the whole file is checked before anything is touched (on a copy: checking
        # rewrites `--network`'s extended forms, which create must still see)
        e.validate_spec(replace(spec))
    return specs


def _converge(e, project: Project, p: Plan, say: Say) -> None:
    specs = _specs(e, project, p, say)
    with e.session():
        for s in p.steps:
            _apply(e, project, s, specs.get(s.name), say)
            say(s.line())


def _apply(e, project: Project, s: Step, spec, say: Say) -> None:
    if s.kind == "network":
        if s.action in (REMOVE, RECREATE):
            e.network_rm([s.existing])
        if s.action in (CREATE, RECREATE):
            assert s.network is not None
            _network_create(e, project, s.network)
        return
    if s.action == REMOVE or (s.action == RECREATE and s.existing):
        if e.store.find_container(s.existing) is not None:
            e.rm([s.existing], force=True)
        if s.action == REMOVE:
            return
    w = s.wanted
    assert w is not None
    if s.action in (CREATE, RECREATE):
        _create(e, w, spec)
    elif s.action == START:
        e.start(w.name)
    if s.action != KEEP:
        _x_nsbridge(e, project, w, say)


def _network_create(e, project: Project, n) -> None:
    e.network_create(
        n.name, driver=n.driver, subnet=n.subnet, gateway=n.gateway, ip_range=n.ip_range,
        aux_addresses=dict(n.aux_addresses), internal=n.internal, attachable=n.attachable,
        labels=network_labels(project, n), options=dict(n.driver_opts),
    )


def _create(e, w: Wanted, spec) -> None:
    e.create(spec)
    e.start(w.name)


# -- a service as `run` options -------------------------------------------------------------------
def _run_spec(w: Wanted, project: Project, say: Say):
    """The service as `run` options: every network given at once in `--network`'s
    extended form (`name=N,alias=A,ip=IP,mac-address=M`), as Compose creates a
    container with all its endpoints."""
    from nsbridge.engine.containers import RunSpec

    s = w.service
    if w.network_mode and w.network_mode not in ("bridge", "host", "none"):
        networks = [w.network_mode]  # container:NAME
    else:
        networks = [_network_arg(a) for a in w.attach]
    kw: dict[str, object] = dict(
        image=s.image,
        cmd=_command(s, say),
        name=w.name,
        networks=networks,
        hostname=s.hostname,
        detach=True,
        interactive=s.stdin_open,
        tty=s.tty,
        env=list(s.environment),
        dns=list(s.dns),
        dns_search=list(s.dns_search),
        dns_options=list(s.dns_opt),
        add_hosts=list(s.extra_hosts),
        links=_links(w, project, say),
        publish=list(s.ports),
        expose=list(s.expose),
        restart=s.restart,
        labels=dict(w.labels),
        cap_add=list(s.cap_add),
        cap_drop=list(s.cap_drop),
        privileged=s.privileged,
    )
    return RunSpec(**kw)


def _network_arg(a) -> str:
    """One attachment as `--network`'s extended syntax (csv, as the docker CLI reads it)."""
    fields = [f"name={a.network}", *(f"alias={x}" for x in a.aliases)]
    if a.ip:
        fields.append(f"ip={a.ip}")
    if a.mac:
        fields.append(f"mac-address={a.mac}")
    if len(fields) == 1:
        return a.network
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def _command(s: Service, say: Say) -> list[str]:
    """The container's command: entrypoint + command. A command of arguments
    only (`--default-authentication-plugin=...`) is the image's entrypoint's,
    which the stand-in plays; a program the host does not have leaves the
    container to its image's stand-in (or idle), with a warning, so that a
    file written for real images still comes up."""
    cmd = [*(s.entrypoint or []), *(s.command or [])]
    if not cmd or cmd[0].startswith("-"):
        return cmd
    from nsbridge import standins
    from nsbridge.engine import process

    if standins.replaces(s.image, cmd):
        return cmd
    try:
        process.check_command(cmd, process.spec_path(s.image, s.environment))
    except NsbridgeError:
        say(f"WARNING: service {s.name}: {cmd[0]!r} is not a program on this host (nsbridge runs the host's "
            "programs, not the image's): the container runs without its command")
        return []
    return cmd


def _links(w: Wanted, project: Project, say: Say) -> list[str]:
    out = []
    for ln in w.service.links:
        target, _, alias = ln.partition(":")
        other = project.services[target]
        cname = other.container_name or naming.container_name(project.name, target, 1)
        if w.network_mode == "bridge":
            out.append(f"{cname}:{alias or target}")
        elif alias and alias != target:
            say(f"WARNING: service {w.service.name}: links alias {alias!r} needs the default bridge "
                "(on user networks use networks.<name>.aliases): ignored")
    return out


# -- x-nsbridge: impairments and link states ------------------------------------------------------
def _x_nsbridge(e, project: Project, w: Wanted, say: Say) -> None:
    s = w.service
    c = e.store.find_container(w.name)
    if c is None:
        return
    done = True
    if w.x_hash or c.labels.get(naming.XNSBRIDGE_HASH):
        for sn in s.networks:
            net = project.networks[sn.key].name
            imp = s.impair.get(sn.key)
            try:
                if imp is not None:
                    e.impair(w.name, net, rate=imp.rate, delay=imp.delay, jitter=imp.jitter, loss=imp.loss)
                elif c.labels.get(naming.XNSBRIDGE_HASH):
                    e.impair(w.name, net, clear=True)
                e.link_set(w.name, net, up=s.link_state.get(sn.key, "up") == "up")
            except (NsbridgeError, AttributeError) as err:
                why = "this nsbridge has no link impairments yet" if isinstance(err, AttributeError) else str(err)
                say(f"WARNING: service {s.name}: x-nsbridge on network {sn.key}: {why}")
                done = False
    if done and c.labels.get(naming.XNSBRIDGE_HASH, "") != w.x_hash:
        c.labels[naming.XNSBRIDGE_HASH] = w.x_hash
        with e.store.tx():
            e.store.put_container(c)


# -- down --------------------------------------------------------------------------------------------
def _targets(e, project_name: str) -> tuple[list, list]:
    seen = observe(e)
    ours = [c for c in seen.containers if c.labels.get(naming.PROJECT) == project_name]
    ours.sort(key=lambda c: c.created, reverse=True)  # the last made first: dependents before what they need
    return ours, [n for n in seen.networks if n.labels.get(naming.PROJECT) == project_name]


def down_lines(e, project_name: str, dry_run: bool = False) -> list[str]:
    """What `down` removes, as its progress lines (read from the store only)."""
    ours, nets = _targets(e, project_name)
    return [Step("container", REMOVE, c.name).line(dry_run) for c in ours] + \
        [Step("network", REMOVE, n.name).line(dry_run) for n in nets]


def down(e, project_name: str, say: Say, dry_run: bool = False) -> None:
    """Remove the project's containers (dependents first) and networks: found
    by their labels, so it works without the file too. Leaves nothing."""
    if dry_run:
        for line in down_lines(e, project_name, dry_run=True):
            say(line)
        return
    ours, nets = _targets(e, project_name)
    if not (ours or nets):
        return
    with e.session():
        for c in ours:
            if e.store.find_container(c.id) is not None:
                e.rm([c.id], force=True)
            say(Step("container", REMOVE, c.name).line())
        for n in nets:
            e.network_rm([n.id])
            say(Step("network", REMOVE, n.name).line())
