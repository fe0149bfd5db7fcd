"""Where a container's runtime files live: its hosts, resolv.conf, hostname and
stand-in pages, rewritten at every start and read by every `exec`.

On a tmpfs, as Docker keeps them under /var/run (issue 15: on a VM's
rate-limited disk, writing them took 16 % of a container's time):
- `/run/nsbridge/<engine id>` where /run is a tmpfs (the Vagrant box, any
  systemd machine), so engines never share a directory;
- otherwise a small tmpfs that the engine mounts on `<state root>/run`, its
  source `nsbridge-<engine id>` (the owner's mark: `findmnt` shows it; reset
  unmounts what carries a mark of ours under the root it removes).
Logs and exit codes stay under `<state root>/containers/<id>` on disk, as
Docker keeps its logs. After a reboot the tmpfs is empty: the first session
mounts it again, and each container's files are written again from the store
when it starts (restore does so for those with a restart policy).
"""
from __future__ import annotations

import contextlib
import os

from nsbridge.engine.host import Host  # (no typing import: `inspect` comes here, and pins its imports)

RUN = "/run"
RUN_DIR = "/run/nsbridge"
TMPFS_MAGIC = 0x01021994
#: a page per small file: 10,000 containers' three files take about 120 MB
#: (a limit, not an allocation: a tmpfs holds only what is written)
SIZE = "512m"


def source(host: Host) -> str:
    return f"nsbridge-{host.engine_id}"


def base(host: Host) -> str:
    """The directory of the host's runtime files (see the module's docstring)."""
    from nsbridge.kernel import ns

    if ns.fs_type(RUN) == TMPFS_MAGIC:
        return os.path.join(RUN_DIR, host.engine_id)
    return os.path.join(host.root, "run")


def marked_mounts(under: str, mountinfo: str | None = None) -> list[tuple[str, str]]:
    """(mount point, source) of the tmpfs mounts of nsbridge (their source is
    `nsbridge-<engine id>`) at UNDER or below it, deepest first. MOUNTINFO:
    the text of /proc/self/mountinfo (read when None)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError:
            return []
    found = set()
    top = under.rstrip("/") + "/"
    for line in mountinfo.splitlines():
        # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        left, _, right = line.partition(" - ")
        fields, tail = left.split(" "), right.split(" ")
        if len(fields) < 5 or len(tail) < 2 or tail[0] != "tmpfs" or not tail[1].startswith("nsbridge-"):
            continue
        point = _unescape(fields[4])
        if point == under or point.startswith(top):
            found.add((point, tail[1]))
    return sorted(found, key=lambda m: (-m[0].count("/"), m[0]))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def ensure(host: Host) -> str:
    """The runtime directory, ready (mounted or made); its path. Cheap when it
    is: two stat calls (a mount point sits on another device than its parent)."""
    d = base(host)
    if not d.startswith(host.root + "/"):
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d
    import stat

    try:
        st = os.lstat(d)
    except FileNotFoundError:
        os.mkdir(d, 0o700)
        st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode):  # (stateroot.prepare refuses it first: a mount would follow a link)
        from nsbridge.errors import PermissionDenied

        raise PermissionDenied(f"{d} is not a directory: refusing to mount the containers' files there")
    if st.st_dev != os.lstat(host.root).st_dev:
        return d
    from nsbridge.kernel import ns

    ns.mount(source(host), d, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC, f"mode=0700,size={SIZE}")
    return d


def remove(host: Host) -> list[str]:
    """Reset: unmount our tmpfs mounts under the state root (a lab's engine's
    too: their root is below ours), remove the /run/nsbridge directory."""
    from nsbridge.kernel import ns

    report = []
    for point, _src in marked_mounts(host.root):
        try:
            ns.umount(point)
            report.append(f"unmounted runtime files {point}")
        except OSError as e:
            report.append(f"could not unmount {point}: {e}")
    d = os.path.join(RUN_DIR, host.engine_id)
    if os.path.isdir(d):
        import shutil  # (not at the top: `inspect` imports this module, and shutil costs a start)

        shutil.rmtree(d, ignore_errors=True)
        report.append(f"removed runtime files {d}")
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(host.root, "run"))
    return report
