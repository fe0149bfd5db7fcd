"""Running commands in containers: the main process and `exec`.

A container's command runs in its netns, a fresh UTS namespace with its
hostname, and a private mount namespace where its /etc/hosts, resolv.conf
and hostname are bound over the host's, with Docker's default capability set
(kernel/caps.py; --cap-add, --cap-drop, --privileged). Entering is done by
system calls in the child just before exec (or by the CLI itself for `exec`, which then
execs the user's command in place: exit code, TTY, job control and Ctrl-C
come for free).

Terminals: `run -it` and `exec -it` use the caller's own terminal (no
proxy pty): the command becomes the terminal's foreground process group, so
line editing, job control, window size (SIGWINCH) and Ctrl-C reach it from
the kernel directly. An interactive bash gets Debian's prompt
(root@<hostname>:/#); busybox-flavoured images (alpine, busybox) get
busybox's sh and ping first on PATH (prompt `/ # `). A detached command
given -i or -t (`run -itd IMAGE sh`) reads a FIFO that never reaches end of
file, so a shell stays up as Docker's does with its open stdin.
"""
from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # (typing costs ~2 ms a start)
if TYPE_CHECKING:
    import subprocess  # lazily at run time: `exec` execs in place and never needs it
from nsbridge.errors import ExecFailed, KernelError
from nsbridge.model import Container
from nsbridge.record import record

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Records the exit status for `ps`/`inspect`: nobody waits for a detached
# command once `run -d` has returned. A shell is ~1 MB; a Python shim ~10.
WRAPPER = 'f=$1; shift; "$@"; echo $? > "$f"'

# Stand-ins (nginx, redis, ...) exit 0 on `stop`, as the servers they stand
# for do: the shell traps SIGTERM, ends the server and records 0.
GRACEFUL_WRAPPER = (
    'f=$1; shift; trap \'kill $! 2>/dev/null; echo 0 > "$f"; exit 0\' TERM INT; '
    '"$@" & wait $!; echo $? > "$f"'
)


class Command(list):
    """A command line with how to run it as a main process: GRACEFUL (exit 0
    on SIGTERM) and a first LOG_LINE for `logs`."""

    def __init__(self, argv: list[str], graceful: bool = False, log_line: str = "") -> None:
        super().__init__(argv)
        self.graceful = graceful
        self.log_line = log_line


@record
class Entry:
    """How to enter a container."""

    netns: str | None  # path of the netns to join; None: stay (host mode on the machine)
    hostname: str | None  # None: keep the host's UTS namespace (host mode)
    binds: dict[str, str]  # target in /etc -> file under the state root
    caps: frozenset[int] | None  # capabilities kept (kernel/caps.py); None: all (--privileged)


def entry_caps(c: Container) -> frozenset[int] | None:
    """The capability numbers C's processes keep (None: all, --privileged)."""
    from nsbridge.kernel import caps

    return caps.numbers(caps.effective(c.cap_add, c.cap_drop, c.privileged))


def image_path(image: str, ensure: bool = True) -> str:
    """The PATH an image's containers start with: busybox's applets first for
    busybox-flavoured images (standins.BUSYBOX_APPLETS), then the usual."""
    from nsbridge import standins

    return ":".join([*standins.path_dirs(image, ensure), PATH])


def image_env(image: str, user_env: list[str]) -> list[str]:
    """Config.Env as Docker records it at create: the image's PATH, then the
    user's -e (a PATH of the user's replaces the image's). Recorded, so that
    `exec` reads it instead of loading the image catalog."""
    if any(item.partition("=")[0] == "PATH" for item in user_env):
        return list(user_env)
    # the links themselves are made at each start (engine/standins.py)
    return [f"PATH={image_path(image, ensure=False)}", *user_env]


