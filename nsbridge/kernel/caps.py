"""Linux capabilities of container processes, as Docker gives them.

A container's processes get Docker's default set (moby's oci/caps
DefaultCapabilities: no NET_ADMIN, no SYS_ADMIN), changed by --cap-add and
--cap-drop with moby's rules (TweakCapabilities: ALL in --cap-add gives every
capability but the dropped ones; ALL in --cap-drop keeps only the added ones;
otherwise drop, then add), or all of them with --privileged.

Applied in the process itself just before exec (`limit`), after it has
entered the container's namespaces (which needs CAP_SYS_ADMIN): the bounding
set loses everything else, then capset() leaves the set effective and
permitted, nothing inheritable and nothing ambient, as runc does for a root
process. Every container process runs as root, and the kernel gives a root
process exactly its bounding set at execve (setuid and file-capability
programs included), so nothing regains what was dropped and no ambient set
is needed. Docker sets no_new_privs only with --security-opt
no-new-privileges, and neither do we.
"""
from __future__ import annotations

from nsbridge.errors import InvalidArgument

#: Capability names by number (include/uapi/linux/capability.h).
NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBER = {"CAP_" + name: i for i, name in enumerate(NAMES)}

#: Docker's default set, in moby's order.
DEFAULT = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL = "ALL"

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def normalize(values: list[str], what: str) -> list[str]:
    """moby's NormalizeLegacyCapabilities: upper case, CAP_ prefixed, ALL
    kept; Docker's error for an unknown name (WHAT: CapAdd or CapDrop)."""
    out = []
    for v in values:
        c = v.upper()
        if c != ALL:
            if not c.startswith("CAP_"):
                c = "CAP_" + c
            if c not in NUMBER:
                raise InvalidArgument(f'invalid {what}: unknown capability: "{c}"')
        out.append(c)
    return out


def validate(cap_add: list[str], cap_drop: list[str]) -> None:
    normalize(cap_add, "CapAdd")
    normalize(cap_drop, "CapDrop")


def effective(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str] | None:
    """The names a container's processes keep; None: all (--privileged)."""
    if privileged:
        return None
    if not cap_add and not cap_drop:
        return list(DEFAULT)
    drop, add = normalize(cap_drop, "CapDrop"), normalize(cap_add, "CapAdd")
    if ALL in add:
        return [c for c in NUMBER if c not in drop]
    if ALL in drop:
        return list(dict.fromkeys(add))
    return list(dict.fromkeys([c for c in DEFAULT if c not in drop] + add))


def numbers(names: list[str] | None) -> frozenset[int] | None:
    return None if names is None else frozenset(NUMBER[n] for n in names)


def limit(keep: frozenset[int] | None) -> None:
    """Leave the calling process (about to exec) with KEEP: bounding,
    effective and permitted; nothing inheritable or ambient. None: all, as
    it is (--privileged). Raises OSError naming what the kernel refused."""
    if keep is None:
        return
    import ctypes
    import errno
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    # up to the kernel's last capability (EINVAL past it), names we know or not
    for cap in range(64):
        if cap not in keep and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break
            check(-1, f"drop {NAMES[cap] if cap < len(NAMES) else cap} from the bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL before 4.3: nothing to clear
    header = ctypes.create_string_buffer(struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0))
    data = ctypes.create_string_buffer(24)  # two {effective, permitted, inheritable} words
    check(libc.capget(header, data), "capget")
    held = struct.unpack("6I", data.raw)
    # what the engine itself holds caps it (--cap-add ALL in a restricted engine), as for dockerd
    mask = sum(1 << cap for cap in keep) & (held[1] | held[4] << 32)
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = ctypes.create_string_buffer(struct.pack("6I", lo, lo, 0, hi, hi, 0), 24)
    check(libc.capset(header, data), "capset")
