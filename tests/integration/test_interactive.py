"""`run -it` and `exec -it`: a real terminal (the caller's pty), the prompt
naming the container's hostname, window size, job control, Ctrl-C to the
foreground program, exit codes; `-i` without `-t` pipes stdin; `-t` without
a terminal is refused as Docker's CLI does."""
from __future__ import annotations

import re
import time

import pexpect

from nsbridge.sandbox import Sandbox


def spawn(sb: Sandbox, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
    argv = sb.argv(*args)
    return pexpect.spawn(argv[0], argv[1:], env=sb.env, encoding="utf-8", timeout=15, dimensions=(rows, cols))


def finish(p: pexpect.spawn) -> int:
    p.expect(pexpect.EOF)
    p.close()
    return p.exitstatus if p.exitstatus is not None else 128 + (p.signalstatus or 0)


def cid(sb: Sandbox, name: str) -> str:
    return sb.cli("inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


def test_run_it_bash_prompt_winsize_job_control_ctrl_c_exit_code(sb):
    p = spawn(sb, "run", "-it", "--name", "box", "ubuntu", rows=30, cols=100)
    p.expect(r"root@([0-9a-f]{12}):/# ")
    short = p.match.group(1)
    prompt = re.escape(f"root@{short}:/# ")
    assert cid(sb, "box").startswith(short)
    # a real terminal: tty, hostname, window size and its changes (SIGWINCH)
    p.sendline("tty; hostname; stty size")
    p.expect(r"(/dev/pts/\d+)\r\n([0-9a-f]{12})\r\n30 100\r\n")
    assert p.match.group(2) == short
    p.expect(prompt)
    p.setwinsize(40, 120)
    time.sleep(0.3)
    p.sendline("stty size")
    p.expect(r"40 120\r\n")
    p.expect(prompt)
    # Ctrl-C goes to the foreground program, not to nsbridge or the shell
    p.sendline("sleep 30")
    time.sleep(0.5)
    p.sendcontrol("c")
    p.expect(prompt)
    p.sendline("echo rc=$?")
    p.expect(r"rc=130")
    p.expect(prompt)
    # job control: background, list, suspend with Ctrl-Z, resume, kill
    p.sendline("sleep 100 &")
    p.expect(r"\[1\] \d+")
    p.expect(prompt)
    p.sendline("jobs")
    p.expect(r"\[1\]\+\s+Running\s+sleep 100 &")
    p.expect(prompt)
    p.sendline("sleep 200")
    time.sleep(0.5)
    p.sendcontrol("z")
    p.expect(r"\[2\]\+\s+Stopped\s+sleep 200")
    p.expect(prompt)
    p.sendline("kill %1 %2; fg 2>/dev/null; echo done")
    p.expect("done")
    p.expect(prompt)
    # in the container's network namespace
    p.sendline("ip -o -4 addr show eth0")
    p.expect(r"inet 172\.17\.0\.2/16")
    p.expect(prompt)
    p.sendline("exit 3")
    assert finish(p) == 3
    st = sb.cli("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert st.startswith("box Exited (3)")
    sb.cli("rm", "box", check=True)


def test_exec_it_into_detached_tty_container(sb):
    # the tutorial's `run -itd --name=eottabom ubuntu`: a running container to enter
    sb.cli("run", "-itd", "--name=eottabom", "ubuntu", check=True)
    assert sb.cli("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout.startswith("eottabom Up")
    p = spawn(sb, "exec", "-it", "eottabom", "bash")
    p.expect(re.escape(f"root@{cid(sb, 'eottabom')[:12]}:/# "))
    p.sendline("cat /etc/hostname; ping -c1 -W2 172.17.0.1 >/dev/null && echo gw-ok")
    p.expect("gw-ok")
    p.sendline("exit 7")
    assert finish(p) == 7
    # exec's exit leaves the container running
    assert sb.cli("ps", "-q", check=True).stdout.strip()
    sb.cli("rm", "-f", "eottabom", check=True)


def test_alpine_sh_prompt_and_busybox_tools(sb):
    sb.cli("run", "-itd", "--name", "shelly", "alpine", "sh", check=True)
    # a detached shell given -it keeps running (its stdin stays open)
    time.sleep(0.3)
    assert sb.cli("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout.startswith("shelly Up")
    p = spawn(sb, "exec", "-it", "shelly", "sh")
    p.expect("/ # ")
    p.sendline("cd /tmp")
    p.expect("/tmp # ")
    p.sendline("ping -c1 172.17.0.1")
    p.expect(r"64 bytes from 172\.17\.0\.1: seq=0 ttl=64")
    p.expect("/tmp # ")
    p.sendline("exit")
    assert finish(p) == 0
    p = spawn(sb, "run", "--rm", "-it", "busybox")
    p.expect("/ # ")
    p.sendline("exit 2")
    assert finish(p) == 2
    sb.cli("rm", "-f", "shelly", check=True)


def test_i_without_t_pipes_stdin(sb):
    r = sb.cli("run", "-i", "--rm", "busybox", "cat", input="through the pipe\n")
    assert (r.returncode, r.stdout) == (0, "through the pipe\n")
    r = sb.cli("run", "--interactive", "--rm", "alpine", "sh", input="echo $((6*7)); exit 9\n")
    assert (r.returncode, r.stdout) == (9, "42\n")
    # without -i the command gets no stdin, as in Docker
    r = sb.cli("run", "--rm", "busybox", "cat", input="ignored\n")
    assert (r.returncode, r.stdout) == (0, "")
    sb.cli("run", "-d", "--name", "svc", "redis", check=True)
    r = sb.cli("exec", "-i", "svc", "sh", "-c", "tr a-z A-Z", input="shout\n")
    assert r.stdout == "SHOUT\n"
    assert sb.cli("exec", "svc", "cat", input="ignored\n").stdout == ""
    sb.cli("rm", "-f", "svc", check=True)


def test_t_without_a_terminal_is_refused(sb):
    r = sb.cli("run", "-it", "--rm", "ubuntu")
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
    sb.cli("run", "-d", "--name", "idle", "busybox", check=True)
    r = sb.cli("exec", "-it", "idle", "sh")
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
    # -d with -t needs no terminal
    sb.cli("run", "-dt", "--name", "tty-less", "ubuntu", check=True)
    assert sb.cli("ps", "-a", "-q", check=True).stdout.count("\n") == 2
    sb.cli("rm", "-f", "idle", "tty-less", check=True)


def test_ctrl_c_ends_attached_foreground_command(sb):
    p = spawn(sb, "run", "-t", "--rm", "--name", "pinger", "busybox", "ping", "172.17.0.1")
    p.expect(r"seq=1 ttl=64")
    p.sendcontrol("c")
    assert finish(p) == 0  # busybox ping prints its statistics and exits 0
    assert "--- 172.17.0.1 ping statistics ---" in p.before
    assert sb.cli("ps", "-a", "-q", check=True).stdout == ""


def test_ctrl_c_and_signals_reach_the_command_without_t(sb):
    # without -t too: the command is the terminal's foreground group
    p = spawn(sb, "run", "--rm", "busybox", "ping", "172.17.0.1")
    p.expect(r"seq=1 ttl=64")
    p.sendcontrol("c")
    assert finish(p) == 0
    # a signal sent to nsbridge itself is passed on (Docker's --sig-proxy)
    import signal
    import subprocess

    cli = subprocess.Popen(sb.argv("run", "--rm", "--name", "sleeper", "busybox", "sleep", "30"), env=sb.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while "sleeper" not in sb.cli("ps", "--format", "{{.Names}}").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=10) == 143
    assert sb.cli("ps", "-a", "-q", check=True).stdout == ""
