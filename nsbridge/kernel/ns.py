"""Namespaces by system call: named netns create/remove, setns, entering a container.

No pyroute2 here (its netns helpers fork a process per call, ~8 ms); plain
libc through ctypes on the calling thread, measured fastest (netns create
0.6 ms in-process vs 3.4 ms through pyroute2's forking helper; docs/architecture.md). Only kernel/ imports this module.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator

from nsbridge.kernel.failpoint import request_done

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            src.encode() if src else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, len(b)), "sethostname")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def _ensure_netns_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that
    namespaces created later are visible in every mount namespace.

    Like iproute2: try to make it shared; only when that fails because it is
    not a mount point yet, bind it onto itself first. (os.path.ismount cannot
    see a bind mount from the same filesystem: testing that would stack a new
    bind mount, doubled by propagation, on every call.)
    """
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    try:
        mount("", NETNS_DIR, "none", MS_SHARED | MS_REC)
        return
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC)
    mount("", NETNS_DIR, "none", MS_SHARED | MS_REC)


def current_netns_fd() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def netns_exists(name: str) -> bool:
    """A live netns name is an nsfs inode bound over the file: it sits on
    another device than /run/netns itself, unlike a leftover empty file."""
    try:
        return os.stat(netns_path(name)).st_dev != os.stat(NETNS_DIR).st_dev
    except OSError:
        return False


def create_netns(name: str, inside: Callable[[], None] | None = None) -> None:
    """Create /run/netns/NAME and leave the calling thread INSIDE it.

    INSIDE runs in the new namespace before it is bound to its name (the
    owner's mark goes there: a namespace that has a name has its mark). The
    caller opens its netlink socket and writes per-netns sysctls while
    inside (both bind to the current netns), then setns() back.
    """
    _ensure_netns_dir()
    path = netns_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"network namespace {name} already exists") from None
    try:
        os.close(fd)
        request_done()
        unshare(CLONE_NEWNET)
        if inside is not None:
            inside()
        mount("/proc/thread-self/ns/net", path, "none", MS_BIND)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    request_done()


def remove_netns(name: str, devices_first: bool = False) -> bool:
    """Unmount and unlink; the kernel frees the namespace (and its veths) once
    nothing holds it, in the background. DEVICES_FIRST: its devices are deleted
    now (flush_devices), for one container going while its networks stay.
    Already gone counts as success."""
    path = netns_path(name)
    if devices_first:
        flush_devices(path)
    existed = False
    try:
        umount(path, MNT_DETACH)
        existed = True
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    if existed:
        request_done()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return existed


def rename_netns(old: str, new: str) -> None:
    """Bind the same namespace under a new name, then drop the old name."""
    _ensure_netns_dir()
    path = netns_path(new)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    request_done()
    mount(netns_path(old), path, "none", MS_BIND)
    request_done()
    remove_netns(old)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def in_netns(target: str | int | None) -> Iterator[None]:
    """Run the block with the calling thread in the netns at TARGET, a path
    or an open fd of it (None: stay)."""
    if target is None:
        yield
        return
    fd = target if isinstance(target, int) else os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    back = current_netns_fd()
    try:
        setns(fd, CLONE_NEWNET)
        yield
    finally:
        setns(back, CLONE_NEWNET)
        os.close(back)
        if fd is not target:
            os.close(fd)


@contextlib.contextmanager
def returning() -> Iterator[None]:
    """Whatever namespace the block moves the thread into, come back after."""
    back = current_netns_fd()
    try:
        yield
    finally:
        setns(back, CLONE_NEWNET)
        os.close(back)


def netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def _rtnl_socket(path: str):
    """A raw rtnetlink socket bound in the namespace at PATH (None if PATH is not
    one). Raw requests, without pyroute2: its import costs ~100 ms, and `rm` or
    reconcile only need a few fixed messages."""
    import socket

    try:
        with in_netns(path):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
    except OSError:
        return None
    sock.settimeout(10)
    return sock


def _ifinfo(msg_type: int, flags: int, seq: int, index: int) -> bytes:
    """nlmsghdr + ifinfomsg (family, type, INDEX, flags, change): 32 bytes."""
    import struct

    return struct.pack("=LHHLL", 32, msg_type, flags, seq, 0) + struct.pack("=BxHiII", 0, 0, index, 0, 0)


_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK = 16, 17, 18
_NLM_REQUEST, _NLM_ACK, _NLM_DUMP = 1, 4, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_IFF_LOOPBACK = 0x8


