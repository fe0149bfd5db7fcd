"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker
writes them (what Docker 20.10 wrote in each kind of network; libnetwork's etchosts and
resolvconf packages). Pure text building; the engine writes the results under
the state root.

/etc/hosts: the fixed head; the --add-host entries, then the --link entries
(`ALIAS HOSTNAME NAME`, the name left out when it is the alias); then one line
per network the container is attached to, in attach order, with its address
there and its hostname (`FQDN SHORT` when the hostname has a dot), as Docker
does on `run` and on each `network connect` (and, since moby#48857, removes on
`disconnect`).

resolv.conf: `search`, then `nameserver`, then `options` lines (Docker's
resolvconf.Build). On a user network the only nameserver is Docker's embedded
resolver address, 127.0.0.11 (answered inside the container by its first user
network's resolver: nsbridge/dns/embedded.py), with the host's (or
--dns-search/--dns-option) search and options, and `ndots:0` appended unless an
ndots option is already there; `--dns` servers, IPv6 ones included (as Docker
does since 25.0), are then the resolver's upstreams for that container, not
resolv.conf lines. Elsewhere (default bridge, none, host) the nameservers are
--dns or the host's, minus loopback ones a container cannot reach. Unlike Docker, no 8.8.8.8 fallback is invented when the
host has none: a sandbox host has no route out, and nsbridge never picks a
public resolver on the user's behalf.
"""
from __future__ import annotations

from nsbridge.record import field, record

HOSTS_HEAD = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@record
class HostsEntry:
    ip: str
    names: list[str]


@record
class Upstream:
    """What the host's resolv.conf says (its nameservers, search and options)."""

    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def _loopback(ns: str) -> bool:
    return ns.startswith("127.") or ns in ("::1", "0:0:0:0:0:0:0:1")


def parse_resolv_conf(text: str) -> Upstream:
    """nameserver lines (loopback ones dropped: unreachable from a container, as
    Docker filters them), the last search line, every options line."""
    up = Upstream()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            if not _loopback(parts[1]):
                up.nameservers.append(parts[1])
        elif parts[0] == "search":
            up.search = parts[1:]
        elif parts[0] == "options":
            up.options += parts[1:]
    return up


def own_names(hostname: str) -> list[str]:
    """Docker's main record: `FQDN SHORT` for a dotted hostname, else the hostname."""
    short, dot, _ = hostname.partition(".")
    return [hostname, short] if dot and short else [hostname]


def link_names(alias: str, hostname: str, name: str) -> list[str]:
    """A --link entry: the alias, the linked container's hostname, and its name
    unless that is the alias."""
    return [alias, hostname] + ([name] if name != alias else [])


def hosts_file(extra: list[HostsEntry], own: list[HostsEntry] | HostsEntry | None) -> str:
    """Docker's order: the fixed head, --add-host and --link entries, then the
    container's own address(es) and hostname."""
    if isinstance(own, HostsEntry):
        own = [own]
    out = HOSTS_HEAD
    for e in [*extra, *(own or [])]:
        out += f"{e.ip}\t{' '.join(e.names)}\n"
    return out


def resolv_conf(
    embedded: str | None, upstream: Upstream, dns: list[str], dns_search: list[str], dns_options: list[str]
) -> str:
    """User networks get the embedded resolver (EMBEDDED: 127.0.0.11) and Docker's
    ndots:0; the default bridge gets --dns or the host's nameservers."""
    search = dns_search or upstream.search
    lines = []
    if search and " ".join(search).strip() != ".":  # `--dns-search .`: no search line
        lines.append("search " + " ".join(search))
    if embedded:
        lines.append(f"nameserver {embedded}")
    else:
        lines += [f"nameserver {ns}" for ns in (dns or upstream.nameservers)]
    options = list(dns_options or upstream.options)
    if embedded and not any(o.startswith("ndots:") for o in options):
        options.append("ndots:0")
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n" if lines else ""
