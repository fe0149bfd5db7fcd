"""Shared pytest set-up: integration tests need root (a sandbox host is a
real network namespace); without it they fail loudly rather than pass.

The machine's own network is never the suite's: the engine refuses it under
NSBRIDGE_SANDBOX_ONLY (set here, inherited by every command a test runs), and
the session fails if the machine's namespace gained a device, an iptables
chain or the default state root while the suite ran."""
from __future__ import annotations

import os
import subprocess

import pytest

from nsbridge.engine.host import DEFAULT_ROOT, SANDBOX_ONLY

# Before any test module builds a Sandbox (its environment is a copy of this one).
os.environ[SANDBOX_ONLY] = "1"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def root_chains() -> set[str]:
    """`table chain` for every iptables chain of the machine's own namespace."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    table, chains = "", set()
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chains.add(f"{table} {line[1:].split()[0]}")
    return chains


def machine_state() -> dict[str, set[str]]:
    """What the suite must never add to the machine itself."""
    if os.geteuid() != 0:
        return {}
    return {"links": root_links(), "iptables chains": root_chains(),
            "state root": {DEFAULT_ROOT} if os.path.lexists(DEFAULT_ROOT) else set()}


def pytest_sessionstart(session):
    session.config._nsbridge_machine = machine_state()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_nsbridge_machine", None)
    if not before:
        return
    after = machine_state()
    gained = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
    if gained:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in gained.items())
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"the machine's own namespace gained what the test suite must never make there: {what}"
        if tr is not None:
            tr.write_line(f"\nFAILED (session): {msg}", red=True, bold=True)
        else:
            print(msg)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
