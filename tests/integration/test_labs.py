"""Labs on the real kernel: every shipped lesson comes up in a sandbox host of
its own, passes its checks, converges to a changed file applying only the
difference (untouched containers keep their IDs and start times), and goes
down leaving nothing. Several labs run side by side."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from nsbridge.compose.load import parse_yaml
from nsbridge.lab import folder, lessons
from nsbridge.engine.host import Host

LESSONS = [x.name for x in lessons.index() if x.available]


def lab_host(sb, name: str) -> Host:
    return folder.sandbox_host(Host(sb.root, sb.name), name)


def lab_cli(sb, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A plain nsbridge command against lab NAME's sandbox host."""
    h = lab_host(sb, name)
    return sb.cli("--host-netns", h.netns, "--root", h.root, *args, check=check)


def started(sb, name: str) -> dict[str, tuple[str, str]]:
    """container name -> (ID, StartedAt), from `inspect`."""
    names = lab_cli(sb, name, "ps", "-a", "--format", "{{.Names}}").stdout.split()
    out = {}
    for n in names:
        d = json.loads(lab_cli(sb, name, "inspect", n).stdout)[0]
        out[n] = (d["Id"], d["State"]["StartedAt"])
    return out


def leftovers(sb, h: Host) -> list[str]:
    """What of lab host H is still there: the namespaces marked as its engine's (never
    guessed from a name: lab `lab-2`'s are not lab `lab`'s), its processes, its state."""
    from nsbridge.sandbox import Sandbox

    mine = Sandbox(name=h.netns, root=h.root)
    left = mine.netns_names() + mine.processes()
    if os.path.exists(h.root):
        left.append(h.root)
    return left


def change(d: str) -> tuple[str, str]:
    """Change the lab's file: one service gets a new setting (it alone must
    be made again), and a new service is added (made, nothing else touched).
    Returns (the changed service's container name, the new one's)."""
    path = os.path.join(d, "compose.yaml")
    with open(path) as f:
        doc = parse_yaml(f.read(), path)
    svcs = doc["services"]
    needed = set()
    for s in svcs.values():  # services others share a namespace with or link to follow them: not those
        mode = str(s.get("network_mode", ""))
        if mode.startswith("service:"):
            needed.add(mode[8:])
        needed |= {ln.split(":")[0] for ln in s.get("links", [])}
    victim = next(n for n in reversed(list(svcs)) if n not in needed)
    svcs[victim]["environment"] = {"LAB_CHANGED": "1"}
    svcs["extra"] = {"image": "busybox", "container_name": "extra-box", "network_mode": "bridge"}
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return svcs[victim].get("container_name") or f"{os.path.basename(d)}-{victim}-1", "extra-box"


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_up_check_converge_down(sb, tmp_path, name):
    d = str(tmp_path / name)
    sb.cli("lab", "get", name, d, check=True)
    up = sb.cli("lab", "up", d, check=True)
    assert "WARNING" not in up.stderr, up.stderr
    h = lab_host(sb, name)
    assert os.path.exists(f"/run/netns/{h.netns}")

    graded = sb.cli("lab", "check", d)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    lines = graded.stdout.strip().splitlines()
    assert lines[-1].startswith("checks: ") and lines[-1].endswith(" 0 failed")
    assert all(x.startswith("PASS  ") for x in lines[:-1])

    # an unchanged lab: up is a no-op
    before = started(sb, name)
    again = sb.cli("lab", "up", d, check=True)
    assert all(x.endswith("  Running") for x in again.stderr.splitlines() if x.startswith(" \u2714"))
    assert started(sb, name) == before

    # a changed file: only the difference is applied
    changed, added = change(d)
    plan = sb.cli("lab", "up", "--dry-run", d, check=True).stderr
    assert f"DRY-RUN MODE -  Container {changed}  Recreated" in plan
    assert f"DRY-RUN MODE -  Container {added}  Started" in plan
    assert started(sb, name) == before  # the dry run touched nothing
    sb.cli("lab", "up", d, check=True)
    after = started(sb, name)
    assert set(after) == set(before) | {added}
    assert after[changed][0] != before[changed][0]
    for n in set(before) - {changed}:
        assert after[n] == before[n], f"{n} was touched"
    env = json.loads(lab_cli(sb, name, "inspect", "-f", "{{json .Config.Env}}", changed).stdout)
    assert "LAB_CHANGED=1" in env
    graded = sb.cli("lab", "check", d)
    assert graded.returncode == 0, graded.stdout

    down = sb.cli("lab", "down", d, check=True)
    assert f"Sandbox host {h.netns}  Removed" in down.stderr
    assert leftovers(sb, h) == []


