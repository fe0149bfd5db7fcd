"""The compose document (plain dictionaries from load.py) -> the model.

What nsbridge honours is read into the model with Compose's errors for what
Compose would refuse. What it does not honour (volumes, builds, secrets,
health checks, resource limits, ...) and keys it does not know are named in
one warning line per key, never silently dropped, and the rest still comes
up: compose files written for Docker, as found in the wild, work.
"""
from __future__ import annotations

import os
import shlex

from nsbridge.compose import naming
from nsbridge.compose.load import ComposeError, read_env_file
from nsbridge.compose.model import Impairment, NetworkDef, Project, Service, ServiceNetwork

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "container_name", "hostname", "networks", "network_mode",
    "ports", "expose", "dns", "dns_search", "dns_opt", "extra_hosts", "links", "depends_on", "environment",
    "env_file", "cap_add", "cap_drop", "privileged", "restart", "mac_address", "scale", "labels", "tty",
    "stdin_open", "profiles",
}
NETWORK_KEYS = {"driver", "driver_opts", "ipam", "internal", "external", "name", "attachable", "labels", "enable_ipv6", "enable_ipv4"}
TOP_KEYS = {"version", "name", "services", "networks"}

#: Compose keys nsbridge reads and does not honour, with why (one warning line each)
NOT_HONOURED = {
    "volumes": "no filesystem isolation: containers see the host's files",
    "volumes_from": "no filesystem isolation: containers see the host's files",
    "tmpfs": "no filesystem isolation: containers see the host's files",
    "secrets": "no filesystem isolation",
    "configs": "no filesystem isolation",
    "healthcheck": "no health checks: depends_on waits for the container to start",
    "deploy": "no orchestrator: one container per service (use scale:)",
    "develop": "no file watching",
    "extends": "no service inheritance",
    "include": "no included files",
    "user": "commands run as root, as in most images",
    "working_dir": "commands run in /",
    "domainname": "no NIS domain name",
}
_GENERIC = "not supported by nsbridge"


