"""Listening sockets of a namespace, from /proc/thread-self/net/{tcp,udp}
read with the thread inside it (what `ss -ltn` / `ss -lun` show there)."""
from __future__ import annotations

import socket
import struct

LISTEN, UNCONNECTED = "0A", "07"


def parse(text: str, state: str) -> list[tuple[str, int]]:
    """(address, port) of the sockets in STATE, from a /proc/net/tcp|udp table."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or f[3] != state:
            continue
        hexip, _, hexport = f[1].partition(":")
        ip = socket.inet_ntoa(struct.pack("<I", int(hexip, 16)))
        item = (ip, int(hexport, 16))
        if item not in out:
            out.append(item)
    return sorted(out, key=lambda x: (x[1], x[0]))


def listening(netns_path: str | None, proto: str) -> list[tuple[str, int]]:
    from nsbridge.kernel.ns import in_netns

    try:
        with in_netns(netns_path), open(f"/proc/thread-self/net/{proto}") as f:
            text = f.read()
    except OSError:
        return []
    return parse(text, LISTEN if proto == "tcp" else UNCONNECTED)
