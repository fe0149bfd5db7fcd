"""`compose config` (the file as nsbridge understood it, in Compose's
normalised form: long port syntax, maps for environment and networks, every
network with its engine name) and `compose ps`."""
from __future__ import annotations

from nsbridge.compose.model import Project, Service
from nsbridge.record import asdict


def config_dict(p: Project) -> dict:
    out: dict = {"name": p.name, "services": {}}
    for name in sorted(p.services):
        out["services"][name] = _service(p.services[name])
    nets = {}
    for key in sorted(p.networks):
        n = p.networks[key]
        d: dict = {"name": n.name}
        if n.driver != "bridge":
            d["driver"] = n.driver
        if n.driver_opts:
            d["driver_opts"] = dict(sorted(n.driver_opts.items()))
        if n.subnet or n.gateway or n.ip_range or n.aux_addresses:
            cfg = {k: v for k, v in (("subnet", n.subnet), ("gateway", n.gateway), ("ip_range", n.ip_range)) if v}
            if n.aux_addresses:
                cfg["aux_addresses"] = dict(sorted(n.aux_addresses.items()))
            d["ipam"] = {"config": [cfg]}
        for flag in ("internal", "external", "attachable"):
            if getattr(n, flag):
                d[flag] = True
        if n.labels:
            d["labels"] = dict(sorted(n.labels.items()))
        nets[key] = d
    if nets:
        out["networks"] = nets
    return out


def _service(s: Service) -> dict:
    from nsbridge import ports

    d: dict = {}
    if s.command is not None:
        d["command"] = list(s.command)
    if s.container_name:
        d["container_name"] = s.container_name
    if s.depends_on:
        d["depends_on"] = {k: {"condition": v, "required": True} for k, v in sorted(s.depends_on.items())}
    if s.entrypoint is not None:
        d["entrypoint"] = list(s.entrypoint)
    if s.environment:
        d["environment"] = {k: (v if sep else None) for k, sep, v in (e.partition("=") for e in s.environment)}
    for key in ("cap_add", "cap_drop", "dns", "dns_opt", "dns_search", "expose", "extra_hosts", "links"):
        if getattr(s, key):
            d[key] = list(getattr(s, key))
    if s.hostname:
        d["hostname"] = s.hostname
    d["image"] = s.image
    if s.labels:
        d["labels"] = dict(sorted(s.labels.items()))
    if s.mac_address:
        d["mac_address"] = s.mac_address
    if s.network_mode:
        d["network_mode"] = s.network_mode
    if s.networks:
        nets: dict = {}
        for n in s.networks:
            cfg = {k: v for k, v in (("aliases", n.aliases), ("ipv4_address", n.ipv4_address),
                                     ("mac_address", n.mac_address), ("priority", n.priority)) if v}
            nets[n.key] = cfg or None
        d["networks"] = dict(sorted(nets.items()))
    if s.ports:
        out = []
        for raw in s.ports:
            for spec in ports.parse_publish(raw):
                pd: dict = {"mode": "ingress", "target": spec.container_port}
                if spec.host_port:
                    end = spec.host_port_end
                    pd["published"] = f"{spec.host_port}-{end}" if end > spec.host_port else str(spec.host_port)
                if spec.host_ip:
                    pd["host_ip"] = spec.host_ip
                pd["protocol"] = spec.proto
                out.append(pd)
        d["ports"] = out
    if s.privileged:
        d["privileged"] = True
    if s.restart != "no":
        d["restart"] = s.restart
    if s.scale != 1:
        d["scale"] = s.scale
    if s.stdin_open:
        d["stdin_open"] = True
    if s.tty:
        d["tty"] = True
    x: dict = {}
    if s.impair:
        x["impair"] = {k: {f: v for f, v in asdict(imp).items() if v is not None} for k, imp in sorted(s.impair.items())}
    if s.link_state:
        x["link"] = dict(sorted(s.link_state.items()))
    if x:
        d["x-nsbridge"] = x
    return d


def config_yaml(p: Project) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, data: str):
        # quote what a reader would take for another type ("8080", "22:22", "yes")
        style = None
        if _scalar(data):
            try:
                if yaml.safe_load(data) != data:
                    style = '"'
            except yaml.YAMLError:
                style = '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, _str)
    return yaml.dump(config_dict(p), Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _scalar(s: str) -> bool:
    return bool(s) and "\n" not in s and not s.startswith(("[", "{", "&", "*", "!", "|", ">", "%", "@", "`"))