def spec_path(image: str, user_env: list[str]) -> str:
    """The PATH a new container of IMAGE given -e USER_ENV will have, with
    the applet links it names made (for check_command before `run`)."""
    from nsbridge import standins

    standins.path_dirs(image)
    path = PATH
    for item in image_env(image, user_env):
        k, sep, v = item.partition("=")
        if k == "PATH":
            path = v if sep else os.environ.get("PATH", PATH)
    return path


def container_env(c: Container, extra: list[str] | None = None, tty: bool = False) -> dict[str, str]:
    """Docker's clean environment, not the caller's."""
    env = {"HOSTNAME": c.hostname, "HOME": "/root"}
    if tty:
        env["TERM"] = os.environ.get("TERM", "xterm")
    for item in [*c.env, *(extra or [])]:
        k, sep, v = item.partition("=")
        if sep:
            env[k] = v
        elif k in os.environ:
            env[k] = os.environ[k]
    if "PATH" not in env:  # a container recorded before its Config.Env carried PATH
        env["PATH"] = image_path(c.image)
    return env


def check_command(cmd: list[str], path: str) -> None:
    """Docker's error for a command that does not exist, before anything is
    made: looked up in the container's PATH (Config.Env's), not the caller's,
    so busybox's applets count in alpine and busybox containers."""
    from nsbridge.procs import which

    if cmd and which(cmd[0], path) is None:
        raise ExecFailed(
            f'exec failed: unable to start container process: exec: "{cmd[0]}": '
            f"executable file not found in $PATH: unknown",
            127,
        )


def _enter(entry: Entry, new_group: bool, foreground_tty: bool) -> None:
    from nsbridge.kernel import caps, ns

    ns.enter_container(entry.netns, entry.hostname, entry.binds)
    if new_group:
        os.setsid()
    else:
        os.setpgid(0, 0)
        if foreground_tty:
            # Become the terminal's foreground group so the shell gets Ctrl-C
            # and job control; SIGTTOU would stop us for asking from the background.
            # (`run -t` without -i: stdin is /dev/null, the terminal is stdout.)
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            for fd in (0, 1, 2):
                try:
                    os.tcsetpgrp(fd, os.getpgrp())
                    break
                except OSError:
                    continue
            signal.signal(signal.SIGTTOU, old)
    caps.limit(entry.caps)  # last: entering needed CAP_SYS_ADMIN


def _popen(argv: list[str], entry: Entry, new_group: bool, foreground_tty: bool, **kw) -> subprocess.Popen:
    """Popen that enters the container in the child. What the kernel refused
    there (a mount, a capability) comes back as one line, not as
    subprocess's bare "Exception occurred in preexec_fn"."""
    import subprocess

    r, w = os.pipe()  # close-on-exec: gone once the command runs

    def child() -> None:
        try:
            _enter(entry, new_group, foreground_tty)
        except BaseException as e:
            os.write(w, describe(e).encode()[:1000])
            raise

    try:
        return subprocess.Popen(argv, preexec_fn=child, **kw)
    except subprocess.SubprocessError:
        os.close(w)
        w = -1
        raise start_failed(os.read(r, 1000).decode(errors="replace")) from None
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


