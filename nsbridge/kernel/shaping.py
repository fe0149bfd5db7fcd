"""Breaking links on purpose: an endpoint's link down/up, and its traffic
shaped with tc queueing disciplines (tbf for a rate; netem for delay, jitter
and loss), through pyroute2 in-process (no `tc` process).

The parsing and checks at the top are pure (unit-tested, no pyroute2
import); the kernel calls below take an NsLink bound to the namespace of the
device they change.
"""
from __future__ import annotations

import errno
import re

from nsbridge.errors import InvalidArgument, KernelError
from nsbridge.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbridge.kernel.netlink import NsLink

MAJORS = (1, 2)  # root handles 1: and 2:, alternated (see apply)
CHILD_MAJOR = 0x10  # the tbf under a netem root: 11: or 12:

_RATE_UNITS = {
    "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "kibit": 2**10, "mibit": 2**20, "gibit": 2**30, "tibit": 2**40,
    "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9, "tbps": 8 * 10**12,
    "kibps": 8 * 2**10, "mibps": 8 * 2**20, "gibps": 8 * 2**30,
}
_TIME_UNITS = {"us": 1, "usec": 1, "ms": 10**3, "msec": 10**3, "s": 10**6, "sec": 10**6}
_NUM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z%]*)\s*$")

NO_NETEM = (
    "this kernel has no netem queueing discipline (sch_netem, CONFIG_NET_SCH_NETEM): "
    "--delay, --jitter and --loss need it; nothing was changed"
)


def parse_rate(text: str) -> int:
    """tc's rate grammar ("10mbit", "500kbit", "1gbit", "100kbps" in bytes):
    bits per second."""
    m = _NUM.match(text)
    unit = (m.group(2).lower() or "bit") if m else ""
    if not m or unit not in _RATE_UNITS:
        raise InvalidArgument(f"invalid rate {text!r}: use tc's units, e.g. 10mbit, 500kbit, 1gbit")
    bits = int(float(m.group(1)) * _RATE_UNITS[unit])
    if not 8000 <= bits <= 32 * 10**9:
        raise InvalidArgument(f"invalid rate {text!r}: between 8kbit and 32gbit")
    return bits


def parse_time(text: str, what: str) -> int:
    """"50ms", "1s", "200us": microseconds. A unit is required (tc would read
    a bare number as microseconds, a surprise in a lesson)."""
    m = _NUM.match(text)
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise InvalidArgument(f"invalid {what} {text!r}: a time with its unit, e.g. 50ms, 1s, 200us")
    us = int(float(m.group(1)) * _TIME_UNITS[m.group(2).lower()])
    if us > 60 * 10**6:
        raise InvalidArgument(f"invalid {what} {text!r}: at most 60s")
    return us


def parse_loss(text: str) -> float:
    m = _NUM.match(text)
    if not m or m.group(2) not in ("", "%") or not 0 <= float(m.group(1)) <= 100:
        raise InvalidArgument(f"invalid loss {text!r}: a percentage from 0% to 100%, e.g. 5%")
    return float(m.group(1))


def fmt_rate(bits: int) -> str:
    for unit, n in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits >= n and bits % n == 0:
            return f"{bits // n}{unit}"
    return f"{bits}bit"


def _fmt_time(us: int) -> str:
    if us % 10**6 == 0:
        return f"{us // 10**6}s"
    return f"{us / 1000:g}ms" if us >= 1000 else f"{us}us"


@record
class Impairment:
    """What an endpoint's traffic is shaped with; None: not set."""

    rate_bits: int | None = None
    delay_us: int | None = None
    jitter_us: int | None = None
    loss_pct: float | None = None

    @classmethod
    def parse(cls, rate: str | None, delay: str | None, jitter: str | None, loss: str | None) -> "Impairment":
        imp = cls(
            parse_rate(rate) if rate is not None else None,
            parse_time(delay, "delay") if delay is not None else None,
            parse_time(jitter, "jitter") if jitter is not None else None,
            parse_loss(loss) if loss is not None else None,
        )
        if imp.jitter_us is not None and imp.delay_us is None:
            raise InvalidArgument("--jitter needs --delay (netem varies a delay)")
        if imp.jitter_us and imp.delay_us is not None and imp.jitter_us > imp.delay_us:
            raise InvalidArgument("--jitter must not exceed --delay")
        return imp

    @property
    def empty(self) -> bool:
        return self.rate_bits is None and not self.needs_netem

    @property
    def needs_netem(self) -> bool:
        return self.delay_us is not None or self.jitter_us is not None or self.loss_pct is not None

    def describe(self) -> str:
        """As tc's arguments would say it: "rate 10mbit delay 50ms 5ms loss 5%"."""
        parts = []
        if self.rate_bits is not None:
            parts.append(f"rate {fmt_rate(self.rate_bits)}")
        if self.delay_us is not None:
            parts.append(f"delay {_fmt_time(self.delay_us)}" + (f" {_fmt_time(self.jitter_us)}" if self.jitter_us else ""))
        if self.loss_pct is not None:
            parts.append(f"loss {self.loss_pct:g}%")
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in (("rate_bits", self.rate_bits), ("delay_us", self.delay_us),
                                  ("jitter_us", self.jitter_us), ("loss_pct", self.loss_pct)) if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Impairment":
        return cls(d.get("rate_bits"), d.get("delay_us"), d.get("jitter_us"), d.get("loss_pct"))


