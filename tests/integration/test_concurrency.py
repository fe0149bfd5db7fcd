"""Concurrency (issue 6): 50 mixed commands at once on one host, serialised
by the host lock: no duplicate address, no lost or phantom container, store
and kernel agree, no deadlock; a lock held too long is reported clearly."""
from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os

from tests.integration.helpers import assert_consistent


def test_fifty_mixed_commands_in_parallel(sb):
    sb.cli("network", "create", "n1", check=True)
    sb.cli("network", "create", "n2", check=True)
    for i in range(5):
        sb.cli("network", "create", f"gone{i}", check=True)
    for i in range(10):
        sb.cli("run", "-d", "--name", f"old{i}", "--network", "n1", "alpine", check=True)
        sb.cli("run", "-d", "--name", f"d{i}", "--network", "n1", "--network", "n2", "alpine", check=True)
    cmds = (
        [["run", "-d", "--name", f"new{i}", "--network", "n1", "alpine"] for i in range(10)]
        + [["rm", "-f", f"old{i}"] for i in range(10)]
        + [["network", "disconnect", "n2", f"d{i}"] for i in range(10)]
        + [["exec", f"d{i}", "true"] for i in range(5)]
        + [["network", "connect", "bridge", f"d{i}"] for i in range(5)]
        + [["network", "create", f"fresh{i}"] for i in range(5)]
        + [["network", "rm", f"gone{i}"] for i in range(5)]
    )
    assert len(cmds) == 50
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda c: sb.cli(*c, timeout=180), cmds))
    failed = [(c, r.returncode, r.stderr) for c, r in zip(cmds, results) if r.returncode != 0]
    assert not failed
    names = set(sb.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split())
    assert names == {f"new{i}" for i in range(10)} | {f"d{i}" for i in range(10)}
    nets = set(sb.cli("network", "ls", "--format", "{{.Name}}", check=True).stdout.split())
    assert nets == {"bridge", "host", "none", "n1", "n2"} | {f"fresh{i}" for i in range(5)}
    for net in ("n1", "n2", "bridge"):
        members = json.loads(sb.cli("network", "inspect", "--format", "{{json .Containers}}", net, check=True).stdout)
        ips = [m["IPv4Address"] for m in members.values()]
        assert len(ips) == len(set(ips)), net
    n1 = json.loads(sb.cli("network", "inspect", "--format", "{{json .Containers}}", "n1", check=True).stdout)
    assert len(n1) == 20
    n2 = json.loads(sb.cli("network", "inspect", "--format", "{{json .Containers}}", "n2", check=True).stdout)
    assert n2 == {}
    assert_consistent(sb)


def test_lock_timeout_is_reported(sb):
    sb.cli("network", "ls", check=True)
    fd = os.open(os.path.join(sb.root, "lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        env = dict(sb.env, NSBRIDGE_LOCK_TIMEOUT="1")
        import subprocess

        p = subprocess.run(sb.argv("network", "create", "late"), env=env, capture_output=True, text=True, timeout=30)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"another nsbridge command has held the host lock ({sb.root}/lock) for more than 1 s; try again"
    ]
    # reading commands do not wait for the lock at all
    assert "late" not in sb.cli("network", "ls", check=True).stdout
