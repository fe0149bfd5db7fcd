"""Shared pytest set-up: integration tests need root (a sandbox host is a
real network namespace); without it they fail loudly rather than pass."""
from __future__ import annotations

import os
import subprocess

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


@pytest.fixture(scope="session", autouse=True)
def machine_untouched():
    """The machine's own namespace must look the same after the suite."""
    before = root_links() if os.geteuid() == 0 else set()
    yield
    if os.geteuid() == 0:
        added = root_links() - before
        assert not added, f"the test suite left links in the machine's own namespace: {sorted(added)}"
