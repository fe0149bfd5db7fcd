"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker
writes them (shared/reference/docker/containers.txt). Pure text building;
the engine writes the results under the state root."""
from __future__ import annotations

from dataclasses import dataclass, field

HOSTS_HEAD = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass
class HostsEntry:
    ip: str
    names: list[str]


@dataclass
class Upstream:
    """What the host's resolv.conf says (its nameservers, search and options)."""

    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> Upstream:
    up = Upstream()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            # A loopback resolver on the host is unreachable from a container.
            if not parts[1].startswith("127.") and parts[1] != "::1":
                up.nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            up.search = parts[1:]
        elif parts[0] == "options":
            up.options += parts[1:]
    return up


def hosts_file(extra: list[HostsEntry], own: HostsEntry | None) -> str:
    """Docker's order: the fixed head, --add-host and --link entries, then the
    container's own address and hostname."""
    out = HOSTS_HEAD
    for e in extra:
        out += f"{e.ip}\t{' '.join(e.names)}\n"
    if own is not None:
        out += f"{own.ip}\t{' '.join(own.names)}\n"
    return out


def resolv_conf(
    embedded: str | None, upstream: Upstream, dns: list[str], dns_search: list[str], dns_options: list[str]
) -> str:
    """User networks get the embedded resolver (the network's gateway) and
    Docker's ndots:0; the default bridge gets the host's nameservers."""
    search = dns_search or upstream.search
    lines = []
    if search:
        lines.append("search " + " ".join(search))
    if embedded:
        lines.append(f"nameserver {embedded}")
    else:
        lines += [f"nameserver {ns}" for ns in (dns or upstream.nameservers)]
    options = list(dns_options or upstream.options)
    if embedded and not any(o.startswith("ndots:") for o in options):
        options.insert(0, "ndots:0")
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
