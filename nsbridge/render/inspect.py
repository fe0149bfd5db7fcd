"""Docker-shaped JSON for `network inspect` and `inspect` (field names and
order as Docker's API types marshal them; docs/architecture.md says which
Docker version's). Pure: takes model objects."""
from __future__ import annotations


from nsbridge.model import Container, Endpoint, Network

ZERO_TIME = "0001-01-01T00:00:00Z"


def network(n: Network, members: list[tuple[Container, Endpoint]], resolver: dict[str, object] | None = None) -> dict:
    if n.ipam is not None:
        cfg: dict[str, object] = {"Subnet": n.ipam.subnet}
        if n.ipam.ip_range:
            cfg["IPRange"] = n.ipam.ip_range
        # the default bridge too, as Docker's documentation and tutorials print it
        cfg["Gateway"] = n.ipam.gateway
        if n.ipam.aux_addresses:
            cfg["AuxiliaryAddresses"] = dict(n.ipam.aux_addresses)
        configs = [cfg]
    else:
        configs = []
    containers = {}
    for c, e in sorted(members, key=lambda m: m[0].id):
        if not e.ip:
            continue
        containers[c.id] = {
            "Name": c.name,
            "EndpointID": e.endpoint_id,
            "MacAddress": e.mac,
            "IPv4Address": f"{e.ip}/{n.prefixlen()}",
            "IPv6Address": "",
        }
    out = {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if n.predefined else {}, "Config": configs},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(n.options),
        "Labels": dict(n.labels),
    }
    if resolver is not None:
        # nsbridge-specific: the embedded resolver serving this network
        out["NsbridgeResolver"] = resolver
    return out


def _endpoint_settings(net: Network, e: Endpoint | None, c: Container) -> dict:
    live = e is not None and bool(e.ip)
    aliases = None
    if e is not None and not net.predefined:
        aliases = list(e.aliases) + [c.short_id]
    return {
        "IPAMConfig": ({"IPv4Address": e.ip_requested} if e and e.ip_requested else {}) if not net.predefined else None,
        "Links": list(c.net_links.get(net.id, ())) or None,
        "Aliases": aliases,
        "MacAddress": e.mac if live and e else "",
        "DriverOpts": None if net.predefined else (
            {"com.docker.network.endpoint.sysctls": ",".join(c.endpoint_sysctls[net.id])}
            if net.id in c.endpoint_sysctls else {}
        ),
        "NetworkID": net.id,
        "EndpointID": e.endpoint_id if live and e else "",
        "Gateway": net.ipam.gateway if live and net.ipam else "",
        "IPAddress": e.ip if live and e else "",
        "IPPrefixLen": net.prefixlen() if live and net.ipam else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        # once each, as Docker's (compose gives the container name as an alias too)
        "DNSNames": (list(dict.fromkeys([c.name, *(e.aliases if e else []), c.short_id])) if live and net.has_dns else None),
    }


def ports_map(c: Container) -> tuple[dict, dict]:
    """(NetworkSettings.Ports, HostConfig.PortBindings) as Docker shows them:
    keys sorted as Go marshals a map; Ports empty when not running, exposed
    ports without a binding null. nsbridge publishes IPv4 only, so there is no
    {"HostIp": "::"} twin of each 0.0.0.0 binding. PortBindings says what was
    asked for (`-p 80`: HostPort "", `-p 8000-8010:80`: "8000-8010"); Ports
    the host port picked at creation, which stays across restarts. With -P,
    ports exposed without a -p of their own are not in PortBindings (Docker
    allocates those at start)."""
    from nsbridge import ports

    from_publish_all = set(c.exposed) if c.publish_all else set()
    running, bindings, _ = ports.port_maps(c.ports, c.exposed, c.running, from_publish_all)
    return running, bindings


def exposed_ports(c: Container) -> dict | None:
    """Config.ExposedPorts: --expose and -p ports (Docker adds the published ones)."""
    from nsbridge import ports

    _, _, exposed = ports.port_maps(c.ports, c.exposed, c.running, set())
    return exposed or None


def container(c: Container, eps: list[tuple[Network, Endpoint | None]], root_dir: str, netns_path: str) -> dict:
    shown = c.shown_command
    path, args = (shown[0], shown[1:]) if shown else ("", [])
    networks = {net.name: _endpoint_settings(net, e, c) for net, e in eps}
    primary = next((s for s in networks.values() if s["IPAddress"]), None)
    ports, bindings = ports_map(c)
    status = c.state
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": path,
        "Args": args,
        "State": {
            "Status": status,
            "Running": c.running,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": c.pid if c.running else 0,
            "ExitCode": c.exit_code,
            "Error": "",
            "StartedAt": c.started_at,
            "FinishedAt": c.finished_at,
        },
        "Image": c.image,
        "ResolvConfPath": f"{root_dir}/resolv.conf",
        "HostnamePath": f"{root_dir}/hostname",
        "HostsPath": f"{root_dir}/hosts",
        "LogPath": f"{root_dir}/log",
        "Name": "/" + c.name,
        "RestartCount": 0,
        "Driver": "nsbridge",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": c.network_mode,
            "PortBindings": bindings,
            "RestartPolicy": {"Name": c.restart_policy, "MaximumRetryCount": 0},
            "AutoRemove": c.auto_remove,
            "CapAdd": list(c.cap_add) or None,
            "CapDrop": list(c.cap_drop) or None,
            "Dns": list(c.dns),
            "DnsOptions": list(c.dns_options),
            "DnsSearch": list(c.dns_search),
            "ExtraHosts": list(c.extra_hosts) or None,
            "Links": [f"/{ln.split(':')[0]}:/{c.name}/{ln.split(':')[-1]}" for ln in c.links] or None,
            "Privileged": c.privileged,
            "PublishAllPorts": c.publish_all,
        },
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": "",
            "AttachStdin": c.interactive,
            "AttachStdout": not False,
            "AttachStderr": True,
            "ExposedPorts": exposed_ports(c),
            "Tty": c.tty,
            "OpenStdin": c.interactive,
            "StdinOnce": False,
            "Env": list(c.env) or None,
            "Cmd": list(c.cmd or c.image_cmd) or None,
            "Image": c.image,
            "Volumes": None,
            "WorkingDir": "",
            "Entrypoint": list(c.entrypoint) or None,
            **({"MacAddress": c.mac_address} if c.mac_address else {}),  # omitempty, as Docker's
            "OnBuild": None,
            "Labels": dict(c.labels),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": c.id if c.netns else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": netns_path,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": primary["EndpointID"] if primary else "",
            "Gateway": primary["Gateway"] if primary else "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": primary["IPAddress"] if primary else "",
            "IPPrefixLen": primary["IPPrefixLen"] if primary else 0,
            "IPv6Gateway": "",
            "MacAddress": primary["MacAddress"] if primary else "",
            "Networks": networks,
        },
    }
