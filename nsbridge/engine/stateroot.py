"""The state root is root's alone, and nothing in it is followed elsewhere.

What drives what runs as root (the database, the lock, the containers' files)
must not be a path another user can redirect. As ssh's StrictModes and sudo
check their files, before anything is created or written:
- every directory above the root, as given and as resolved, is root's and
  writable by no one else, unless sticky like /tmp (others may add entries
  there, not replace ours); a symlink on the way is root's;
- the root itself, `containers` and `dns` are real directories (never
  symlinks) owned by root; the database, its WAL files, the lock, the log and
  the sandbox's host-resolv.conf, where they exist, are regular files owned by
  root;
- what root owns but left too open (a `chmod -R a+rX`, a restored backup) is
  made root-only again with one warning line, as dockerd fixes its root's
  mode; if a directory was writable by others, everything under it is
  checked first (a symlink or another user's file planted meanwhile is
  refused, never followed).
A few stat calls per start. New files are created with O_EXCL|O_NOFOLLOW.
"""
from __future__ import annotations

import os
import stat

from nsbridge.errors import PermissionDenied

DIRS = ("containers", "dns")
FILES = ("state.db", "state.db-wal", "state.db-shm", "lock", "nsbridge.log", "host-resolv.conf")


def _refused(path: str, why: str, fix: str = "remove it or make it root's") -> PermissionDenied:
    return PermissionDenied(f"{path} {why}: refusing to use it ({fix})")


def _check_dir_above(root: str, path: str, st: os.stat_result) -> None:
    why = ""
    if not stat.S_ISDIR(st.st_mode):
        why = "is not a directory"
    elif st.st_uid != 0:
        why = f"is owned by uid {st.st_uid}"
    elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        why = f"is writable by other users (mode {st.st_mode & 0o7777:04o}, not sticky)"
    if why:
        raise _refused(f"state root {root}", f"is under {path}, which {why}", "choose a --root only root can change")


def check_ancestors(root: str) -> None:
    """Every existing directory above ROOT, as given (symlinks on the way must
    be root's) and as resolved, is root's and writable by no one else."""
    parent = os.path.dirname(root)
    cur = "/"
    for part in [p for p in parent.split("/") if p]:
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            break  # made by us, below here, root-only
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid != 0:
                raise _refused(f"state root {root}", f"is under {cur}, a symlink owned by uid {st.st_uid}",
                               "choose a --root only root can change")
            continue  # where it leads is checked below, resolved
        _check_dir_above(root, cur, st)
    cur = "/"
    _check_dir_above(root, cur, os.stat(cur))
    for part in [p for p in os.path.realpath(parent).split("/") if p]:
        cur = os.path.join(cur, part)
        try:
            st = os.stat(cur)
        except FileNotFoundError:
            break
        _check_dir_above(root, cur, st)


def _own(path: str, want_dir: bool, create: bool, is_root: bool = False) -> os.stat_result | None:
    """lstat PATH (creating the directory if asked): root's, of the right kind, not a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not (create and want_dir):
            return None
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if is_root:
            raise _refused(f"state root {path}", f"is a symlink (to {os.readlink(path)})",
                           "remove the link, or give the directory itself as --root")
        raise _refused(path, "is a symlink")
    if not (stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)):
        raise _refused(path, "is not a directory" if want_dir else "is not a regular file")
    if st.st_uid != 0:
        if is_root:
            raise _refused(f"state root {path}", f"is owned by uid {st.st_uid}, not by root", f"chown -R root:root {path}")
        raise _refused(path, f"is owned by uid {st.st_uid}")
    return st


def _audit(top: str) -> None:
    """Everything under TOP is root's and no symlink (TOP was writable by others)."""
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise _refused(p, f"is a symlink, made while {top} was writable by other users", "remove it")
            if st.st_uid != 0:
                raise _refused(p, f"is owned by uid {st.st_uid}, made while {top} was writable by other users",
                               "remove it")


def prepare(root: str, create: bool = True) -> list[str]:
    """Check ROOT as above (creating it and its directories if CREATE); make
    what root owns but left too open root-only. Returns what was tightened."""
    check_ancestors(root)
    if create:
        os.makedirs(os.path.dirname(root), mode=0o755, exist_ok=True)
    st = _own(root, True, create, is_root=True)
    if st is None:
        return []
    opened = [root] if st.st_mode & 0o022 else []
    dirs = [(root, st)]
    for name in DIRS:
        path = os.path.join(root, name)
        dst = _own(path, True, create)
        if dst is not None:
            dirs.append((path, dst))
            if dst.st_mode & 0o022:
                opened.append(path)
    for top in opened:
        _audit(top)
    fixed: list[str] = []
    for path, dst in dirs:
        _tighten(path, dst, 0o700, fixed)
    for name in FILES:
        path = os.path.join(root, name)
        fst = _own(path, False, False)
        if fst is not None and name not in ("nsbridge.log", "host-resolv.conf"):
            _tighten(path, fst, 0o600, fixed)
        elif fst is not None and name == "nsbridge.log" and fst.st_mode & 0o077:
            os.chmod(path, 0o600)  # the log says what ran: root's only, but no warning
    return fixed


def _tighten(path: str, st: os.stat_result, mode: int, fixed: list[str]) -> None:
    have = st.st_mode & 0o7777
    if have & ~mode:
        os.chmod(path, have & mode)
        fixed.append(f"{path} {have:04o} -> {have & mode:04o}")


def create_new(path: str, text: str, mode: int = 0o600) -> None:
    """Write a new file that must not exist yet (and is never a link followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
