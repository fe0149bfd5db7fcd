"""The plan that converges a running project to its file. Pure: it takes the
project (model.py) and what the store shows (containers and networks with
their com.docker.compose.* labels) and returns the steps, in order.

As Compose decides: a container whose config hash differs from the file's
is recreated; one that matches is left alone (started if it had stopped); a
network whose config hash differs is removed with the project's containers
on it and made again, those containers with it. Beyond Compose's `up`, what
the file no longer names (a removed service, a removed network) goes too, so
that `up` makes the running lab exactly the file. `up --dry-run` prints the
plan; an unchanged lab plans nothing but "Running".
"""
from __future__ import annotations

from nsbridge.compose import naming
from nsbridge.compose.model import NetworkDef, Project, Service
from nsbridge.compose.parse import order
from nsbridge.errors import NotFound
from nsbridge.model import Container, Network
from nsbridge.record import asdict, field, record

#: step kinds, in the words Compose prints (`✔ Container lab-web-1  Started`)
CREATE, RECREATE, START, KEEP, REMOVE, XNSBRIDGE = "Created", "Recreated", "Started", "Running", "Removed", "Configured"


@record
class Attach:
    network: str  # the engine's network name
    key: str  # the compose key ("" for bridge/host/none)
    ip: str | None = None
    aliases: list[str] = field(default_factory=list)
    mac: str | None = None


@record
class Wanted:
    """One container the file asks for, with what creating it takes."""

    name: str
    service: Service
    number: int
    attach: list[Attach]  # first: given at create; the others: connected before start
    network_mode: str  # "" (networks), bridge, host, none, container:NAME
    labels: dict[str, str]
    config_hash: str
    x_hash: str  # x-nsbridge's impairments and link states


@record
class Step:
    kind: str  # "network" | "container"
    action: str  # CREATE, RECREATE, START, KEEP, REMOVE, XNSBRIDGE
    name: str
    network: NetworkDef | None = None
    wanted: Wanted | None = None
    existing: str = ""  # ID of what is there now (removed, recreated or kept)

    def line(self, dry_run: bool = False) -> str:
        """Compose's progress line: ` ✔ Container lab-web-1  Started`."""
        what = "Network" if self.kind == "network" else "Container"
        pre = "DRY-RUN MODE -  " if dry_run else ""
        # a new container's last event in Compose's output is its start
        done = START if self.kind == "container" and self.action == CREATE else self.action
        return f" \u2714 {pre}{what} {self.name}  {done}"


@record
class Observed:
    """What the store shows: containers and networks, and which networks
    each container is attached to (container id -> network ids)."""

    containers: list[Container] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    attached: dict[str, set[str]] = field(default_factory=dict)


@record
class Plan:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.action != KEEP]


# -- what the file asks for -------------------------------------------------------------------
def network_hash(n: NetworkDef) -> str:
    return naming.config_hash({k: v for k, v in asdict(n).items() if k != "key"})


def network_labels(project: Project, n: NetworkDef) -> dict[str, str]:
    return {
        **n.labels,
        naming.PROJECT: project.name,
        naming.NETWORK: n.key,
        naming.VERSION: naming.COMPOSE_VERSION,
        naming.CONFIG_HASH: network_hash(n),
    }


def _service_hash(project: Project, s: Service) -> str:
    """Compose's ServiceHash: the service's settings without depends_on and
    scale; plus the networks' engine names (a renamed network moves it)."""
    d = asdict(s)
    for k in ("depends_on", "scale", "impair", "link_state"):
        d.pop(k)
    d["network_names"] = [project.networks[n.key].name for n in s.networks]
    return naming.config_hash(d)


def _x_hash(s: Service) -> str:
    if not s.impair and not s.link_state:
        return ""
    return naming.config_hash({"impair": asdict(s)["impair"], "link": s.link_state})[:16]


def wanted(project: Project) -> list[Wanted]:
    out = []
    for sname in order(project):
        s = project.services[sname]
        h = _service_hash(project, s)
        for number in range(1, s.scale + 1):
            name = s.container_name or naming.container_name(project.name, sname, number)
            attach, mode = _attachments(project, s, name)
            labels = {
                **s.labels,
                naming.PROJECT: project.name,
                naming.SERVICE: sname,
                naming.NUMBER: str(number),
                naming.ONEOFF: "False",
                naming.CONFIG_HASH: h,
                naming.IMAGE: s.image,
                naming.WORKING_DIR: project.working_dir,
                naming.CONFIG_FILES: ",".join(project.files),
                naming.VERSION: naming.COMPOSE_VERSION,
                naming.DEPENDS_ON: ",".join(f"{d}:{c}:false" for d, c in s.depends_on.items()),
            }
            out.append(Wanted(name, s, number, attach, mode, labels, h, _x_hash(s)))
    return out


