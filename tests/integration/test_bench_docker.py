"""`tools/bench.py docker` runs end to end where no Docker daemon answers: it says Docker was not
measured (never a made-up figure), measures nsbridge alone, prints both of its tables in their
shape, and leaves nothing behind. The test never starts Docker and asserts no timing."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "tools")
VERBS = ["network ls", "ps -a", "inspect CTR", "network create", "network rm", "run -d", "network connect",
         "network disconnect", "exec NAME true", "rm -f"]
NUM = re.compile(r"^-?\d+\.\d$")


def _table(out: str, title_start: str) -> tuple[list[str], list[list[str]]]:
    lines = out.split(f"### {title_start}", 1)[1].split("\n\n", 2)[1].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    return cells[0], cells[2:]


def test_bench_docker_without_a_daemon_measures_nsbridge_alone(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run the README's test command (sudo ./setup.sh test)")
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    p = subprocess.run(
        [sys.executable, os.path.join(TOOLS, "bench.py"), "docker", "--rounds", "1", "--import-runs", "1",
         "--state-dir", str(tmp_path)],
        env={**os.environ, "DOCKER_HOST": nowhere}, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = p.stdout
    assert f"docker: not measured (no daemon reachable at {nowhere}" in out
    sandbox = re.search(r"sandbox host (nsbt[0-9a-f]+), state root (\S+) \(", out)
    assert sandbox and sandbox.group(2).startswith(str(tmp_path))

    header, rows = _table(out, "whole-process CLI wall time")
    assert header == ["verb", "kind", "docker ms", "nsbridge ms", "nsbridge/docker", "target", "met"]
    assert [r[0] for r in rows[:-1]] == VERBS and rows[-1][0].startswith("floor: docker --version / python")
    for verb, kind, docker, nsb, ratio, target, met in rows[:-1]:
        assert docker == "not measured" and ratio == "-" and met == "-", verb
        assert NUM.match(nsb), f"{verb}: {nsb}"
        assert target == ("<= 1.0x" if kind == "read" else "<= 0.5x"), verb
    assert NUM.match(rows[-1][3]) and rows[-1][2] == "not measured"
    assert "targets met" not in out  # no verdict without Docker's figures

    header, rows = _table(out, "where nsbridge's time goes")
    assert header[:7] == ["verb", "wall", "python start", "imports", "nsbridge.cli.main", "pyroute2 (wherever)",
                          "rest: the verb's work"]
    assert [r[0] for r in rows] == VERBS
    for r in rows:
        assert all(NUM.match(c) for c in r[1:7]), r
        assert float(r[4]) > 0, f"{r[0]}: the probe saw no import of nsbridge.cli.main"

    # nothing left: not the sandbox host, nor its containers, nor its state root
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert sandbox.group(1) not in netns
    assert not os.path.exists(sandbox.group(2))
