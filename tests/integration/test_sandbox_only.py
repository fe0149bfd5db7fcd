"""The suite's guard (tests/conftest.py sets NSBRIDGE_SANDBOX_ONLY): a command that lost
the sandbox's NSBRIDGE_HOST_NETNS or NSBRIDGE_ROOT is refused in one line and makes
nothing. Run where a failure could harm nothing: inside this test's sandbox namespace
(standing in for the machine's) and a private mount namespace whose /var/lib is an
empty tmpfs (standing in for the machine's /var/lib)."""
from __future__ import annotations

import os
import sys
import subprocess

import pytest

from nsbridge.engine.host import SANDBOX_ONLY

CONTAINED = 'mount -t tmpfs nsbt-var-lib /var/lib && "$@"; rc=$?; ls -A /var/lib >&2; exit $rc'


def link_names(sb) -> set[str]:
    return {x.split(": ")[1] for x in sb.host_run("ip", "-o", "link", "show", check=True).stdout.splitlines()}


def rules(sb) -> list[str]:
    return [x for x in sb.host_run("iptables-save", check=True).stdout.splitlines() if not x.startswith("#")]


def lost(sb, drop: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in sb.env.items() if k not in drop}
    return subprocess.run(
        ["ip", "netns", "exec", sb.name, "unshare", "--mount", "--propagation", "private",
         "sh", "-c", CONTAINED, "sh", *sb.argv(*args)],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("drop,what", [
    (("NSBRIDGE_HOST_NETNS", "NSBRIDGE_ROOT"), "the machine's own network namespace"),
    (("NSBRIDGE_HOST_NETNS",), "the machine's own network namespace"),
    (("NSBRIDGE_ROOT",), "the default state root /var/lib/nsbridge"),
], ids=["both lost", "namespace lost", "root lost"])
@pytest.mark.parametrize("args", [("network", "ls"), ("run", "-d", "--name", "web", "alpine")], ids=lambda a: a[0])
def test_a_command_that_lost_its_sandbox_is_refused_and_makes_nothing(sb, drop, what, args):
    assert os.environ.get(SANDBOX_ONLY) == "1"  # set by tests/conftest.py for the whole suite
    sb.cli("network", "ls", check=True)  # the sandbox namespace exists
    links = link_names(sb)
    chains = rules(sb)
    r = lost(sb, drop, *args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    line, *rest = r.stderr.splitlines()
    assert line.startswith(f"Error: refusing to act on {what}: {SANDBOX_ONLY} is set"), r.stderr
    assert rest == [], f"more than one line, or /var/lib gained {rest}"  # (ls -A /var/lib: empty)
    assert link_names(sb) == links  # no docker0 there
    assert rules(sb) == chains


LEAKY = '''
import os, subprocess

def test_leaks_onto_the_machine():
    subprocess.run(["ip", "link", "add", "nsbtguard0", "type", "veth", "peer", "name", "nsbtguard1"], check=True)
    subprocess.run(["iptables", "-t", "nat", "-N", "NSBT-GUARD"], check=True)
    os.mkdir("/var/lib/nsbridge")
'''


@pytest.mark.parametrize("leaky", [False, True], ids=["clean suite", "leaky suite"])
def test_the_session_fails_if_the_machine_gained_a_device_chain_or_state_root(tmp_path, leaky):
    """tests/conftest.py's session-end check, on a suite of one test, run in a network and
    mount namespace of its own (its "machine": nothing outside is touched)."""
    (tmp_path / "test_one.py").write_text(LEAKY if leaky else "def test_nothing():\n    pass\n")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", CONTAINED, "sh",
         sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), str(tmp_path / "test_one.py")],
        cwd=repo, capture_output=True, text=True, timeout=120)
    if not leaky:
        assert r.returncode == 0, r.stdout[-2000:]
        return
    assert r.returncode == 1, r.stdout[-2000:]
    line = next((x for x in r.stdout.splitlines() if x.startswith("FAILED (session): ")), "")
    assert line.startswith("FAILED (session): the machine's own namespace gained what the test suite must never "
                           "make there: links: nsbtguard0, nsbtguard1; iptables chains: "), r.stdout
    assert "nat NSBT-GUARD" in line and line.endswith("; state root: /var/lib/nsbridge"), line
    assert "1 passed" in r.stdout  # the test itself passed: the session check failed the run