def _attachments(project: Project, s: Service, cname: str) -> tuple[list[Attach], str]:
    mode = s.network_mode or ""
    if mode in ("host", "none", "bridge"):
        return [Attach(mode, "", mac=s.mac_address if mode == "bridge" else None)], mode
    if mode.startswith("service:"):
        other = project.services[mode[8:]]
        return [], "container:" + (other.container_name or naming.container_name(project.name, other.name, 1))
    if mode.startswith("container:"):
        return [], mode
    out = []
    for sn in s.networks:
        n = project.networks[sn.key]
        # the predefined bridge (an external `bridge`) takes no aliases, as Docker's default bridge
        aliases = [] if n.external and n.name == "bridge" else list(dict.fromkeys([cname, s.name, *sn.aliases]))
        out.append(Attach(n.name, sn.key, sn.ipv4_address, aliases, sn.mac_address))
    if out and s.mac_address and not out[0].mac:
        out[0].mac = s.mac_address
    return out, ""


# -- against what runs ---------------------------------------------------------------------------
def make(project: Project, seen: Observed) -> Plan:
    """The steps from what the store shows to PROJECT."""
    plan = Plan()
    containers, networks = seen.containers, seen.networks
    ours = [c for c in containers if c.labels.get(naming.PROJECT) == project.name]
    by_name = {n.name: n for n in networks}
    want = wanted(project)
    want_names = {w.name for w in want}
    gone: set[str] = set()  # container names removed by the plan so far

    for c in ours:  # services the file no longer has
        if c.name not in want_names:
            plan.steps.append(Step("container", REMOVE, c.name, existing=c.id))
            gone.add(c.name)

    net_steps = []
    recreated_nets: set[str] = set()
    for key, nd in project.networks.items():
        have = by_name.get(nd.name)
        if nd.external:
            if have is None:
                raise NotFound(f"network {nd.name} declared as external, but could not be found")
            continue
        if have is None:
            net_steps.append(Step("network", CREATE, nd.name, network=nd))
        elif have.labels.get(naming.PROJECT) != project.name or have.labels.get(naming.CONFIG_HASH, "") in ("", network_hash(nd)):
            if have.labels.get(naming.PROJECT) != project.name:  # Compose's warning; it uses the network
                plan.warnings.append(f"a network with name {nd.name} exists but was not created for project "
                                     f'"{project.name}". Set `external: true` to use an existing network')
            net_steps.append(Step("network", KEEP, nd.name, network=nd, existing=have.id))
        else:
            net_steps.append(Step("network", RECREATE, nd.name, network=nd, existing=have.id))
            recreated_nets.add(have.id)
    wanted_nets = {nd.name for nd in project.networks.values()}
    stale_nets = [n for n in networks if n.labels.get(naming.PROJECT) == project.name and n.name not in wanted_nets]

    leaving = recreated_nets | {n.id for n in stale_nets}
    for c in ours:  # the project's containers on a network that goes away are made again
        if c.name in want_names and c.name not in gone and leaving & seen.attached.get(c.id, set()):
            plan.steps.append(Step("container", REMOVE, c.name, existing=c.id))
            gone.add(c.name)
    plan.steps += net_steps
    plan.steps += [Step("network", REMOVE, n.name, existing=n.id) for n in stale_nets]

    existing = {c.name: c for c in ours}
    renewed: set[str] = set()  # services whose containers are new (their sharers follow)
    for w in want:
        c = existing.get(w.name)
        follows = _follows(w, renewed)
        if c is None or w.name in gone:
            action = RECREATE if c is not None else CREATE
            plan.steps.append(Step("container", action, w.name, wanted=w, existing=c.id if c else ""))
            renewed.add(w.service.name)
        elif c.labels.get(naming.CONFIG_HASH) != w.config_hash or follows:
            plan.steps.append(Step("container", RECREATE, w.name, wanted=w, existing=c.id))
            renewed.add(w.service.name)
        elif not c.running:
            plan.steps.append(Step("container", START, w.name, wanted=w, existing=c.id))
        elif c.labels.get(naming.XNSBRIDGE_HASH, "") != w.x_hash:
            plan.steps.append(Step("container", XNSBRIDGE, w.name, wanted=w, existing=c.id))
        else:
            plan.steps.append(Step("container", KEEP, w.name, wanted=w, existing=c.id))
    return plan


def _follows(w: Wanted, renewed: set[str]) -> bool:
    """A container sharing a renewed service's namespace, or linking to it on
    the default bridge, is made again with it (its namespace or /etc/hosts
    entry pointed at the old one)."""
    mode = w.service.network_mode or ""
    if mode.startswith("service:") and mode[8:] in renewed:
        return True
    return w.network_mode == "bridge" and any(ln.split(":", 1)[0] in renewed for ln in w.service.links)
