"""The state root under attack and under strain (issue 11, items 4-6): planted
symlinks and unsafe directories are refused before anything is written; a
damaged database leaves `system reset` working from the kernel's marks and every
other command saying so in one line; a full disk and a database locked by
another process give one clear line and change nothing."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from nsbridge.sandbox import Sandbox
from tests.integration.helpers import assert_consistent
from tests.integration.test_hostile_input import assert_unchanged, error_lines, snapshot

NOBODY = 65534


def one_line(r: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command (Docker's hint lines after a run error aside)."""
    lines = error_lines(r.stderr)
    assert r.returncode in (1, 125) and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


def netns() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


def tree(path: str) -> dict[str, tuple[int, int]]:
    """Every entry under PATH with its mode and owner."""
    out = {}
    for d, dirs, files in os.walk(path):
        for n in [".", *dirs, *files]:
            p = os.path.normpath(os.path.join(d, n))
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid)
    return out


@pytest.fixture
def scratch():
    """A root-owned 0700 directory to plant things in (removed afterwards)."""
    d = tempfile.mkdtemp(prefix="nsbridge-rootattack-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def refused_box(root: str):
    """A sandbox whose state root is refused: it must leave no namespace behind."""
    box = Sandbox(root=root)
    try:
        yield box
    finally:
        made = box.name in netns()
        if made:  # (so that a failing run leaves nothing either)
            subprocess.run(["ip", "netns", "del", box.name])
        assert not made, "a refused state root still made the sandbox host"


# -- item 4: symlinks and unsafe directories -----------------------------------------------------
def test_a_symlinked_state_root_is_refused_and_its_target_untouched(scratch):
    target = os.path.join(scratch, "somedir")
    os.mkdir(target, 0o755)
    with open(os.path.join(target, "keep"), "w") as f:
        f.write("mine\n")
    link = os.path.join(scratch, "lab1")
    os.symlink(target, link)
    before = tree(target)
    with refused_box(link) as box:
        for argv in (["network", "ls"], ["network", "create", "skynet"], ["system", "reset", "-f"]):
            line = one_line(box.cli(*argv))
            assert link in line and "symlink" in line, line
    assert tree(target) == before
    assert os.path.islink(link)


@pytest.mark.parametrize("planted", ["containers", "dns", "nsbridge.log", "host-resolv.conf", "lock", "state.db"])
def test_a_symlink_planted_inside_the_state_root_is_refused(scratch, planted):
    """The root is root's, but something in it is a symlink (planted while the root
    was open, or restored from a backup): nothing is followed, nothing written."""
    target = os.path.join(scratch, "victim")
    os.mkdir(target, 0o755)
    victim = os.path.join(target, "file")
    with open(victim, "w") as f:
        f.write("mine\n")
    root = os.path.join(scratch, "root")
    os.mkdir(root, 0o700)
    os.symlink(target if planted in ("containers", "dns") else victim, os.path.join(root, planted))
    before = tree(target)
    with refused_box(root) as box:
        line = one_line(box.cli("network", "create", "skynet"))
        assert os.path.join(root, planted) in line and "symlink" in line, line
    assert tree(target) == before


def test_a_symlink_planted_deeper_while_the_root_was_open_is_refused(scratch):
    """A root left world-writable is made root-only again (with a warning) only if
    nothing in it was planted meanwhile; a planted link is refused, never followed."""
    box = Sandbox(root=os.path.join(scratch, "root"))
    try:
        box.cli("run", "-d", "--name", "web", "alpine", check=True)
        cid = box.cli("inspect", "--format", "{{.Id}}", "web", check=True).stdout.strip()
        target = os.path.join(scratch, "victim")
        os.mkdir(target, 0o755)
        before = tree(target)
        os.chmod(box.root, 0o777)
        os.chmod(os.path.join(box.root, "containers"), 0o777)
        cdir = os.path.join(box.root, "containers", cid)
        shutil.rmtree(cdir)
        os.symlink(target, cdir)
        os.lchown(cdir, NOBODY, NOBODY)
        line = one_line(box.cli("network", "connect", "bridge", "web"))
        assert cdir in line, line
        assert tree(target) == before
        os.unlink(cdir)
    finally:
        leaks = box.destroy()
    assert not leaks, leaks


@pytest.mark.parametrize("case", ["owned by another user", "world-writable", "symlink owned by another user"])
def test_a_state_root_under_an_unsafe_directory_is_refused(scratch, case):
    """As ssh's StrictModes: every directory above the root must be root's and
    writable by no one else (a sticky one like /tmp is fine)."""
    parent = os.path.join(scratch, "parent")
    os.mkdir(parent, 0o755)
    root = os.path.join(parent, "lab")
    if case == "owned by another user":
        os.chown(parent, NOBODY, NOBODY)
        culprit = parent
    elif case == "world-writable":
        os.chmod(parent, 0o777)
        culprit = parent
    else:
        real = os.path.join(scratch, "real")
        os.mkdir(real, 0o755)
        via = os.path.join(scratch, "via")
        os.symlink(real, via)
        os.lchown(via, NOBODY, NOBODY)
        root = os.path.join(via, "lab")
        culprit = via
    with refused_box(root) as box:
        line = one_line(box.cli("network", "ls"))
        assert culprit in line, line
    assert not os.path.exists(root)


def test_a_state_root_under_a_sticky_world_writable_directory_is_fine(scratch):
    parent = os.path.join(scratch, "sticky")
    os.mkdir(parent)
    os.chmod(parent, 0o1777)
    box = Sandbox(root=os.path.join(parent, "lab"))
    try:
        box.cli("network", "create", "skynet", check=True)
    finally:
        leaks = box.destroy()
    assert not leaks, leaks


# -- item 5: a damaged database --------------------------------------------------------------------
def test_a_damaged_state_database(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "hosty", "--network", "host", "--", "sleep", "600", check=True)
    db = os.path.join(sb.root, "state.db")
    subprocess.run([sys.executable, "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')", db],
                   check=True)
    os.truncate(db, os.path.getsize(db) // 2)
    made = {n for n in netns() if n.startswith(sb.name)}
    assert made == {sb.name, f"{sb.name}-web"}
    for argv in (["network", "ls"], ["ps"], ["run", "-d", "alpine"], ["network", "create", "xnet"], ["rm", "-f", "web"]):
        line = one_line(sb.cli(*argv))
        assert "state database" in line and "damaged" in line and "system reset" in line, line
        assert {n for n in netns() if n.startswith(sb.name)} == made
    out = sb.cli("system", "reset", "-f", check=True).stdout
    assert f"removed network namespace {sb.name}-web" in out and f"removed sandbox host {sb.name}" in out, out
    assert not {n for n in netns() if n.startswith(sb.name)}
    assert not sb.processes(), sb.processes()
    # and the sandbox starts afresh
    sb.cli("network", "create", "skynet", check=True)


# -- item 6: a full disk, a database locked by someone else ----------------------------------------
@pytest.fixture
def tmpfs_box():
    """A sandbox whose state root is on a small tmpfs of its own (to be filled)."""
    mnt = tempfile.mkdtemp(prefix="nsbridge-fulldisk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", mnt], check=True)
    box = Sandbox(root=os.path.join(mnt, "root"))
    try:
        yield box
    finally:
        leaks = box.destroy()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
    assert not leaks, leaks


def fill(path: str) -> None:
    """Write until the disk is full. Unbuffered: a buffered file would raise ENOSPC
    again at close, flushing what the full disk refused."""
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)