def netns_mark(path: str) -> str:
    """The alias of loopback in the namespace at PATH (its owner's mark,
    engine/owner.py), "" if none or if PATH is not a namespace. One raw
    RTM_GETLINK (`rm` and reconcile read the mark of every namespace they look at)."""
    import struct

    sock = _rtnl_socket(path)
    if sock is None:
        return ""
    with sock:
        sock.send(_ifinfo(_RTM_GETLINK, _NLM_REQUEST, 1, 1))  # loopback: index 1
        buf = sock.recv(65536)
    length, msg_type = struct.unpack_from("=LH", buf, 0)
    if msg_type != _RTM_NEWLINK:  # the answer (else NLMSG_ERROR)
        return ""
    off = 32
    while off + 4 <= min(length, len(buf)):
        alen, atype = struct.unpack_from("=HH", buf, off)
        if alen < 4:
            break
        if atype & 0x3FFF == 20:  # IFLA_IFALIAS
            return buf[off + 4 : off + alen].split(b"\0", 1)[0].decode(errors="replace")
        off += (alen + 3) & ~3
    return ""


def flush_devices(path: str) -> int:
    """Delete every device but loopback in the namespace at PATH, now; returns
    how many went. A veth goes with its peer in the same request, so a removed
    container leaves no host end on the bridge: left to the kernel, the pair
    would go only when the namespace is freed, which is asynchronous (seconds
    under load: the kernel frees namespaces in batches) and waits for every
    socket still inside (a resolver closing the container's 127.0.0.11 ones).
    Until then the old port still answers ARP and ping for an address IPAM
    may already have given, with the same MAC, to a new container (as Docker,
    which deletes the veth itself). Each deletion costs the kernel 15-30 ms."""
    import struct

    sock = _rtnl_socket(path)
    if sock is None:
        return 0
    with sock:
        sock.send(_ifinfo(_RTM_GETLINK, _NLM_REQUEST | _NLM_DUMP, 1, 0))
        indexes: list[int] = []
        done = False
        while not done:
            buf = sock.recv(65536)
            off = 0
            while off + 16 <= len(buf):
                length, msg_type = struct.unpack_from("=LH", buf, off)
                if msg_type in (_NLMSG_DONE, _NLMSG_ERROR) or length < 16:
                    done = True
                    break
                if msg_type == _RTM_NEWLINK:
                    index, flags = struct.unpack_from("=iI", buf, off + 20)
                    if not flags & _IFF_LOOPBACK:
                        indexes.append(index)
                off += (length + 3) & ~3
        gone = 0
        for seq, index in enumerate(indexes, 2):
            # deleted one by one: a request fails alone (the peer of a veth already went
            # with it; the fallback tunnels some kernels put in every namespace stay)
            sock.send(_ifinfo(_RTM_DELLINK, _NLM_REQUEST | _NLM_ACK, seq, index))
            reply = sock.recv(65536)
            if struct.unpack_from("=H", reply, 4)[0] == _NLMSG_ERROR and not struct.unpack_from("=i", reply, 16)[0]:
                gone += 1
    if gone:
        request_done()
    return gone


def pids_in_netns(path: str) -> list[int]:
    """Processes whose network namespace is the one at PATH."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
            found.append(int(d))
    return found


def enter_container(netns: str | None, hostname: str | None, binds: dict[str, str]) -> None:
    """Put the calling process into a container: its netns, a fresh UTS
    namespace with its hostname, and a private mount namespace where the
    container's /etc files are bound over the host's (what `ip netns exec`
    does with /etc/netns). Called in a child just before exec, or by the CLI
    itself before it execs the user's command.
    """
    if netns is not None:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        setns(fd, CLONE_NEWNET)
        os.close(fd)
    flags = CLONE_NEWNS | (CLONE_NEWUTS if hostname else 0)
    unshare(flags)
    if hostname:
        sethostname(hostname)
    # Keep our bind mounts from propagating back to the host.
    try:
        mount(None, "/", None, MS_REC | MS_SLAVE)
    except OSError as e:
        hint = " (/ is not a mount point here: a chroot?)" if e.errno == errno.EINVAL else ""
        raise OSError(e.errno, f"mount / as a slave mount (keeps the container's /etc files private): "
                               f"{os.strerror(e.errno)}{hint}") from None
    for target, source in binds.items():
        if os.path.exists(target) and os.path.exists(source):
            mount(source, target, "none", MS_BIND)
    if netns is not None:
        # /sys/class/net shows the devices of the netns that mounted sysfs.
        with contextlib.suppress(OSError):
            umount("/sys", MNT_DETACH)
            mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir("/")
