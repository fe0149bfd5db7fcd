"""The CLI's read and exec paths stay light (issue 3: ls/ps/inspect <= 40 ms,
exec <= 30 ms, where Python's start and imports are most of the time).
Timing is the benchmark's job (tools/bench.py core); this test pins what the
benchmark's figures rest on: which modules those commands import, and that
`exec` takes the container's PATH from its record, not from the image catalog."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

# Each of these costs milliseconds to import and is not needed to read the
# store or to enter a container: pyroute2 ~100 ms, dataclasses (with inspect,
# ast, dis) ~6 ms, typing ~2 ms; scapy is for the tools only.
HEAVY = ("pyroute2", "scapy", "dataclasses", "inspect", "typing", "subprocess", "shutil", "asyncio", "logging")


def _imported(sb, *args: str) -> set[str]:
    p = subprocess.run(
        [*sb.argv()[:1], "-X", "importtime", "-m", "nsbridge", *args],
        env=sb.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    mods = {m.group(1).strip() for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|(.*)$", p.stderr, re.M)}
    assert "nsbridge.cli.main" in mods  # the probe did see our imports
    return mods


@pytest.mark.parametrize(
    "args",
    [("network", "ls"), ("ps", "-a"), ("inspect", "probe"), ("network", "inspect", "bridge"), ("exec", "probe", "true")],
    ids=lambda a: " ".join(a),
)
def test_read_and_exec_paths_import_nothing_heavy(sb, args):
    sb.cli("run", "-d", "--name", "probe", "alpine", check=True)
    mods = _imported(sb, *args)
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, f"`nsbridge {' '.join(args)}` imports {heavy}"
    if args[0] == "exec":
        # the container's record carries its PATH; the catalog is for run/create
        assert "json" in mods and not any(m.startswith("nsbridge.engine.standins") for m in mods)


def test_show_and_why_read_the_kernel_without_pyroute2_or_scapy(sb):
    """show reads every namespace by plain rtnetlink dumps (kernel/rtnl.py) and
    the ruleset by one `iptables-save -c`: subprocess is its one allowance."""
    sb.cli("network", "create", "skynet", check=True)
    sb.cli("run", "-d", "--name", "probe", "--network", "skynet", "alpine", check=True)
    for args in (("show",), ("show", "probe", "--format", "html")):
        mods = _imported(sb, *args)
        heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY and m.split(".")[0] != "subprocess")
        assert not heavy, f"`nsbridge {' '.join(args)}` imports {heavy}"
        assert "nsbridge.kernel.rtnl" in mods
    mods = _imported(sb, "why", "probe", "host")
    assert not [m for m in mods if m.split(".")[0] in ("pyroute2", "scapy")], sorted(mods)
    # link and impair change the kernel through the engine (pyroute2): scapy stays trace's alone
    for args in (("link", "probe", "skynet", "down"), ("impair", "probe", "skynet", "--rate", "1mbit")):
        mods = _imported(sb, *args)
        assert not [m for m in mods if m.split(".")[0] == "scapy"], (args, sorted(mods))
    assert "scapy.layers.inet" in _imported(sb, "trace", "skynet", "-c", "1", "--timeout", "1")


def test_path_is_recorded_in_config_env_as_docker_does(sb):
    sb.cli("run", "-d", "--name", "bb", "busybox", check=True)
    sb.cli("run", "-d", "--name", "own", "-e", "PATH=/bin:/usr/bin", "-e", "A=1", "alpine", check=True)
    env = json.loads(sb.cli("inspect", "--format", "{{json .Config.Env}}", "bb", check=True).stdout)
    assert len(env) == 1 and env[0].startswith("PATH=") and env[0].endswith(":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    # busybox-flavoured: its applets (sh, ping, wget) come first, as in the image
    first = env[0][5:].split(":")[0]
    assert sb.cli("exec", "bb", "sh", "-c", "command -v ping", check=True).stdout.strip() == f"{first}/ping"
    # a PATH of the user's replaces the image's, as Docker merges Config.Env
    env = json.loads(sb.cli("inspect", "--format", "{{json .Config.Env}}", "own", check=True).stdout)
    assert env == ["PATH=/bin:/usr/bin", "A=1"]
    assert sb.cli("exec", "own", "sh", "-c", 'echo "$PATH $A"', check=True).stdout.strip() == "/bin:/usr/bin 1"