class Notes:
    """Warnings gathered per key, printed one line each: `volumes: ... (services db, web)`."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}
        self.lines: list[str] = []

    def ignored(self, key: str, where: str) -> None:
        self.by_key.setdefault(key, [])
        if where and where not in self.by_key[key]:
            self.by_key[key].append(where)

    def out(self) -> list[str]:
        lines = list(self.lines)
        for key, wheres in self.by_key.items():
            why = NOT_HONOURED.get(key.rsplit(".", 1)[-1]) or _GENERIC
            tail = f" ({', '.join(wheres)})" if wheres else ""
            lines.append(f"{key} is ignored: {why}{tail}")
        return lines


# -- small readers with Compose's messages --------------------------------------------------
def _fail(where: str, what: str) -> ComposeError:
    return ComposeError(f"{where} {what}")


def _str(v: object, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    raise _fail(where, "must be a string")


def _strs(v: object, where: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (str, int)):
        return [_str(v, where)]
    if not isinstance(v, list):
        raise _fail(where, "must be an array")
    return [_str(x, f"{where}.{i}") for i, x in enumerate(v)]


def _cmd(v: object, where: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as e:
            raise _fail(where, f"is not a valid command line: {e}") from None
    return _strs(v, where)


def _bool(v: object, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise _fail(where, "must be a boolean")


def _mapping(v: object, where: str, sep: str = "=") -> dict[str, str | None]:
    """A map or a list of KEY=VALUE (environment, labels, driver_opts)."""
    if v is None:
        return {}
    if isinstance(v, dict):
        return {str(k): (None if x is None else _str(x, f"{where}.{k}")) for k, x in v.items()}
    if isinstance(v, list):
        out: dict[str, str | None] = {}
        for i, item in enumerate(v):
            k, s, val = _str(item, f"{where}.{i}").partition(sep)
            out[k] = val if s else None
        return out
    raise _fail(where, "must be a mapping or an array")


def _dict(v: object, where: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _fail(where, "must be a mapping")
    return v


# -- top level -------------------------------------------------------------------------------
def project(doc: dict, name: str, working_dir: str, files: list[str], profiles: list[str] | None = None) -> Project:
    notes = Notes()
    for key in doc:
        if key == "version":
            notes.lines.append("the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion")
        elif key.startswith("x-") or key in TOP_KEYS:
            continue
        elif key in NOT_HONOURED or key in ("models",):
            notes.ignored(key, "")
        else:
            notes.ignored(key, "top level")
    services_doc = _dict(doc.get("services"), "services")
    if not services_doc:
        raise ComposeError("no service selected" if "services" in doc else "services must be a mapping")
    p = Project(name=name, working_dir=working_dir, files=list(files))
    for key, nd in _dict(doc.get("networks"), "networks").items():
        p.networks[str(key)] = _network(str(key), _dict(nd, f"networks.{key}"), name, notes)
    active = set(profiles or [])
    for sname, sd in services_doc.items():
        sname = str(sname)
        sd = _dict(sd, f"services.{sname}")
        if sd.get("profiles") and not active.intersection(_strs(sd.get("profiles"), f"services.{sname}.profiles")):
            continue
        p.services[sname] = _service(sname, sd, p, notes)
    if not p.services:
        raise ComposeError("no service selected")
    _references(p)
    p.warnings = notes.out()
    return p


def _network(key: str, d: dict, project_name: str, notes: Notes) -> NetworkDef:
    where = f"networks.{key}"
    for k in d:
        if k not in NETWORK_KEYS and not str(k).startswith("x-"):
            notes.ignored(f"networks.{k}", key)
    external = d.get("external", False)
    if isinstance(external, dict):  # the old `external: {name: X}` form
        d = {**d, "name": external.get("name", d.get("name"))}
        external = True
    n = NetworkDef(key=key, name="", external=_bool(external, f"{where}.external"))
    n.name = _str(d["name"], f"{where}.name") if d.get("name") else (key if n.external else naming.network_name(project_name, key))
    n.driver = _str(d.get("driver") or "bridge", f"{where}.driver")
    n.driver_opts = {k: v or "" for k, v in _mapping(d.get("driver_opts"), f"{where}.driver_opts").items()}
    n.internal = _bool(d.get("internal", False), f"{where}.internal")
    n.attachable = _bool(d.get("attachable", False), f"{where}.attachable")
    n.labels = {k: v or "" for k, v in _mapping(d.get("labels"), f"{where}.labels").items()}
    if d.get("enable_ipv6"):
        notes.ignored("networks.enable_ipv6", key)
    ipam = _dict(d.get("ipam"), f"{where}.ipam")
    configs = ipam.get("config") or []
    if not isinstance(configs, list):
        raise _fail(f"{where}.ipam.config", "must be an array")
    v4 = [c for c in configs if isinstance(c, dict) and ":" not in str(c.get("subnet", ""))]
    if len(configs) > len(v4):
        notes.ignored("networks.ipam.config (IPv6)", key)
    if len(v4) > 1:
        raise _fail(f"{where}.ipam.config", "has several IPv4 pools: nsbridge networks have one IPv4 subnet")
    if v4:
        c = v4[0]
        n.subnet = _str(c["subnet"], f"{where}.ipam.config.0.subnet") if c.get("subnet") else None
        n.gateway = _str(c["gateway"], f"{where}.ipam.config.0.gateway") if c.get("gateway") else None
        n.ip_range = _str(c["ip_range"], f"{where}.ipam.config.0.ip_range") if c.get("ip_range") else None
        aux = c.get("aux_addresses") or c.get("auxiliary_addresses") or {}
        n.aux_addresses = {str(k): _str(v, f"{where}.ipam.config.0.aux_addresses.{k}") for k, v in _dict(aux, where).items()}
    if ipam.get("driver") not in (None, "default"):
        notes.ignored("networks.ipam.driver", key)
    return n


# -- services ----------------------------------------------------------------------------------
def _service(name: str, d: dict, p: Project, notes: Notes) -> Service:
    where = f"services.{name}"
    for k in d:
        if k in SERVICE_KEYS or str(k).startswith("x-"):
            continue
        notes.ignored(k, name)
    s = Service(name=name)
    s.image = _str(d["image"], f"{where}.image") if d.get("image") else ""
    if "build" in d:
        if s.image:
            notes.ignored("build", name)
        else:
            s.built, s.image = True, naming.built_image(p.name, name)
            notes.lines.append(f"service {name!r} has only build: nsbridge builds no images; it runs as image {s.image!r}")
    elif not s.image:
        raise ComposeError(f'service "{name}" has neither an image nor a build context specified: invalid compose project')
    s.command = _cmd(d.get("command"), f"{where}.command")
    s.entrypoint = _cmd(d.get("entrypoint"), f"{where}.entrypoint")
    s.container_name = _str(d["container_name"], f"{where}.container_name") if d.get("container_name") else None
    s.hostname = _str(d["hostname"], f"{where}.hostname") if d.get("hostname") else None
    s.network_mode = _str(d["network_mode"], f"{where}.network_mode") if d.get("network_mode") else None
    s.ports = [_port(x, f"{where}.ports.{i}") for i, x in enumerate(_list(d.get("ports"), f"{where}.ports"))]
    s.expose = _strs(d.get("expose"), f"{where}.expose")
    s.dns = _strs(d.get("dns"), f"{where}.dns")
    s.dns_search = _strs(d.get("dns_search"), f"{where}.dns_search")
    s.dns_opt = _strs(d.get("dns_opt"), f"{where}.dns_opt")
    s.extra_hosts = _extra_hosts(d.get("extra_hosts"), f"{where}.extra_hosts")
    s.links = _strs(d.get("links"), f"{where}.links")
    s.depends_on = _depends_on(d.get("depends_on"), f"{where}.depends_on")
    s.environment = _environment(d, where, p.working_dir)
    s.cap_add = _strs(d.get("cap_add"), f"{where}.cap_add")
    s.cap_drop = _strs(d.get("cap_drop"), f"{where}.cap_drop")
    s.privileged = _bool(d.get("privileged", False), f"{where}.privileged")
    s.restart = _str(d.get("restart") or "no", f"{where}.restart")
    s.mac_address = _str(d["mac_address"], f"{where}.mac_address") if d.get("mac_address") else None
    s.labels = {k: v or "" for k, v in _mapping(d.get("labels"), f"{where}.labels").items()}
    s.tty = _bool(d.get("tty", False), f"{where}.tty")
    s.stdin_open = _bool(d.get("stdin_open", False), f"{where}.stdin_open")
    scale = d.get("scale", 1)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
        raise _fail(f"{where}.scale", "must be a non-negative integer")
    s.scale = scale
    if s.scale > 1 and s.container_name:
        raise ComposeError(
            f'services.scale: can\'t set container_name and {name} as container name must be unique: invalid compose project'
        )
    s.networks = _service_networks(d, where, s, p)
    _x_nsbridge(d.get("x-nsbridge"), where, s)
    return s


def _list(v: object, where: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _fail(where, "must be an array")
    return v


def _port(v: object, where: str) -> str:
    """Short syntax as is; the long syntax as `-p` writes it."""
    if not isinstance(v, dict):
        return _str(v, where)
    target = v.get("target")
    if target is None:
        raise _fail(where, "needs a target port")
    out = _str(target, f"{where}.target")
    published = v.get("published")
    if published not in (None, ""):
        out = f"{_str(published, f'{where}.published')}:{out}"
        if v.get("host_ip"):
            out = f"{_str(v['host_ip'], f'{where}.host_ip')}:{out}"
    elif v.get("host_ip"):
        out = f"{_str(v['host_ip'], f'{where}.host_ip')}::{out}"
    proto = v.get("protocol")
    return f"{out}/{_str(proto, f'{where}.protocol')}" if proto else out


def _extra_hosts(v: object, where: str) -> list[str]:
    if isinstance(v, dict):
        return [f"{k}:{_str(x, f'{where}.{k}')}" for k, x in v.items()]
    out = []
    for item in _strs(v, where):
        host, sep, ip = item.partition("=")  # Compose takes HOST=IP as well as HOST:IP
        out.append(f"{host}:{ip}" if sep else item)
    return out


def _depends_on(v: object, where: str) -> dict[str, str]:
    if isinstance(v, dict):
        out = {}
        for k, cfg in v.items():
            cond = _dict(cfg, f"{where}.{k}").get("condition", "service_started")
            if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
                raise _fail(f"{where}.{k}.condition", f'must be one of service_started, service_healthy, service_completed_successfully, not "{cond}"')
            out[str(k)] = cond
        return out
    return {x: "service_started" for x in _strs(v, where)}


def _environment(d: dict, where: str, working_dir: str) -> list[str]:
    env: dict[str, str | None] = {}
    files = d.get("env_file")
    for i, item in enumerate(_list(files, f"{where}.env_file") if isinstance(files, list) else ([files] if files else [])):
        path, required = (item.get("path"), item.get("required", True)) if isinstance(item, dict) else (item, True)
        full = os.path.join(working_dir, _str(path, f"{where}.env_file.{i}"))
        if not os.path.isfile(full):
            if required:
                raise ComposeError(f'env file {full} not found: stat {full}: no such file or directory')
            continue
        env.update(read_env_file(full))
    env.update(_mapping(d.get("environment"), f"{where}.environment"))
    out = []
    for k, v in env.items():
        if v is None:
            if k in os.environ:  # `- NAME` takes the value from the shell, or is left out
                out.append(f"{k}={os.environ[k]}")
        else:
            out.append(f"{k}={v}")
    return out


def _service_networks(d: dict, where: str, s: Service, p: Project) -> list[ServiceNetwork]:
    v = d.get("networks")
    if s.network_mode is not None:
        if v:
            raise ComposeError(f'service {s.name} declares mutually exclusive `network_mode` and `networks`: invalid compose project')
        return []
    if v is None:
        entries: dict = {"default": None}
    elif isinstance(v, list):
        entries = {str(x): None for x in v}
    else:
        entries = _dict(v, f"{where}.networks")
    out = []
    for key, cfg in entries.items():
        key = str(key)
        if key not in p.networks:
            if key != "default":
                raise ComposeError(f'service "{s.name}" refers to undefined network {key}: invalid compose project')
            p.networks["default"] = NetworkDef(key="default", name=naming.network_name(p.name, "default"))
        cfg = _dict(cfg, f"{where}.networks.{key}")
        sn = ServiceNetwork(key=key, aliases=_strs(cfg.get("aliases"), f"{where}.networks.{key}.aliases"))
        if cfg.get("ipv4_address"):
            sn.ipv4_address = _str(cfg["ipv4_address"], f"{where}.networks.{key}.ipv4_address")
        if cfg.get("mac_address"):
            sn.mac_address = _str(cfg["mac_address"], f"{where}.networks.{key}.mac_address")
        prio = cfg.get("priority", 0)
        if not isinstance(prio, int) or isinstance(prio, bool):
            raise _fail(f"{where}.networks.{key}.priority", "must be an integer")
        sn.priority = prio
        out.append(sn)
    # compose-go's NetworksByPriority: the order endpoints are attached in (eth0 first)
    return sorted(out, key=lambda n: (-n.priority, n.key))


def _x_nsbridge(v: object, where: str, s: Service) -> None:
    """x-nsbridge: {impair: {NET: {rate, delay, jitter, loss}}, link: {NET: up|down}}."""
    x = _dict(v, f"{where}.x-nsbridge")
    keys = {n.key for n in s.networks}
    for k in x:
        if k not in ("impair", "link"):
            raise _fail(f"{where}.x-nsbridge", f"has no key {k!r} (impair, link)")
    for net, cfg in _dict(x.get("impair"), f"{where}.x-nsbridge.impair").items():
        w = f"{where}.x-nsbridge.impair.{net}"
        if net not in keys:
            raise _fail(w, f"names a network service {s.name} is not on")
        cfg = _dict(cfg, w)
        bad = set(cfg) - {"rate", "delay", "jitter", "loss"}
        if bad:
            raise _fail(w, f"has no key {sorted(bad)[0]!r} (rate, delay, jitter, loss)")
        s.impair[str(net)] = Impairment(**{k: _str(val, f"{w}.{k}") for k, val in cfg.items() if val is not None})
    for net, state in _dict(x.get("link"), f"{where}.x-nsbridge.link").items():
        w = f"{where}.x-nsbridge.link.{net}"
        if net not in keys:
            raise _fail(w, f"names a network service {s.name} is not on")
        state = _str(state, w).lower()
        if state not in ("up", "down"):
            raise _fail(w, "must be up or down")
        s.link_state[str(net)] = state


# -- references between services -----------------------------------------------------------------
def _references(p: Project) -> None:
    for s in p.services.values():
        for dep in s.depends_on:
            if dep not in p.services:
                raise ComposeError(f'service "{s.name}" depends on undefined service "{dep}": invalid compose project')
        for ln in s.links:
            target = ln.split(":", 1)[0]
            if target not in p.services:
                raise ComposeError(f'service "{s.name}" links to undefined service "{target}": invalid compose project')
        mode = s.network_mode or ""
        if mode.startswith("service:") and mode[8:] not in p.services:
            raise ComposeError(f'service "{s.name}" network_mode refers to undefined service "{mode[8:]}": invalid compose project')
    order(p)  # a cycle is an error


def dependencies(s: Service) -> list[str]:
    """What must run before S: depends_on, links, network_mode service:X."""
    deps = list(s.depends_on)
    deps += [ln.split(":", 1)[0] for ln in s.links if ln.split(":", 1)[0] not in deps]
    if (s.network_mode or "").startswith("service:") and s.network_mode[8:] not in deps:
        deps.append(s.network_mode[8:])
    return deps


def order(p: Project) -> list[str]:
    """Services in dependency order (file order among equals), as Compose starts them."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise ComposeError(f"dependency cycle detected: {' -> '.join(cycle)}")
        visiting.append(name)
        for dep in dependencies(p.services[name]):
            visit(dep)
        visiting.pop()
        done.append(name)

    for name in p.services:
        visit(name)
    return done
