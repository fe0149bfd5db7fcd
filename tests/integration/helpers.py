"""Small helpers for integration tests."""
from __future__ import annotations

import time

from nsbridge.sandbox import Sandbox

TCP_SERVER = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
    "while True:\n c,_=s.accept(); c.sendall(b'hello from '+socket.gethostname().encode()+b'\\n'); c.close()"
)


def tcp_client(host: str, port: int, timeout: float = 2.0) -> str:
    return (
        "import socket,sys; c=socket.create_connection(('%s', %d), timeout=%s); "
        "print(c.recv(100).decode().strip())" % (host, port, timeout)
    )


def ip_of(sb: Sandbox, name: str, network: str | None = None) -> str:
    fmt = (
        f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
        if network
        else "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    )
    p = sb.cli("inspect", "--format", fmt, name, check=True)
    return p.stdout.strip()


def wait_listening(sb: Sandbox, name: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = sb.cli("exec", name, "ss", "-ltnH", f"sport = :{port}")
        if p.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} is not listening on {port}")
