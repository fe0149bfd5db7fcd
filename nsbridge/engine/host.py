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


@record
class Host:
    root: str
    netns: str | None  # sandbox host namespace name; None: the machine's own

    @classmethod
    def from_env(cls, root: str | None = None, host_netns: str | None = None) -> "Host":
        root = root or os.environ.get("NSBRIDGE_ROOT") or DEFAULT_ROOT
        host_netns = host_netns or os.environ.get("NSBRIDGE_HOST_NETNS") or None
        if host_netns is not None and (not host_netns or "/" in host_netns or len(host_netns) > 40):
            raise InvalidArgument(f"invalid host namespace name: {host_netns!r}")
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

    def prepare_root(self) -> None:
        """Root-only state: the root and its directories 0700, the database and
        the lock 0600; created so, and checked at every start (a few stat calls).

        What root owns but left too open (a `chmod -R a+rX`, a restored backup)
        is fixed, as dockerd fixes its root's mode, and said in one warning line.
        What another user owns, and a database or lock that is a symlink or not
        a regular file, is refused: its owner could loosen it again or swap it
        between our check and our use, and the state drives what runs as root."""
        import stat

        os.makedirs(self.root, mode=0o700, exist_ok=True)
        fixed: list[str] = []
        st = os.stat(self.root)
        if st.st_uid != os.geteuid():
            raise PermissionDenied(
                f"state root {self.root} is owned by uid {st.st_uid}, not by root: refusing to use it "
                f"(chown -R root:root {self.root})"
            )
        self._tighten(self.root, st, 0o700, fixed)
        for d in (os.path.join(self.root, "containers"), self.dns_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
            self._tighten(d, os.stat(d), 0o700, fixed)
        for path in (self.db, self.db + "-wal", self.db + "-shm", self.lock):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else (
                    f"owned by uid {st.st_uid}" if stat.S_ISREG(st.st_mode) else "not a regular file")
                raise PermissionDenied(f"{path} is {what}: refusing to use it (remove it or make it root's)")
            self._tighten(path, st, 0o600, fixed)
        with contextlib.suppress(OSError):  # the log says what ran: root's only, but no warning
            if os.stat(self.log).st_mode & 0o077:
                os.chmod(self.log, 0o600)
        if fixed:
            import logging
            import sys

            msg = "permissions of the state were too open, now root-only: " + ", ".join(fixed)
            lg = logging.getLogger("nsbridge")
            if lg.handlers:  # (read-only verbs set up no log; Python would print it again)
                lg.warning("%s", msg)
            sys.stderr.write(f"WARNING: {msg}\n")
        if self.netns and not os.path.exists(self.upstream_resolv):
            with open(self.upstream_resolv, "w") as f:
                f.write("# upstream nameservers of sandbox host %s (none: no route out)\n" % self.netns)

    @staticmethod
    def _tighten(path: str, st: os.stat_result, mode: int, fixed: list[str]) -> None:
        have = st.st_mode & 0o7777
        if have & ~mode:
            os.chmod(path, have & mode)
            fixed.append(f"{path} {have:04o} -> {have & mode:04o}")

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
