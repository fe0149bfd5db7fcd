"""Kernel objects belong to exactly one engine (host + state root), and that is
written on each object, never guessed from its name (issue 11, item 1): sandbox
hosts whose names share a prefix, a sandbox named like another engine's
container, a second state root on one host, and objects of ours that someone
else made look alike."""
from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from nsbridge.sandbox import Sandbox
from tests.integration.helpers import assert_consistent, ip_of
from tests.integration.test_hostile_input import error_lines


@contextlib.contextmanager
def extra_sandbox(name: str):
    """A second sandbox for one test, with the same leak check as the fixture's."""
    box = Sandbox(name=name)
    try:
        yield box
    finally:
        leaks = box.destroy()
    assert not leaks, f"sandbox {box.name} leaked: {leaks}"


def netns() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()) - {"(id:"}


def names(out: str) -> set[str]:
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def one_line(r: subprocess.CompletedProcess) -> str:
    """The one error line of a failed command (Docker's hint lines after a run error aside)."""
    lines = error_lines(r.stderr)
    assert r.returncode in (1, 125) and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


def test_sandboxes_sharing_a_name_prefix_leave_each_other_alone(sb):
    with extra_sandbox(sb.name + "-2") as other:
        other.cli("network", "create", "skynet", check=True)
        other.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
        other.cli("run", "-d", "--name", "db", "--network", "skynet", "alpine", check=True)
        sb.cli("run", "-d", "--name", "box", "alpine", check=True)
        theirs = {other.name, f"{other.name}-web", f"{other.name}-db"}
        assert theirs <= netns()
        # our container "2-web" would be their container web's namespace: refused, theirs kept
        line = one_line(sb.cli("run", "-d", "--name", "2-web", "alpine"))
        assert f"network namespace {other.name}-web" in line, line
        assert sb.cli("ps", "-a", "-q").stdout.count("\n") == 1
        # our reconcile and our reset do not see their objects as ours
        assert sb.cli("system", "reconcile", check=True).stdout.strip() == "nothing to do: the store and the kernel agree"
        assert_consistent(sb)
        assert theirs <= netns()
        reset = sb.cli("system", "reset", "-f", check=True).stdout
        assert not theirs & set(reset.split()), reset
        assert theirs <= netns()
        assert names(other.cli("ps", "--format", "{{.Names}}", check=True).stdout) == {"web", "db"}
        assert other.cli("exec", "web", "ping", "-c1", "-W2", "db").returncode == 0
        assert other.cli("exec", "db", "ping", "-c1", "-W2", ip_of(other, "web")).returncode == 0
        assert_consistent(other)


def test_a_sandbox_named_like_another_engines_container_is_refused(sb):
    sb.cli("run", "-d", "--name", "bb", "alpine", check=True)
    before = ip_of(sb, "bb")
    with extra_sandbox(f"{sb.name}-bb") as other:
        for argv in (["network", "ls"], ["network", "create", "skynet"], ["run", "-d", "alpine"]):
            line = one_line(other.cli(*argv))
            assert f"network namespace {other.name} is " in line and "another nsbridge engine" in line, line
        # its reset removes nothing of ours
        out = other.cli("system", "reset", "-f", check=True).stdout
        assert "removed sandbox host" not in out, out
    assert f"{sb.name}-bb" in netns()
    r = sb.cli("exec", "bb", "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
    assert before in r
    assert_consistent(sb)


def test_a_second_state_root_on_the_same_host_is_refused(sb):
    sb.cli("network", "create", "skynet", check=True)
    second = Sandbox(name=sb.name)  # same host namespace, another state root
    try:
        line = one_line(second.cli("network", "create", "othernet"))
        assert f"network namespace {sb.name} is the host of another nsbridge engine" in line, line
        assert sb.root in line, line
        out = second.cli("system", "reset", "-f", check=True).stdout
        assert "removed sandbox host" not in out, out
    finally:
        import shutil

        shutil.rmtree(second.root, ignore_errors=True)
    assert sb.name in netns()
    assert_consistent(sb)


def test_look_alikes_that_are_not_ours_are_left_alone(sb):
    """A namespace with our prefix and a device with our kind of alias, made by
    someone else: reconcile and reset leave both."""
    sb.cli("network", "create", "skynet", check=True)
    foreign_ns = f"{sb.name}-foreign"
    subprocess.run(["ip", "netns", "add", foreign_ns], check=True)
    try:
        sb.host_run("ip", "link", "add", "fakebr", "type", "bridge", check=True)
        sb.host_run("ip", "link", "set", "fakebr", "alias", "nsbridge:" + "ab" * 32, check=True)
        assert sb.cli("system", "reconcile", check=True).stdout.strip() == "nothing to do: the store and the kernel agree"
        assert sb.host_run("ip", "link", "show", "fakebr").returncode == 0
        assert foreign_ns in netns()
        sb.host_run("ip", "link", "del", "fakebr", check=True)
        sb.cli("system", "reset", "-f", check=True)
        assert foreign_ns in netns()
    finally:
        subprocess.run(["ip", "netns", "del", foreign_ns])


def test_every_object_carries_the_engines_mark(sb):
    """The mark names the engine: a device group (given at creation, in the same
    request) on bridges and host-side veths, and the loopback alias of each
    namespace (written before the namespace gets its name)."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    info = json.loads(sb.cli("system", "info", "--format", "{{json .}}", check=True).stdout)
    engine, group = info["Engine"]["ID"], info["Engine"]["DeviceGroup"]
    links = json.loads(sb.host_run("ip", "-j", "-d", "link", check=True).stdout)
    ours = [li for li in links if li["ifname"] != "lo"]
    assert ours and all(li["group"] == str(group) for li in ours), [(li["ifname"], li["group"]) for li in ours]
    lo = json.loads(sb.host_run("ip", "-j", "link", "show", "lo", check=True).stdout)[0]
    assert lo["ifalias"] == f"nsbridge:host:{engine}:{sb.root}", lo
    lo = json.loads(subprocess.run(["ip", "-n", f"{sb.name}-web", "-j", "link", "show", "lo"],
                                   capture_output=True, text=True, check=True).stdout)[0]
    cid = sb.cli("inspect", "--format", "{{.Id}}", "web", check=True).stdout.strip()
    assert lo["ifalias"] == f"nsbridge:container:{engine}:{cid}", lo
    # the container's own eth0 looks as on Docker: no group of ours inside
    inside = json.loads(subprocess.run(["ip", "-n", f"{sb.name}-web", "-j", "link", "show", "eth0"],
                                       capture_output=True, text=True, check=True).stdout)[0]
    assert inside["group"] == "default"


@pytest.mark.parametrize("kind", ["bridge", "veth"])
def test_a_device_of_ours_that_lost_its_name_is_found_by_its_group(sb, kind):
    """What a kill between making a device and naming it would leave (the kernel
    ignores an alias at creation): found by the engine's device group alone."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "alpine", check=True)
    group = json.loads(sb.cli("system", "info", "--format", "{{json .Engine}}", check=True).stdout)["DeviceGroup"]
    if kind == "bridge":
        sb.host_run("ip", "link", "add", "br-0123456789ab", "group", str(group), "type", "bridge", check=True)
    else:
        sb.host_run("ip", "link", "add", "veth0123456", "group", str(group), "type", "veth", "peer", "name", "x0", check=True)
    out = sb.cli("system", "reconcile", check=True).stdout
    assert ("br-0123456789ab" if kind == "bridge" else "veth0123456") in out, out
    assert_consistent(sb)
