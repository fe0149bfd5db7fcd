"""Crash safety (issue 6): kill the engine right after every named step of
every operation, then check that the next command (or `system reconcile`)
leaves the store and the kernel agreeing, with nothing stray and nothing
lost that a completed command reported."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration.helpers import assert_consistent, ip_of

# operation -> (set-up commands, the command, its steps)
OPS = {
    "network create": ([], ["network", "create", "crashnet"],
                       ["network.bridge", "network.firewall", "network.resolver", "network.record"]),
    "network rm": ([["network", "create", "crashnet"]], ["network", "rm", "crashnet"],
                   ["network.resolver-stop", "network.teardown"]),
    "run": ([], ["run", "-d", "--name", "crash1", "--network", "skynet", "-p", "9000:80", "--", "sleep", "600"],
            ["container.netns", "endpoint.veth", "endpoint.address", "container.dns", "container.files", "container.ports",
             "container.process", "container.record"]),
    "rm": ([["run", "-d", "--name", "crash1", "--network", "skynet", "-p", "9000:80", "--", "sleep", "600"]],
           ["rm", "-f", "crash1"],
           ["container.kill", "container.netns-remove", "container.ports-remove", "container.forget"]),
    "connect": ([["run", "-d", "--name", "crash1", "alpine"]], ["network", "connect", "skynet", "crash1"],
                ["endpoint.veth", "endpoint.address", "container.files", "endpoint.record"]),
    "disconnect": ([["run", "-d", "--name", "crash1", "--network", "skynet", "--network", "bridge", "alpine"]],
                   ["network", "disconnect", "skynet", "crash1"], ["endpoint.remove"]),
}
CASES = [(op, step) for op, (_s, _c, steps) in OPS.items() for step in steps]


@pytest.mark.slow
@pytest.mark.parametrize("op,step", CASES, ids=[f"{o}@{s}" for o, s in CASES])
def test_crash_after_every_step(sb, op, step):
    setup, cmd, _steps = OPS[op]
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "keeper", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "peer", "--network", "skynet", "alpine", check=True)
    for s in setup:
        sb.cli(*s, check=True)
    env = dict(sb.env, NSBRIDGE_TEST_CRASH_AFTER=step)
    p = subprocess.run(sb.argv(*cmd), env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 137, f"{op} did not reach step {step}: {p.returncode} {p.stderr}"
    # the next mutating command repairs first, users need not know `reconcile`
    if CASES.index((op, step)) % 2:
        sb.cli("run", "-d", "--name", "probe", "alpine", check=True)
        sb.cli("rm", "-f", "probe", check=True)
    else:
        sb.cli("system", "reconcile", check=True)
    assert_consistent(sb)
    # what completed before is intact and works
    assert sb.cli("exec", "keeper", "ping", "-c1", "-W2", ip_of(sb, "peer")).returncode == 0
    assert sb.cli("exec", "keeper", "getent", "hosts", "peer").returncode == 0
    # and the interrupted operation can simply be done again
    sb.cli("rm", "-f", "crash1")
    sb.cli("network", "rm", "crashnet")
    for s in setup:
        sb.cli(*s, check=True)
    sb.cli(*cmd, check=True)
    assert_consistent(sb)


def test_sigint_and_sigterm_roll_back(sb):
    """Ctrl-C or kill in the middle of a `run`: undone, nothing half-made."""
    sb.cli("network", "create", "skynet", check=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        before_ns = sb.netns_names()
        # a step that takes long enough to be interrupted: the command itself
        # stops at a failpoint that sleeps (NSBRIDGE_TEST_PAUSE_AT)
        env = dict(sb.env, NSBRIDGE_TEST_PAUSE_AT="endpoint.address")
        p = subprocess.Popen(sb.argv("run", "-d", "--name", "intr", "--network", "skynet", "alpine"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        marker = os.path.join(sb.root, "paused")
        for _ in range(200):
            if os.path.exists(marker):
                break
            time.sleep(0.02)
        assert os.path.exists(marker), "the command never reached the pause point"
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        os.unlink(marker)
        assert p.returncode == 130, (p.returncode, err)
        assert "Traceback" not in err
        assert sb.netns_names() == before_ns
        assert sb.cli("ps", "-a", "-q", check=True).stdout == ""
        assert sb.cli("system", "reconcile", check=True).stdout.startswith("nothing to do")


def test_restore_after_reboot(sb):
    """Kernel objects gone, store kept: the next command restores networks,
    shows containers exited, restarts `--restart always` ones."""
    sb.cli("network", "create", "--subnet", "10.20.0.0/24", "skynet", check=True)
    sb.cli("run", "-d", "--name", "plain", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "always", "--restart", "always", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "unless", "--restart", "unless-stopped", "--network", "skynet", "alpine", check=True)
    sb.cli("run", "-d", "--name", "stopped", "--restart", "unless-stopped", "--network", "skynet", "alpine", check=True)
    sb.cli("stop", "stopped", check=True)
    ips = {n: ip_of(sb, n) for n in ("plain", "always", "unless")}
    rules_before = sorted(x for x in sb.host_run("iptables-save", check=True).stdout.splitlines() if x.startswith("-A"))
    # "reboot": every process of the sandbox dies, every namespace goes
    for proc in sb.processes():
        os.kill(int(proc.split(":")[0]), signal.SIGKILL)
    for name in sb.netns_names():
        subprocess.run(["ip", "netns", "del", name], check=True)
    time.sleep(0.2)
    status = sb.cli("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout
    assert "plain exited" in status  # a read-only command already tells the truth
    sb.cli("network", "ls", check=True)
    sb.cli("system", "restore", check=True)
    status = dict(line.split() for line in sb.cli("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout.splitlines())
    assert status == {"plain": "exited", "always": "running", "unless": "running", "stopped": "exited"}
    assert ip_of(sb, "always") == ips["always"] and ip_of(sb, "unless") == ips["unless"]
    rules_after = sorted(x for x in sb.host_run("iptables-save", check=True).stdout.splitlines() if x.startswith("-A"))
    assert rules_after == rules_before
    sb.cli("start", "plain", check=True)
    assert ip_of(sb, "plain") == ips["plain"]
    assert sb.cli("exec", "plain", "ping", "-c1", "-W2", "always").returncode == 0
    assert_consistent(sb)
