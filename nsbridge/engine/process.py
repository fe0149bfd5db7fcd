"""Running commands in containers: the main process and `exec`.

A container's command runs in its netns, a fresh UTS namespace with its
hostname, and a private mount namespace where its /etc/hosts, resolv.conf
and hostname are bound over the host's. Entering is done by system calls
in the child just before exec (or by the CLI itself for `exec`, which then
execs the user's command in place: exit code, TTY, job control and Ctrl-C
come for free).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

from nsbridge.errors import ExecFailed
from nsbridge.model import Container

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Records the exit status for `ps`/`inspect`: nobody waits for a detached
# command once `run -d` has returned. A shell is ~1 MB; a Python shim ~10.
WRAPPER = 'f=$1; shift; "$@"; echo $? > "$f"'


@dataclass
class Entry:
    """How to enter a container."""

    netns: str | None  # path of the netns to join; None: stay (host mode on the machine)
    hostname: str | None  # None: keep the host's UTS namespace (host mode)
    binds: dict[str, str]  # target in /etc -> file under the state root


def container_env(c: Container, extra: list[str] | None = None, tty: bool = False) -> dict[str, str]:
    """Docker's clean environment, not the caller's."""
    env = {"PATH": PATH, "HOSTNAME": c.hostname, "HOME": "/root"}
    if tty:
        env["TERM"] = os.environ.get("TERM", "xterm")
    for item in [*c.env, *(extra or [])]:
        k, sep, v = item.partition("=")
        if sep:
            env[k] = v
        elif k in os.environ:
            env[k] = os.environ[k]
    return env


def check_command(cmd: list[str]) -> None:
    """Docker's error for a command that does not exist, before anything is made."""
    if cmd and shutil.which(cmd[0], path=PATH) is None:
        raise ExecFailed(
            f'exec failed: unable to start container process: exec: "{cmd[0]}": '
            f"executable file not found in $PATH: unknown",
            127,
        )


def _enter(entry: Entry, new_group: bool, foreground_tty: bool) -> None:
    from nsbridge.kernel import ns

    ns.enter_container(entry.netns, entry.hostname, entry.binds)
    if new_group:
        os.setsid()
    else:
        os.setpgid(0, 0)
        if foreground_tty:
            # Become the terminal's foreground group so the shell gets Ctrl-C
            # and job control; SIGTTOU would stop us for asking from the background.
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(0, os.getpgrp())
            except OSError:
                pass
            signal.signal(signal.SIGTTOU, old)


def spawn_detached(entry: Entry, c: Container, cmd: list[str], log_path: str, exit_path: str) -> subprocess.Popen:
    """The main process of a `run -d`: own session, output to the log."""
    with contextlib_null() as devnull, open(log_path, "ab") as logf:
        return subprocess.Popen(
            ["/bin/sh", "-c", WRAPPER, "sh", exit_path, *cmd],
            stdin=devnull,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=container_env(c),
            cwd="/",
            preexec_fn=lambda: _enter(entry, True, False),
            close_fds=True,
        )


def spawn_attached(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None) -> subprocess.Popen:
    """A foreground `run`: the caller's terminal and stdio, its own process group."""
    tty = c.tty and os.isatty(0)
    return subprocess.Popen(
        cmd,
        stdin=None if c.interactive else subprocess.DEVNULL,
        env=container_env(c, env_extra, tty=tty),
        cwd="/",
        preexec_fn=lambda: _enter(entry, False, tty),
        close_fds=True,
    )


def wait_foreground(p: subprocess.Popen) -> int:
    """Wait for an attached child; Ctrl-C goes to it, not to us. Then take the
    terminal back. Returns Docker's exit code (128+signal when killed)."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_quit = signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    try:
        code = p.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGQUIT, old_quit)
        if os.isatty(0):
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(0, os.getpgrp())
            except OSError:
                pass
            signal.signal(signal.SIGTTOU, old)
    return 128 - code if code < 0 else code


def run_inside(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None,
               capture: bool = True, input: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`exec` through the library API: run and wait, output captured."""
    check_command(cmd)
    return subprocess.run(
        cmd,
        input=input,
        capture_output=capture,
        env=container_env(c, env_extra),
        cwd="/",
        preexec_fn=lambda: _enter(entry, True, False),
        timeout=timeout,
    )


def exec_in_place(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None, tty: bool = False) -> None:
    """The CLI's `exec`: become the command (never returns on success)."""
    from nsbridge.kernel import ns

    check_command(cmd)
    ns.enter_container(entry.netns, entry.hostname, entry.binds)
    env = container_env(c, env_extra, tty=tty)
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        raise ExecFailed(f"exec failed: {cmd[0]}: {e.strerror}", 126) from None


class contextlib_null:
    """/dev/null opened for the block (stdin of detached commands)."""

    def __enter__(self):
        self.f = open(os.devnull, "rb")
        return self.f

    def __exit__(self, *exc):
        self.f.close()