def describe(e: BaseException) -> str:
    """An OSError as one line: what was refused (and on which file), why."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)


def start_failed(detail: str) -> KernelError:
    """Docker's shape (runc's "unable to start container process") for a
    container process that could not be set up: one line."""
    return KernelError(f"unable to start container process: {detail.strip() or 'unknown error'}")


def _open_stdin(fifo: str | None):
    """/dev/null, or a FIFO opened read-write: its reader never sees end of file."""
    if fifo is None:
        return open(os.devnull, "rb")
    try:
        os.mkfifo(fifo, 0o600)
    except FileExistsError:
        pass
    return os.fdopen(os.open(fifo, os.O_RDWR | os.O_CLOEXEC), "rb", buffering=0)


def spawn_detached(entry: Entry, c: Container, cmd: list[str], log_path: str, exit_path: str,
                   keep_stdin: bool | None = None) -> subprocess.Popen:
    """The main process of a `run -d`: own session, output to the log. With
    -i/-t (KEEP_STDIN, default from the container) stdin stays open."""
    import subprocess

    graceful = bool(getattr(cmd, "graceful", False))
    if keep_stdin is None:
        keep_stdin = (c.interactive or c.tty) and not graceful
    fifo = os.path.join(os.path.dirname(exit_path), "stdin") if keep_stdin else None
    wrapper = GRACEFUL_WRAPPER if graceful else WRAPPER
    with _open_stdin(fifo) as stdin, open(log_path, "ab") as logf:
        line = getattr(cmd, "log_line", "")
        if line:
            logf.write(line.encode() + b"\n")
            logf.flush()
        return _popen(
            ["/bin/sh", "-c", wrapper, "sh", exit_path, *cmd], entry, True, False,
            stdin=stdin, stdout=logf, stderr=subprocess.STDOUT, env=container_env(c), cwd="/", close_fds=True,
        )


def spawn_attached(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None) -> subprocess.Popen:
    """A foreground `run`: the caller's terminal and stdio, its own process
    group, made the terminal's foreground group (so Ctrl-C reaches it, with
    or without -t, as Docker's CLI proxies it)."""
    import subprocess

    from nsbridge import standins

    on_tty = any(os.isatty(fd) for fd in (0, 1, 2))
    tty = c.tty and on_tty
    line = getattr(cmd, "log_line", "")
    if line:
        print(line, flush=True)
    return _popen(
        standins.shell_argv(list(cmd), tty), entry, False, on_tty,
        stdin=None if c.interactive else subprocess.DEVNULL, env=container_env(c, env_extra, tty=tty), cwd="/",
        close_fds=True,
    )


#: Signals sent to the CLI itself (`kill PID`, not the terminal's Ctrl-C, which
#: reaches the foreground command directly) are passed on (Docker's --sig-proxy).
PROXIED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


def wait_foreground(p: subprocess.Popen) -> int:
    """Wait for an attached child; Ctrl-C goes to it, not to us, and signals
    sent to us are passed on. Then take the terminal back. Returns Docker's
    exit code (128+signal when killed)."""

    def proxy(sig, _frame) -> None:
        try:
            os.killpg(p.pid, sig)
        except OSError:
            pass

    saved = {sig: signal.signal(sig, proxy) for sig in PROXIED}
    try:
        code = p.wait()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        for fd in (0, 1, 2):
            if os.isatty(fd):
                try:
                    os.tcsetpgrp(fd, os.getpgrp())
                except OSError:
                    pass
                break
        signal.signal(signal.SIGTTOU, old)
    return 128 - code if code < 0 else code


def run_inside(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None,
               capture: bool = True, input: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`exec` through the library API: run and wait, output captured."""
    import subprocess

    env = container_env(c, env_extra)
    check_command(cmd, env["PATH"])
    pipe = subprocess.PIPE if capture else None
    with _popen(cmd, entry, True, False, stdin=subprocess.PIPE if input is not None else None, stdout=pipe,
                stderr=pipe, env=env, cwd="/") as p:
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def exec_in_place(entry: Entry, c: Container, cmd: list[str], env_extra: list[str] | None = None, tty: bool = False) -> None:
    """The CLI's `exec`: become the command (never returns on success)."""
    from nsbridge import standins
    from nsbridge.kernel import caps, ns

    env = container_env(c, env_extra, tty=tty)
    check_command(cmd, env["PATH"])
    cmd = standins.shell_argv(cmd, tty and os.isatty(0))
    try:
        ns.enter_container(entry.netns, entry.hostname, entry.binds)
        caps.limit(entry.caps)
    except OSError as e:
        raise start_failed(describe(e)) from None
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        raise ExecFailed(f"exec failed: {cmd[0]}: {e.strerror}", 126) from None

