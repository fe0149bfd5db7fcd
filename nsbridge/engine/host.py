"""The host: the network namespace that owns bridges, rules and resolvers,
and the state root on disk. Normally the machine's own namespace; with
--host-netns a sandbox namespace that is created on first use."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from nsbridge.errors import InvalidArgument, PermissionDenied
from nsbridge.record import record

DEFAULT_ROOT = "/var/lib/nsbridge"
# Set by the test suite (tests/conftest.py): the engine then refuses the machine's own
# namespace and state root, whatever a test, tool or child process lost on the way.
SANDBOX_ONLY = "NSBRIDGE_SANDBOX_ONLY"


def refuse_machine(root: str, host_netns: str | None) -> None:
    """Under NSBRIDGE_SANDBOX_ONLY, refuse (one line) to act on the machine's own
    network namespace or the default state root: a test that fell back to them would
    make docker0 and rules on the machine itself."""
    if not os.environ.get(SANDBOX_ONLY):
        return
    real = os.path.realpath(root)
    if host_netns is None or not host_netns:
        what = "the machine's own network namespace"
    elif real == DEFAULT_ROOT or real.startswith(DEFAULT_ROOT + "/"):
        what = f"the default state root {DEFAULT_ROOT}"
    else:
        try:  # a name under /run/netns bound to the machine's namespace is that namespace
            a, b = os.stat(f"/run/netns/{host_netns}"), os.stat("/proc/1/ns/net")
            same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        except OSError:
            same = False
        if not same:
            return
        what = f"the machine's own network namespace (/run/netns/{host_netns} is it)"
    raise PermissionDenied(f"refusing to act on {what}: {SANDBOX_ONLY} is set (a sandbox only: "
                           "give --host-netns NAME and --root DIR, or NSBRIDGE_HOST_NETNS and NSBRIDGE_ROOT)")


@record
class Host:
    root: str
    netns: str | None  # sandbox host namespace name; None: the machine's own

    @classmethod
    def from_env(cls, root: str | None = None, host_netns: str | None = None) -> "Host":
        root = root or os.environ.get("NSBRIDGE_ROOT") or DEFAULT_ROOT
        host_netns = host_netns or os.environ.get("NSBRIDGE_HOST_NETNS") or None
        if host_netns is not None and (
            not host_netns or "/" in host_netns or len(host_netns) > 40 or not host_netns.isprintable()
            or any(ch.isspace() for ch in host_netns) or host_netns in (".", "..")
        ):
            raise InvalidArgument(f"invalid host namespace name: {host_netns!r}")
        refuse_machine(root, host_netns)
        return cls(os.path.abspath(root), host_netns)

    # -- paths ---------------------------------------------------------------
    @property
    def db(self) -> str:
        return os.path.join(self.root, "state.db")

    @property
    def lock(self) -> str:
        return os.path.join(self.root, "lock")

    @property
    def log(self) -> str:
        return os.path.join(self.root, "nsbridge.log")

    @property
    def dns_dir(self) -> str:
        return os.path.join(self.root, "dns")

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    @property
    def upstream_resolv(self) -> str:
        """The host's resolv.conf: a sandbox gets its own, empty unless a test
        points it at a stub resolver; it never inherits the machine's."""
        if self.netns:
            return os.path.join(self.root, "host-resolv.conf")
        if os.path.exists("/run/systemd/resolve/resolv.conf"):
            # systemd-resolved's 127.0.0.53 is unreachable from containers (as Docker does).
            return "/run/systemd/resolve/resolv.conf"
        return "/etc/resolv.conf"

    @property
    def netns_path(self) -> str | None:
        return f"/run/netns/{self.netns}" if self.netns else None

    def ctr_netns_name(self, name: str) -> str:
        """Named after the container so `ip netns exec NAME` works; prefixed
        with the sandbox name inside a sandbox so sandboxes never collide."""
        return f"{self.netns}-{name}" if self.netns else name

    def prepare_root(self, create: bool = True) -> None:
        """Root-only state, checked at every start (engine/stateroot.py): the
        root and its directories 0700, the database and the lock 0600, never a
        symlink, never under a directory another user could change. What root
        owns but left too open is fixed and said in one warning line."""
        from nsbridge.engine import stateroot

        fixed = stateroot.prepare(self.root, create)
        if fixed:
            import logging
            import sys

            msg = "permissions of the state were too open, now root-only: " + ", ".join(fixed)
            lg = logging.getLogger("nsbridge")
            if lg.handlers:  # (read-only verbs set up no log; Python would print it again)
                lg.warning("%s", msg)
            sys.stderr.write(f"WARNING: {msg}\n")
        if create and self.netns and not os.path.exists(self.upstream_resolv):
            stateroot.create_new(
                self.upstream_resolv, "# upstream nameservers of sandbox host %s (none: no route out)\n" % self.netns
            )

    # -- ownership (engine/owner.py) -------------------------------------------
    @property
    def engine_id(self) -> str:
        from nsbridge.engine import owner

        return owner.engine_id(self.netns, self.root)

    @property
    def device_group(self) -> int:
        from nsbridge.engine import owner

        return owner.device_group(self.engine_id)

    # -- namespace -------------------------------------------------------------
    def exists(self) -> bool:
        from nsbridge.kernel import ns

        return self.netns is None or ns.netns_exists(self.netns)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the host namespace for the block."""
        from nsbridge.kernel import ns

        with ns.in_netns(self.netns_path):
            yield
