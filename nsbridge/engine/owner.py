"""Ownership: which engine (host + state root) a kernel object belongs to,
written on the object itself, never guessed from its name.

- The engine id is derived from the host namespace's name and the state
  root's real path: the same at every start, and known when the state
  database is not readable (`system reset` works from the marks alone).
- Devices the engine makes in the host namespace (bridges, host ends of
  veths) carry its device group (IFLA_GROUP, `ip link` shows `group N`), given
  in the very request that creates them (the kernel ignores an alias there),
  then the alias `nsbridge:<network or endpoint id>` that names the object.
- A namespace the engine makes carries a mark in the alias of its loopback
  device, written before the namespace is bound to its name under /run/netns:
      nsbridge:container:<engine id>:<container id>
      nsbridge:overlay:<engine id>:<network id>     (an overlay network's bridge)
      nsbridge:host:<engine id>:<state root>        (a sandbox host)
  so `lab`'s reconcile never takes `lab-2`'s namespaces for its own, and a
  sandbox host is never some other engine's container.
"""
from __future__ import annotations

import os

from nsbridge.errors import Conflict
from nsbridge.record import record

PREFIX = "nsbridge:"
IFALIAS_MAX = 255  # the kernel keeps up to IFALIASZ - 1 bytes


def engine_id(host_netns: str | None, root: str) -> str:
    try:  # Python's built-in BLAKE2: hashlib would load OpenSSL first (~7 ms of an `rm`)
        from _blake2 import blake2b
    except ImportError:
        from hashlib import blake2b
    return blake2b(f"{host_netns or ''}\0{os.path.realpath(root)}".encode(), digest_size=8).hexdigest()


def device_group(eid: str) -> int:
    """A device group from the engine id: never 0 (every device's default) nor
    the small numbers people pick by hand, and below 2^31 (iproute2 reads
    `ip link show group N` as a signed number)."""
    return int(eid[:8], 16) % (0x7FFFFFFF - 0x100) + 0x100


def container_mark(eid: str, container_id: str) -> str:
    return f"{PREFIX}container:{eid}:{container_id}"


def overlay_mark(eid: str, network_id: str) -> str:
    return f"{PREFIX}overlay:{eid}:{network_id}"


def host_mark(eid: str, root: str) -> str:
    return f"{PREFIX}host:{eid}:{root}".encode()[:IFALIAS_MAX].decode(errors="ignore")


@record
class Mark:
    kind: str  # "container", "overlay" or "host"
    engine: str
    what: str  # the container id, or the state root


def parse(text: str) -> Mark | None:
    if not text.startswith(PREFIX):
        return None
    parts = text[len(PREFIX):].split(":", 2)
    if len(parts) != 3 or parts[0] not in ("container", "overlay", "host"):
        return None
    return Mark(*parts)


def read(name: str) -> Mark | None:
    """The mark of the named namespace (None: unmarked, or not a namespace)."""
    from nsbridge.kernel import ns

    if not ns.netns_exists(name):
        return None
    return parse(ns.netns_mark(ns.netns_path(name)))


def marked(eid: str, prefix: str = "", kinds: tuple[str, ...] = ("container",)) -> dict[str, Mark]:
    """Namespace name -> mark, for those of KINDS that carry engine EID's mark.
    PREFIX (a sandbox's `NAME-`) only narrows which names are worth reading;
    the mark decides."""
    from nsbridge.kernel import ns

    out = {}
    for name in ns.list_netns():
        if name.startswith(prefix):
            m = read(name)
            if m is not None and m.kind in kinds and m.engine == eid:
                out[name] = m
    return out


def our_namespaces(eid: str, prefix: str = "", kinds: tuple[str, ...] = ("container",)) -> list[str]:
    return list(marked(eid, prefix, kinds))


def describe(name: str, m: Mark | None) -> str:
    """Whose a namespace is, for an error message."""
    if m is None:
        return f"network namespace {name} exists and is not nsbridge's"
    if m.kind == "host":
        return f"network namespace {name} is the host of another nsbridge engine (state root {m.what})"
    return f"network namespace {name} is {m.kind} {m.what[:12]} of another nsbridge engine"


def claim_host(name: str, eid: str, root: str) -> None:
    """Before an engine uses the existing namespace NAME as its sandbox host:
    ours, or someone's unmarked namespace (adopted: marked as ours), or
    refused when it is another engine's host or container."""
    from nsbridge.kernel import ns

    m = read(name)
    if m is None and not ns.netns_exists(name):
        raise Conflict(f"{ns.netns_path(name)} is not a network namespace: remove it or choose another --host-netns name")
    if m is None:
        from nsbridge.kernel import netlink

        netlink.mark_netns(ns.netns_path(name), host_mark(eid, root))
    elif m.kind != "host" or m.engine != eid:
        raise Conflict(describe(name, m) + ": choose another --host-netns name")


def refuse_taken(name: str, eid: str) -> None:
    """Refuse NAME for a new container's namespace if it exists: a leftover of
    this engine is for reconcile; anyone else's is never touched."""
    from nsbridge.kernel import ns

    if not os.path.lexists(ns.netns_path(name)):
        return
    m = read(name)
    if m is not None and m.kind == "container" and m.engine == eid:
        raise Conflict(f"network namespace {name} already exists: run `nsbridge system reconcile`")
    raise Conflict(describe(name, m) + ": choose another container name")