def test_a_full_disk_one_line_and_nothing_changed(tmpfs_box):
    box = tmpfs_box
    box.cli("network", "create", "skynet", check=True)
    box.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    filler = os.path.join(os.path.dirname(box.root), "filler")
    fill(filler)
    before = snapshot(box)
    for argv in (["network", "create", "xnet"], ["run", "-d", "--name", "w2", "--network", "skynet", "alpine"],
                 ["network", "connect", "bridge", "web"], ["rm", "-f", "web"]):
        r = box.cli(*argv)
        assert "Logging error" not in r.stderr, r.stderr
        assert "no space left" in one_line(r)
        assert_unchanged(before, snapshot(box))
    os.unlink(filler)
    box.cli("network", "create", "xnet", check=True)
    assert_consistent(box)


def test_a_database_locked_by_another_process_one_line_and_nothing_changed(sb):
    sb.cli("network", "create", "skynet", check=True)
    db = os.path.join(sb.root, "state.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3,sys,time; db=sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(120)", db],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(sb)
        env = dict(sb.env, NSBRIDGE_DB_TIMEOUT="2")
        for argv in (["network", "create", "xnet"], ["run", "-d", "--name", "w2", "--network", "skynet", "alpine"]):
            r = subprocess.run(sb.argv(*argv), env=env, capture_output=True, text=True, timeout=60)
            line = one_line(r)
            assert "locked" in line and f"pid {holder.pid}" in line, line
            assert_unchanged(before, snapshot(sb))
    finally:
        holder.kill()
        holder.wait()
    sb.cli("network", "create", "xnet", check=True)
    assert_consistent(sb)