def test_check_fails_with_reasons_and_a_non_zero_exit(sb, tmp_path):
    d = str(tmp_path / "user-network")
    sb.cli("lab", "get", "user-network", d, check=True)
    with open(os.path.join(d, "checks.yaml"), "a") as f:
        f.write("  - not-reach: container1 -> container2\n"
                "  - reach: container1 -> container2:6379/tcp\n"
                "  - resolve: {from: container1, name: nosuch, expect: 10.0.0.1}\n"
                "  - exec: {in: container2, run: 'exit 3'}\n"
                "  - reach: ghost -> container1\n")
    sb.cli("lab", "up", d, check=True)
    out = sb.cli("lab", "exec", d, "container1", "ping", "-c1", "container2", check=True).stdout
    assert "1 packets received" in out
    h = lab_host(sb, "user-network")
    env = sb.cli("lab", "env", d, check=True).stdout
    assert env.strip() == f"export NSBRIDGE_HOST_NETNS={h.netns} NSBRIDGE_ROOT={h.root}"
    p = sb.cli("lab", "check", d)
    assert p.returncode == 1
    out = p.stdout.splitlines()
    assert out[-1] == "checks: 4 passed, 5 failed"
    fails = [x for x in out if x.startswith("FAIL  ")]
    assert "reached: echo reply" in fails[0]
    assert "connection refused" in fails[1]
    assert "NXDOMAIN" in fails[2] or "SERVFAIL" in fails[2]
    assert "exit code 3, not 0" in fails[3]
    assert "no service or container 'ghost'" in fails[4]
    sb.cli("lab", "down", d, check=True)


def test_labs_run_side_by_side_and_go_down_one_by_one(sb, tmp_path):
    """Two copies of one lesson, whose names share a prefix (`lab`, `lab-2`):
    each in its own sandbox host, same addresses, no interference."""
    dirs = []
    for n in ("lab", "lab-2"):
        d = str(tmp_path / n)
        sb.cli("lab", "get", "user-network", d, check=True)
        sb.cli("lab", "up", d, check=True)
        dirs.append(d)
    for d in dirs:
        assert sb.cli("lab", "check", d).returncode == 0
    ls = sb.cli("lab", "ls", check=True).stdout
    assert "lab " in ls and "lab-2 " in ls
    sb.cli("lab", "down", dirs[0], check=True)
    assert leftovers(sb, lab_host(sb, "lab")) == []
    p = sb.cli("lab", "check", dirs[1])
    assert p.returncode == 0, p.stdout + p.stderr
    sb.cli("lab", "down", dirs[1], check=True)
    assert leftovers(sb, lab_host(sb, "lab-2")) == []


def test_lab_without_a_sandbox_runs_on_the_current_host(sb, tmp_path):
    d = str(tmp_path / "user-network")
    sb.cli("lab", "get", "user-network", d, check=True)
    sb.cli("lab", "up", "--no-sandbox", d, check=True)
    assert "container1" in sb.cli("ps", "--format", "{{.Names}}", check=True).stdout
    assert sb.cli("lab", "check", d).returncode == 0  # found where it runs, no flag needed
    sb.cli("lab", "down", d, check=True)
    assert sb.cli("ps", "-aq", check=True).stdout == ""
    assert "user-network" not in sb.cli("network", "ls", check=True).stdout


def test_a_dry_run_of_a_new_lab_makes_nothing(sb, tmp_path):
    d = str(tmp_path / "ports")
    sb.cli("lab", "get", "ports", d, check=True)
    p = sb.cli("lab", "up", "--dry-run", d, check=True)
    assert " \u2714 DRY-RUN MODE -  Container web  Started" in p.stderr.splitlines()
    h = lab_host(sb, "ports")
    assert leftovers(sb, h) == [] and not os.path.exists(os.path.join(sb.root, "labs"))
    # a broken file is refused by the dry run too, and still nothing is made
    import yaml

    path = os.path.join(d, "compose.yaml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    doc["services"]["broken"] = {"image": "alpine", "ports": ["99999:80"], "networks": ["shop"]}
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    p = sb.cli("lab", "up", "--dry-run", d)
    assert p.returncode != 0 and "99999" in p.stderr
    assert leftovers(sb, h) == []
