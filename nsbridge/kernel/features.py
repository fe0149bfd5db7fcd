"""Which kernel features the running kernel has, for drivers that need more
than veths and bridges (macvlan, ipvlan, 802.1Q, dummy): asked before
anything is made, so a missing one fails at once in one line.

The kernel's own build configuration answers (/proc/config.gz, else
/boot/config-<release>); a feature built as a module whose file is missing
is caught when the device is made (EOPNOTSUPP, kernel/netlink.py says which
option). With no configuration to read, the device's creation decides."""
from __future__ import annotations

import os

#: device kind -> the kernel option that provides it
OPTION_OF_KIND = {
    "macvlan": "CONFIG_MACVLAN",
    "ipvlan": "CONFIG_IPVLAN",
    "vlan": "CONFIG_VLAN_8021Q",
    "dummy": "CONFIG_DUMMY",
}
#: what a user calls them
WHAT = {"macvlan": "macvlan", "ipvlan": "ipvlan", "vlan": "802.1Q VLAN sub-interfaces", "dummy": "dummy devices"}


def lacking(kind: str, option: str) -> str:
    return f"this kernel ({os.uname().release}) has no {WHAT.get(kind, kind)}: it was built without {option}"


def _config() -> dict[str, str] | None:
    """OPTION -> y|m|n from the running kernel's build configuration, None if unreadable."""
    text = None
    try:
        import gzip

        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        try:
            with open(f"/boot/config-{os.uname().release}") as f:
                text = f.read()
        except OSError:
            return None
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            out[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:-len(" is not set")]] = "n"
    return out


def has(option: str) -> bool | None:
    """True (built in or a module), False (not built), None (cannot tell)."""
    cfg = _config()
    if cfg is None:
        return None
    return cfg.get(option, "n") in ("y", "m")


def require(kind: str) -> str | None:
    """The one-line refusal when the kernel lacks device KIND, else None."""
    option = OPTION_OF_KIND[kind]
    return lacking(kind, option) if has(option) is False else None
