"""A container's runtime files (hosts, resolv.conf, hostname, stand-in pages) on
a tmpfs (engine/runtime.py, issue 15): /run/nsbridge/<engine id> where /run is a
tmpfs, else a tmpfs the engine mounts on <state root>/run, marked with its
source `nsbridge-<engine id>`; reset unmounts it; after a reboot the files are
written again from the store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from nsbridge.engine import runtime
from nsbridge.engine.host import Host
from nsbridge.kernel import ns
from nsbridge.sandbox import Sandbox

from .helpers import assert_consistent, ip_of


def _host(sb: Sandbox) -> Host:
    return Host(os.path.abspath(sb.root), sb.name)


def _run_is_tmpfs() -> bool:
    return ns.fs_type("/run") == runtime.TMPFS_MAGIC


def _expected_dir(sb: Sandbox) -> str:
    h = _host(sb)
    return f"/run/nsbridge/{h.engine_id}" if _run_is_tmpfs() else os.path.join(h.root, "run")


def _our_mount(sb: Sandbox) -> list[tuple[str, str]]:
    return runtime.marked_mounts(os.path.abspath(sb.root))


def test_files_live_on_a_tmpfs_that_reset_unmounts():
    box = Sandbox()
    try:
        box.cli("network", "create", "skynet", check=True)
        box.cli("run", "-d", "--name", "box1", "--network", "skynet", "alpine", check=True)
        box.cli("run", "-d", "--name", "web", "--network", "skynet", "nginx", check=True)
        d = _expected_dir(box)
        if not _run_is_tmpfs():
            assert _our_mount(box) == [(d, f"nsbridge-{box.engine_id}")]
        assert ns.fs_type(d) == runtime.TMPFS_MAGIC
        info = json.loads(box.cli("inspect", "box1", check=True).stdout)[0]
        cdir = os.path.join(d, "containers", info["Id"])
        assert info["HostsPath"] == os.path.join(cdir, "hosts")
        assert info["ResolvConfPath"] == os.path.join(cdir, "resolv.conf")
        assert info["LogPath"] == os.path.join(os.path.abspath(box.root), "containers", info["Id"], "log")  # on disk
        ip = ip_of(box, "box1")
        with open(info["HostsPath"]) as f:
            assert ip in f.read()
        # what the container sees is that file (bind-mounted over its /etc/hosts)
        seen = box.cli("exec", "box1", "cat", "/etc/hosts", "/etc/resolv.conf", check=True).stdout
        assert ip in seen and "nameserver 127.0.0.11" in seen
        # a stand-in's page is there too, and served from it; its log is on disk
        wid = box.cli("inspect", "--format", "{{.Id}}", "web", check=True).stdout.strip()
        assert os.path.exists(os.path.join(d, "containers", wid, "standin", "index.html"))
        page = box.cli("exec", "box1", "wget", "-q", "-O", "-", "http://web/", check=True).stdout
        assert "nginx" in page.lower()
        assert os.path.exists(os.path.join(os.path.abspath(box.root), "containers", wid, "log"))
        # an idle container has no directory on disk: nothing was written there
        assert not os.path.exists(os.path.join(os.path.abspath(box.root), "containers", info["Id"]))
        box.cli("rm", "-f", "box1", check=True)
        assert not os.path.exists(cdir)
    finally:
        leaks = box.destroy()
    assert not leaks, leaks
    assert _our_mount(box) == []
    assert not os.path.exists(box.root) and not os.path.exists(f"/run/nsbridge/{box.engine_id}")


def test_files_are_written_again_after_a_reboot(sb):
    sb.cli("network", "create", "--subnet", "10.21.0.0/24", "skynet", check=True)
    sb.cli("run", "-d", "--name", "always", "--restart", "always", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "plain", "--network", "skynet", "alpine", check=True)
    ips = {n: ip_of(sb, n) for n in ("always", "plain")}
    d = _expected_dir(sb)
    # "reboot": processes and namespaces gone, and the tmpfs with its files
    for proc in sb.processes():
        os.kill(int(proc.split(":")[0]), signal.SIGKILL)
    for name in sb.netns_names():
        subprocess.run(["ip", "netns", "del", name], check=True)
    if _run_is_tmpfs():
        subprocess.run(["rm", "-rf", d], check=True)
    else:
        ns.umount(d)
        assert _our_mount(sb) == []
    time.sleep(0.2)
    assert not os.path.exists(os.path.join(d, "containers"))
    sb.cli("system", "restore", check=True)
    if not _run_is_tmpfs():
        assert _our_mount(sb) == [(d, f"nsbridge-{sb.engine_id}")]  # mounted again
    hosts = json.loads(sb.cli("inspect", "always", check=True).stdout)[0]["HostsPath"]
    assert hosts.startswith(d + "/")
    with open(hosts) as f:
        assert ips["always"] in f.read()
    seen = sb.cli("exec", "always", "cat", "/etc/hosts", "/etc/resolv.conf", check=True).stdout
    assert ips["always"] in seen and "nameserver 127.0.0.11" in seen
    assert sb.cli("exec", "always", "nslookup", "always").returncode == 0  # its resolver answers again
    sb.cli("start", "plain", check=True)
    assert sb.cli("exec", "plain", "cat", "/etc/hosts", check=True).stdout.count(ips["plain"]) == 1
    assert_consistent(sb)
