"""alpine and busybox containers have busybox's applets, and commands are
looked up in the container's PATH (issue 17).

Before: `run -dit --name alpine1 alpine ash` (Docker's "Networking with
standalone containers" tutorial) exited 127, `"ash": executable file not
found in $PATH`, because the command was looked up in the host's PATH, which
has no ash; likewise `exec client wget ...` on a minimal Debian with no wget.
"""
from __future__ import annotations

import os
import re
import time

import pexpect

from nsbridge.engine import process
from nsbridge.errors import KernelError
from nsbridge.model import Container
from tests.integration.helpers import ip_of

APPLETS_DIR = "/run/nsbridge/standins/busybox-applets"


def spawn(sb, *args: str) -> pexpect.spawn:
    argv = sb.argv(*args)
    return pexpect.spawn(argv[0], argv[1:], env=sb.env, encoding="utf-8", timeout=15, dimensions=(24, 80))


def test_dockers_standalone_tutorial_alpine_ash(sb):
    # docker run -dit --name alpine1 alpine ash (twice), then attach (here: exec -it ... ash)
    for name in ("alpine1", "alpine2"):
        r = sb.cli("run", "-dit", "--name", name, "alpine", "ash")
        assert r.returncode == 0, r.stderr
    time.sleep(0.2)
    ps = sb.cli("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout.split("\n")
    assert all(line.split()[1] == "Up" for line in ps if line), ps
    p = spawn(sb, "exec", "-it", "alpine1", "ash")
    p.expect("/ # ")
    p.sendline("ip addr show eth0")  # busybox's ip
    p.expect(r"inet 172\.17\.0\.2/16 .*scope global eth0")
    p.expect("/ # ")
    p.sendline(f"ping -c 2 {ip_of(sb, 'alpine2')}")  # busybox's ping: seq=, not icmp_seq=
    p.expect(r"64 bytes from 172\.17\.0\.3: seq=1 ttl=64 time=")
    p.expect(r"2 packets transmitted, 2 packets received, 0% packet loss")
    p.expect("/ # ")
    p.sendline("exit")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0


def test_commands_are_looked_up_in_the_containers_path(sb):
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "web", "--network", "skynet", "nginx", check=True)
    sb.cli("run", "-d", "--name", "client", "--network", "skynet", "busybox", check=True)
    # the tools a lesson uses are busybox's in busybox and alpine containers
    out = sb.cli("exec", "client", "sh", "-c", "for t in ash sh ping ip nslookup wget nc; do command -v $t; done",
                 check=True).stdout.split()
    assert out == [f"{APPLETS_DIR}/{t}" for t in ("ash", "sh", "ping", "ip", "nslookup", "wget", "nc")]
    assert all(os.path.realpath(p) == os.path.realpath("/usr/bin/busybox") for p in out)
    # ash (which the host does not have) runs by `exec`, `exec -d` and `run` alike
    assert sb.cli("exec", "client", "ash", "-c", "echo $((6*7))", check=True).stdout == "42\n"
    sb.cli("exec", "-d", "client", "ash", "-c", "echo detached-ash", check=True)
    for _ in range(50):
        if "detached-ash" in sb.cli("logs", "client", check=True).stdout:
            break
        time.sleep(0.1)
    assert "detached-ash" in sb.cli("logs", "client", check=True).stdout
    assert sb.cli("run", "--rm", "--network", "skynet", "alpine", "ash", "-c", "exit 3").returncode == 3
    # busybox's wget and nslookup, by name, on the user network
    page = sb.cli("exec", "client", "wget", "-q", "-O", "-", "http://web/", check=True).stdout
    assert "Served by container <b>web</b>" in page
    out = sb.cli("exec", "client", "nslookup", "web", check=True).stdout
    assert re.search(r"Name:\s+web\nAddress: 172\.18\.0\.2", out), out
    # a PATH of the user's is the container's PATH: no applets there, Docker's error for ash
    sb.cli("run", "-d", "--name", "own", "-e", "PATH=/usr/bin:/bin", "alpine", check=True)
    r = sb.cli("exec", "own", "ash")
    assert r.returncode == 127
    assert 'exec: "ash": executable file not found in $PATH' in r.stderr
    # images that are not busybox-flavoured have the host's tools only, as ubuntu has no ash
    r = sb.cli("run", "--rm", "ubuntu", "ash", "-c", "true")
    assert r.returncode == 127 and '"ash": executable file not found in $PATH' in r.stderr
    assert sb.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split() == ["own", "client", "web"]


def test_a_failure_entering_the_container_is_one_line(sb):
    """What the kernel refused in the child (here: joining a netns that is
    gone) comes back as one line, not as "Exception occurred in preexec_fn"."""
    c = Container(id="0" * 64, name="ghost", created="", env=["PATH=/usr/bin:/bin"])
    entry = process.Entry("/run/netns/nsbridge-no-such-netns", "ghost", {}, None)
    d = os.path.join(sb.root, "ghost")
    os.makedirs(d)
    try:
        process.spawn_detached(entry, c, ["true"], os.path.join(d, "log"), os.path.join(d, "exit"))
    except KernelError as e:
        msg = str(e)
    else:
        raise AssertionError("entering a netns that does not exist did not fail")
    assert msg == "unable to start container process: /run/netns/nsbridge-no-such-netns: No such file or directory"
    assert "\n" not in msg and "preexec_fn" not in msg
