"""Per-namespace sysctls: /proc/sys/net resolves to the netns of the thread
that opens the file, so call these while inside the namespace meant."""
from __future__ import annotations

import contextlib


def write(key: str, value: str | int) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    with open(path, "w") as f:
        f.write(str(value))


def read(key: str) -> str | None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def try_write(key: str, value: str | int) -> bool:
    with contextlib.suppress(OSError):
        write(key, value)
        return True
    return False


def disable_ipv6_here() -> None:
    """IPv4-only networks: no IPv6 on new interfaces (Docker does the same in
    containers), which also stops each new bridge port's DAD/RS/MLD multicast
    from flooding every other port (per-container cost ~3 -> 6-10 ms near 1,000
    ports otherwise; docs/architecture.md)."""
    try_write("net.ipv6.conf.all.disable_ipv6", 1)
    try_write("net.ipv6.conf.default.disable_ipv6", 1)


#: The kernel's default per-CPU input backlog (net.core.netdev_max_backlog).
DEFAULT_BACKLOG = 1000


def netdev_max_backlog() -> int:
    """How many packets one CPU's input backlog holds. A machine-wide setting
    that only the initial network namespace shows (a sandbox host does not):
    read there, in kthreadd's (pid 2, a kernel thread: always the initial
    one); the kernel's default if even that is out of reach."""
    key = "net.core.netdev_max_backlog"
    value = read(key)
    if value is None:
        from nsbridge.kernel import ns

        with contextlib.suppress(OSError), ns.in_netns("/proc/2/ns/net"):
            value = read(key)
    try:
        return int(value or DEFAULT_BACKLOG)
    except ValueError:
        return DEFAULT_BACKLOG
