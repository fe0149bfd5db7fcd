#!/usr/bin/env python3
"""A real Docker daemon (Debian's docker.io) in network namespaces of its own, so that
tools/bench.py docker can measure Docker side by side without Docker ever touching this
machine's network: dockerd runs in NAME-host, whose only link leads to NAME-lan, a namespace
playing the LAN on 198.51.100.0/24 (TEST-NET-2, a documentation range that exists only between
these two namespaces). Docker's docker0, its bridges, iptables rules and sysctls all land in
NAME-host; the machine's own namespace gets none of them.

  python3 tools/docker_netns.py start [NAME]   prints the DOCKER_HOST to use (NAME: nsbridge-bench-docker)
  python3 tools/docker_netns.py stop [NAME]    stops that daemon, removes its namespaces and directories

Needs root; both are idempotent. A busybox image (the host's busybox, imported) gives containers a shell.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time

DEFAULT_NAME = "nsbridge-bench-docker"
HOST_ADDR, LAN_ADDR = "198.51.100.1", "198.51.100.2"


class DockerUnavailable(Exception):
    """No daemon could be had; the message says why, in one line."""


def docker_cli() -> str:
    return shutil.which("docker") or ""


def server_version(docker_host: str, timeout: float = 10) -> str:
    """The daemon's version at DOCKER_HOST, or "" when none answers."""
    cli = docker_cli()
    if not cli or not docker_host:
        return ""
    try:
        p = subprocess.run([cli, "version", "--format", "{{.Server.Version}}"], env=docker_env(docker_host),
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ""
    return p.stdout.strip() if p.returncode == 0 else ""


def docker_env(docker_host: str) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": docker_host}


class NetnsDocker:
    """The daemon called NAME: its socket, namespaces, pidfile and directories are all named after it."""

    def __init__(self, name: str = DEFAULT_NAME) -> None:
        self.name = name
        self._proc: subprocess.Popen | None = None
        self._made: list[str] = []  # shared directories that its containerd creates, absent before

    @property
    def sock(self) -> str:
        return f"unix:///run/{self.name}.sock"

    @property
    def host_ns(self) -> str:
        return f"{self.name}-host"

    @property
    def lan_ns(self) -> str:
        return f"{self.name}-lan"

    @property
    def pidfile(self) -> str:
        return f"/run/{self.name}.pid"

    @property
    def data_root(self) -> str:
        return f"/var/lib/{self.name}"

    @property
    def exec_root(self) -> str:
        return f"/run/{self.name}"

    @property
    def log(self) -> str:
        return f"/tmp/{self.name}.log"

    def start(self, timeout: float = 90) -> bool:
        """Start the daemon unless one answers already; True when this call started it."""
        if server_version(self.sock):
            return False
        if not shutil.which("dockerd"):
            raise DockerUnavailable("dockerd is not installed (`sudo ./setup.sh bench docker` installs Debian's docker.io)")
        if not docker_cli():
            raise DockerUnavailable("no docker CLI on PATH")
        self._namespaces()
        os.makedirs(self.data_root, exist_ok=True)
        os.makedirs(self.exec_root, exist_ok=True)
        self._made = [d for d in ("/run/containerd/s", "/run/containerd") if not os.path.exists(d)]
        with open(self.log, "wb") as log:
            # `ip netns exec` would give dockerd a private /sys without the cgroup mounts it needs;
            # nsenter switches the network namespace only (and execs: the pid is dockerd's)
            self._proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.host_ns}", "dockerd", "-H", self.sock, "--pidfile", self.pidfile,
                 "--data-root", self.data_root, "--exec-root", self.exec_root, "--dns", LAN_ADDR,
                 "--config-file", self._config()],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            if server_version(self.sock):
                return True
            time.sleep(1)
        why = f"exited ({self._proc.returncode})" if self._proc.poll() is not None else f"did not answer within {timeout:.0f} s"
        self.stop(keep_log=True)
        raise DockerUnavailable(f"dockerd {why} (log: {self.log})")

    def _config(self) -> str:
        """A daemon.json of its own: not the machine's /etc/docker/daemon.json, and its identity key kept
        in its exec root rather than written to /etc/docker/key.json."""
        path = os.path.join(self.exec_root, "daemon.json")
        with open(path, "w") as f:
            json.dump({"deprecated-key-path": os.path.join(self.exec_root, "key.json")}, f)
        return path

    def _namespaces(self) -> None:
        have = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        if self.host_ns not in have:
            _ip("netns", "add", self.host_ns)
            _ip("-n", self.host_ns, "link", "set", "lo", "up")
        if self.lan_ns in have:
            return
        _ip("netns", "add", self.lan_ns)
        a, b = f"dkh{os.getpid()}", f"dkl{os.getpid()}"
        _ip("link", "add", a, "netns", self.host_ns, "type", "veth", "peer", "name", b, "netns", self.lan_ns)
        for ns, dev, addr in ((self.host_ns, a, HOST_ADDR), (self.lan_ns, b, LAN_ADDR)):
            _ip("-n", ns, "link", "set", dev, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.lan_ns, "link", "set", "lo", "up")
        _ip("-n", self.host_ns, "route", "add", "default", "via", LAN_ADDR)

    def stop(self, keep_log: bool = False) -> list[str]:
        """Stop the daemon (by its pidfile), remove the namespaces and directories; returns what stayed."""
        left = []
        child = self._proc.pid if self._proc is not None and self._proc.poll() is None else 0
        for pid in {_read_pid(self.pidfile), child} - {0}:
            if pid != child and not _is_dockerd(pid):
                continue  # a stale pidfile: that pid is someone else's now
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        for ns in (self.host_ns, self.lan_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for d in (self.exec_root, self.data_root):
            mounts = _mounts_under(d)
            if mounts:
                left.append(f"{d} (still mounted: {', '.join(mounts[:3])})")
            else:
                shutil.rmtree(d, ignore_errors=True)
        for d in self._made:
            try:
                os.rmdir(d)
            except OSError:
                pass
        if not keep_log and os.path.exists(self.log):
            os.unlink(self.log)
        sock = self.sock.removeprefix("unix://")
        if os.path.exists(sock):
            os.unlink(sock)
        return left


def ensure_image(docker_host: str, tag: str) -> None:
    """TAG: a busybox image made from the host's busybox (a shell, sleep, true), unless a working one is there."""
    cli, env = docker_cli(), docker_env(docker_host)

    def q(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([cli, *args], env=env, capture_output=True, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)

    if q("image", "inspect", tag).returncode == 0:
        if q("run", "--rm", "--network", "none", tag, "true").returncode == 0:
            return
        q("image", "rm", "-f", tag)
    p = q("import", "--change", "ENV PATH=/bin", "--change", 'CMD ["sh"]', "-", tag, stdin=None, input=busybox_rootfs())
    if p.returncode != 0:
        raise DockerUnavailable(f"docker import {tag}: {p.stderr.decode(errors='replace').strip()}")


def busybox_rootfs() -> bytes:
    """A tar of /bin/busybox, a link per applet, and the libraries a dynamically linked busybox needs."""
    bb = shutil.which("busybox")
    if not bb:
        raise DockerUnavailable("no busybox on this machine to make an image from")
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(["ldd", bb], capture_output=True, text=True).stdout)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(os.path.realpath(bb), "bin/busybox")
        for a in applets:
            if a != "busybox":
                info = tarfile.TarInfo(f"bin/{a}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        for lib in libs:
            tar.add(os.path.realpath(lib), lib.lstrip("/"))
    return buf.getvalue()


def _ip(*args: str) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise DockerUnavailable(f"ip {' '.join(args)}: {p.stderr.strip()}")


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _is_dockerd(pid: int) -> bool:
    """The pidfile may be stale: signal only a process that is dockerd."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "dockerd"
    except OSError:
        return False


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [m for m in points if m == path or m.startswith(path.rstrip("/") + "/")]


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "start"
    d = NetnsDocker(argv[1]) if len(argv) > 1 else NetnsDocker()
    if os.geteuid() != 0:
        print("docker_netns: run as root", file=sys.stderr)
        return 1
    try:
        if cmd == "start":
            d.start()
            ensure_image(d.sock, "busybox")
            print(f"DOCKER_HOST={d.sock}")
        elif cmd == "stop":
            left = d.stop()
            for x in left:
                print(f"docker_netns: left behind: {x}", file=sys.stderr)
            return 1 if left else 0
        else:
            print("usage: docker_netns.py start|stop [NAME]", file=sys.stderr)
            return 2
    except DockerUnavailable as e:
        print(f"docker_netns: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
