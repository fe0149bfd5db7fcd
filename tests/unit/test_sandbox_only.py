"""Under NSBRIDGE_SANDBOX_ONLY (tests/conftest.py sets it for the whole suite) the
engine refuses the machine's own network namespace and the default state root, in
one line, before anything is made: a test, tool or child process that lost its
NSBRIDGE_HOST_NETNS / NSBRIDGE_ROOT on the way cannot fall back to the machine."""
from __future__ import annotations

import os

import pytest

from nsbridge.engine.host import DEFAULT_ROOT, SANDBOX_ONLY, Host
from nsbridge.errors import PermissionDenied


@pytest.fixture
def lost_env(monkeypatch):
    """A child that lost the sandbox's variables, under the suite's guard."""
    monkeypatch.setenv(SANDBOX_ONLY, "1")
    monkeypatch.delenv("NSBRIDGE_HOST_NETNS", raising=False)
    monkeypatch.delenv("NSBRIDGE_ROOT", raising=False)


def test_the_suite_sets_the_guard():
    assert os.environ.get(SANDBOX_ONLY) == "1"


@pytest.mark.parametrize("root,netns,what", [
    (None, None, "the machine's own network namespace"),        # both lost: the machine itself
    ("/tmp/nsbt-root", None, "the machine's own network namespace"),   # the namespace lost
    (None, "nsbt123456", f"the default state root {DEFAULT_ROOT}"),   # the root lost
    (DEFAULT_ROOT + "/labs/lab-x", "lab-x", f"the default state root {DEFAULT_ROOT}"),  # a lab under it
])
def test_a_lost_sandbox_is_refused_in_one_line(lost_env, root, netns, what):
    with pytest.raises(PermissionDenied) as e:
        Host.from_env(root, netns)
    msg = str(e.value)
    assert msg.startswith(f"refusing to act on {what}: {SANDBOX_ONLY} is set") and "\n" not in msg, msg


def test_a_sandbox_passes_and_without_the_guard_the_machine_is_allowed(lost_env, monkeypatch, tmp_path):
    h = Host.from_env(str(tmp_path), "nsbt123456")
    assert (h.root, h.netns) == (str(tmp_path), "nsbt123456")
    monkeypatch.delenv(SANDBOX_ONLY)
    assert Host.from_env(None, None) == Host(DEFAULT_ROOT, None)  # a user's own machine: its default
