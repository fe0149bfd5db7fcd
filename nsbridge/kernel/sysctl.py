"""Per-namespace sysctls: /proc/sys/net resolves to the netns of the thread
that opens the file, so call these while inside the namespace meant.

Opening /proc/sys/net/ipv6/... costs time in proportion to the live network
namespaces that have opened that same path through the same proc instance:
each leaves its own dentry of that name under a parent they all share, on
one hash chain that every later lookup walks (measured: 0.13 ms in a new
namespace beside none, 1.2 ms beside 3,000, 9.8 ms beside 5,000 containers;
3,000 namespaces that never touched /proc/sys cost nothing). ProcSys writes
through a private proc instance instead (fsopen/fsmount: a detached mount,
never attached to any path, gone with its fd), replaced every RENEW
namespaces, so the chains stay short and the machine's /proc keeps none of
the containers' dentries.
"""
from __future__ import annotations

import contextlib
import ctypes
import os


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


#: namespaces written through one private proc instance before it is replaced
RENEW = 64

# the new mount API's system calls: one number on every architecture (Linux 5.2+)
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 430, 431, 432
_FSOPEN_CLOEXEC = _FSMOUNT_CLOEXEC = 1
_FSCONFIG_CMD_CREATE = 6
_MOUNT_ATTR = 0x2 | 0x4 | 0x8  # nosuid, nodev, noexec


def _private_proc() -> int:
    """A new proc instance as a detached mount (an fd; nothing appears in any
    mount table). Raises OSError where the kernel lacks the new mount API."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def check(ret: int, what: str) -> int:
        if ret < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what} proc: {os.strerror(e)}")
        return ret

    fs = check(libc.syscall(_SYS_FSOPEN, b"proc", _FSOPEN_CLOEXEC), "fsopen")
    try:
        check(libc.syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig")
        return check(libc.syscall(_SYS_FSMOUNT, fs, _FSMOUNT_CLOEXEC, _MOUNT_ATTR), "fsmount")
    finally:
        os.close(fs)


class ProcSys:
    """Sysctl writes for many new namespaces, each through a private proc
    instance shared by at most RENEW of them (module docstring: why). Where
    the kernel has no fsopen, the machine's /proc serves, as before."""

    def __init__(self, renew: int = RENEW) -> None:
        self.renew = renew
        self.fd = -1
        self.uses = 0
        self.plain = False  # no private instance to be had: /proc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def next_namespace(self) -> None:
        """Before writing in one more namespace: a fresh instance when due."""
        if self.plain:
            return
        if self.fd >= 0 and self.uses < self.renew:
            self.uses += 1
            return
        self.close()
        try:
            self.fd = _private_proc()
        except OSError:
            self.plain = True
            return
        self.uses = 1

    def write(self, key: str, value: str | int) -> None:
        if self.fd < 0:
            write(key, value)
            return
        fd = os.open("sys/" + key.replace(".", "/"), os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)

    def __enter__(self) -> "ProcSys":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def disable_ipv6_here(procsys: ProcSys | None = None) -> None:
    """IPv4-only networks: no IPv6 on new interfaces (Docker does the same in
    containers), which also stops each new bridge port's DAD/RS/MLD multicast
    from flooding every other port (per-container cost ~3 -> 6-10 ms near 1,000
    ports otherwise; docs/architecture.md). PROCSYS: written through it (a new
    namespace of many: the cost stays flat), else through /proc."""
    if procsys is not None:
        procsys.next_namespace()
    w = procsys.write if procsys is not None else write
    for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
        with contextlib.suppress(OSError):
            w(key, 1)


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
