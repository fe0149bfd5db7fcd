"""Every integration test gets a fresh sandbox host and state root, and at
teardown proves nothing was leaked (namespaces, processes, state)."""
from __future__ import annotations

import os

import pytest

from nsbridge.sandbox import Sandbox


@pytest.fixture
def sb():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run the README's test command (sudo ./setup.sh test)")
    box = Sandbox()
    try:
        yield box
    finally:
        leaks = box.destroy()
    assert not leaks, f"sandbox {box.name} leaked: {leaks}"