def tbf_params(rate_bits: int) -> dict[str, object]:
    """A token bucket that holds the rate within a few percent for TCP: a
    burst of 10 ms at the rate (at least a few full frames, since veths pass
    64 KB GSO packets that tbf segments), 50 ms of queue."""
    rate = rate_bits // 8
    return {"rate": rate, "burst": max(rate // 100, 16 * 1514), "latency": "50ms"}


def netem_kernel_config() -> bool | None:
    """Does the running kernel's config have netem (y or m)? None: unknown
    (no /proc/config.gz); then the kernel's own answer decides."""
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_NET_SCH_NETEM="):
                    return line.strip().endswith(("=y", "=m"))
        return False
    except OSError:
        return None


# -- kernel ---------------------------------------------------------------------------------
def set_link(link: "NsLink", name: str, up: bool) -> None:
    """Admin state of a device in LINK's namespace."""
    from pyroute2.netlink.exceptions import NetlinkError

    idx = link.index(name)
    if idx is None:
        raise KernelError(f"failed to set {name} {'up' if up else 'down'}: not found")
    try:
        link.ipr.link("set", index=idx, state="up" if up else "down")
    except NetlinkError as e:
        raise KernelError(f"failed to set {name} {'up' if up else 'down'}: {e.args[1] if len(e.args) > 1 else e}") from None


def _unknown_kind(e: Exception) -> bool:
    return getattr(e, "code", 0) in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL)


def _root_handle(index: int) -> int:
    from nsbridge.kernel import rtnl

    return next((q.handle for q in rtnl.qdiscs() if q.index == index and q.parent == 0xFFFFFFFF), 0)


def apply(link: "NsLink", name: str, imp: Impairment) -> None:
    """Replace the root qdisc of device NAME (in LINK's namespace, the thread
    inside it) with IMP; an empty IMP removes it (back to the default).

    The new root gets the handle the current one does not have, so the kernel
    builds it aside and grafts it in one request (same handle, other kind
    would be refused as a change): a kernel without the qdisc refuses before
    anything changed, and the old tree (a tbf under a netem) goes with the
    graft. A second step (tbf under netem) is undone on failure."""
    from pyroute2.netlink.exceptions import NetlinkError

    idx = link.index(name)
    if idx is None:
        raise KernelError(f"failed to shape {name}: not found")
    ipr = link.ipr
    if imp.empty:
        try:
            ipr.tc("del", index=idx, handle=0, parent=0xFFFFFFFF)
        except NetlinkError as e:
            if e.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                raise KernelError(f"failed to clear the qdisc of {name}: {e}") from None
        return
    major = MAJORS[1] if _root_handle(idx) >> 16 == MAJORS[0] else MAJORS[0]
    root = major << 16
    if imp.needs_netem:
        kw: dict[str, object] = {}
        if imp.delay_us is not None:
            kw["delay"] = imp.delay_us
        if imp.jitter_us:
            kw["jitter"] = imp.jitter_us
        if imp.loss_pct is not None:
            kw["loss"] = imp.loss_pct
        try:
            ipr.tc("replace", kind="netem", index=idx, handle=root, **kw)
        except NetlinkError as e:
            if _unknown_kind(e) and netem_kernel_config() is not True:
                raise KernelError(NO_NETEM) from None
            raise KernelError(f"failed to add netem on {name}: {e}") from None
        if imp.rate_bits is not None:
            try:
                ipr.tc("add", kind="tbf", index=idx, handle=(major + CHILD_MAJOR) << 16, parent=root | 1,
                       **tbf_params(imp.rate_bits))
            except NetlinkError as e:
                apply(link, name, Impairment())
                raise KernelError(f"failed to add tbf under netem on {name}: {e}") from None
        return
    assert imp.rate_bits is not None
    try:
        ipr.tc("replace", kind="tbf", index=idx, handle=root, **tbf_params(imp.rate_bits))
    except NetlinkError as e:
        if _unknown_kind(e):
            raise KernelError(f"this kernel has no tbf queueing discipline (sch_tbf, CONFIG_NET_SCH_TBF): {e}") from None
        raise KernelError(f"failed to add tbf on {name}: {e}") from None
