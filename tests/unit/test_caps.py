"""Capability sets from --cap-add/--cap-drop/--privileged, by moby's rules
(oci/caps TweakCapabilities, NormalizeLegacyCapabilities)."""
from __future__ import annotations

import pytest

from nsbridge.errors import InvalidArgument
from nsbridge.kernel import caps


def test_docker_default_set():
    assert caps.effective([], [], False) == list(caps.DEFAULT)
    assert "CAP_NET_ADMIN" not in caps.DEFAULT and "CAP_SYS_ADMIN" not in caps.DEFAULT
    # the mask Docker containers show in /proc/PID/status
    assert sum(1 << n for n in caps.numbers(caps.effective([], [], False))) == 0xA80425FB


def test_add_drop_all_and_privileged():
    assert caps.effective(["net_admin"], [], False) == [*caps.DEFAULT, "CAP_NET_ADMIN"]
    assert caps.effective(["NET_ADMIN", "CAP_NET_ADMIN"], [], False).count("CAP_NET_ADMIN") == 1
    assert "CAP_NET_RAW" not in caps.effective([], ["net_raw"], False)
    assert caps.effective(["CAP_NET_RAW"], ["all"], False) == ["CAP_NET_RAW"]
    assert caps.effective([], ["ALL"], False) == []
    most = caps.effective(["ALL"], ["CHOWN"], False)
    assert "CAP_CHOWN" not in most and "CAP_SYS_ADMIN" in most and len(most) == len(caps.NAMES) - 1
    # dropping and adding the same: moby drops from the defaults, then adds
    assert "CAP_KILL" in caps.effective(["KILL"], ["KILL"], False)
    assert caps.effective(["NET_ADMIN"], ["ALL"], True) is None  # --privileged: all, whatever else
    assert caps.numbers(None) is None


@pytest.mark.parametrize(
    "add, drop, message",
    [
        (["foo"], [], 'invalid CapAdd: unknown capability: "CAP_FOO"'),
        (["CAP_NET_ADMIN", "cap_nope"], [], 'invalid CapAdd: unknown capability: "CAP_NOPE"'),
        ([], ["bogus"], 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
        ([], [""], 'invalid CapDrop: unknown capability: "CAP_"'),
    ],
)
def test_unknown_capability_is_dockers_error(add, drop, message):
    with pytest.raises(InvalidArgument) as e:
        caps.validate(add, drop)
    assert str(e.value) == message


def test_names_are_the_kernels():
    assert caps.NUMBER["CAP_NET_ADMIN"] == 12 and caps.NUMBER["CAP_SYS_ADMIN"] == 21
    assert caps.NUMBER["CAP_CHECKPOINT_RESTORE"] == 40
