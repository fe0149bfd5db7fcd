"""Docker's embedded DNS address, 127.0.0.11:53, inside each container of a user network.

A socket stays in the network namespace it was created in, wherever its holder
runs: so the resolver process of a network (in the host namespace) holds a UDP
and a TCP socket bound to 127.0.0.11:53 inside each container it serves, and a
query's socket tells it which container asks. No address is added and no NAT
rule is needed: all of 127.0.0.0/8 is local on a container's loopback.

A container's 127.0.0.11 belongs to the resolver of its first user network (by
attach order), which answers for all the container's networks. The engine makes
the two sockets while it sets the container up (before its command starts, so a
first query waits in the socket rather than meeting a closed port) and hands them
over after recording the container, on the resolver's control socket (a unix
SOCK_SEQPACKET socket in the abstract namespace of the host's network namespace,
so no file is left behind, answering only root's processes; file descriptors
passed as SCM_RIGHTS). Requests are one line each, answered with one line:

  take CID KEY   (+ 2 fds: UDP, TCP)  serve container CID (KEY: its endpoint ID on
                                      the network; a new one replaces the old sockets)
  drop CID                            close CID's sockets (stopped, removed, disconnected)
  status                              "held N": how many containers it serves

A resolver that (re)starts, or finds a container it should serve without sockets,
makes them itself (bind_in, on a helper thread that enters the container's
namespace). Imports no dnslib and no pyroute2: the engine imports this on `run`.
"""
from __future__ import annotations

import array
import os
import socket
import struct

ADDRESS = "127.0.0.11"
PORT = 53
IP_FREEBIND = 15  # bind even while the container's loopback is down (socket.IP_FREEBIND is 3.12+)
TIMEOUT = 2.0  # seconds an engine waits for the resolver's answer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from nsbridge.model import Endpoint


def bind_pair() -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on 127.0.0.11:53 in the calling thread's network namespace."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        udp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        # bursts wait here rather than being dropped (a limit, not an allocation; net.core.rmem_max caps it)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.bind((ADDRESS, PORT))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        tcp.bind((ADDRESS, PORT))
        tcp.listen(64)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def bind_in(netns_path: str) -> tuple[socket.socket, socket.socket]:
    """bind_pair() inside the network namespace at NETNS_PATH. Call it on a thread
    of its own: the thread is in the container's namespace meanwhile, and the
    engine kills whatever process it finds there when it removes a container."""
    from nsbridge.kernel import ns

    with ns.in_netns(netns_path):
        return bind_pair()


def owner(eps: "Iterable[Endpoint]", has_dns: "Callable[[str], bool]") -> "Endpoint | None":
    """Of a container's endpoints, the one whose network's resolver holds its
    127.0.0.11: the first live one (attach order) on a network with DNS."""
    for e in sorted(eps, key=lambda e: e.position):
        if e.ip and has_dns(e.network_id):
            return e
    return None


def control_address(network_id: str) -> str:
    """The control socket of NETWORK_ID's resolver: an abstract unix address (in the
    network namespace of the host, where the resolver and the engine's sessions run)."""
    return f"\0nsbridge-dns-{network_id}"


def peer_is_root(conn: socket.socket) -> bool:
    """Is the process at the other end of CONN root (as the resolver is)? Abstract
    unix sockets have no file permissions to keep other users out."""
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid == os.geteuid()


def request(address: str, line: str, fds: tuple[int, ...] = (), timeout: float = TIMEOUT) -> str:
    """Send one request to the resolver at ADDRESS (control_address) and return its
    one-line answer. Raises OSError when it is not there or does not answer in time."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(timeout)
        s.connect(address)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        s.sendmsg([line.encode()], anc)
        reply = s.recv(256)
    finally:
        s.close()
    if not reply:
        raise ConnectionResetError("the resolver closed the connection")
    return reply.decode(errors="replace")


class Control:
    """One connection to a resolver's control socket for a whole engine session,
    its requests pipelined: `send` does not wait for the answer (a busy
    resolver, scheduled late on a loaded machine, made every `run` wait for it),
    `call` waits for its own, which comes after those of every request sent
    before it on this connection (the resolver answers them in order). `close`
    waits for every answer still due: when an engine command returns, the
    resolver has done what it was asked."""

    def __init__(self, address: str, timeout: float = TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.due: list[str] = []  # requests sent and not answered yet, in order
        self.refused: list[str] = []  # "REQUEST: answer" for those not waited for that were not "ok"

    def send(self, line: str, fds: tuple[int, ...] = (), collect: bool = True) -> None:
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([line.encode()], anc)
        self.due.append(line)
        if not collect:
            return
        try:
            while self.due:  # answers already there: read, so that few are ever due
                self._one(block=False)
        except BlockingIOError:
            pass

    def call(self, line: str, fds: tuple[int, ...] = ()) -> str:
        self.send(line, fds, collect=False)  # (collected here: its answer is the one returned)
        reply = ""
        while self.due:
            reply = self._one(block=True, mine=len(self.due) == 1)
        return reply

    def close(self) -> list[str]:
        """Wait for the answers still due; what was refused or not answered."""
        try:
            while self.due:
                self._one(block=True)
        except OSError as e:
            self.refused.append(f"{len(self.due)} request(s) not answered: {e}")
        finally:
            self.sock.close()
        return self.refused

    def _one(self, block: bool, mine: bool = False) -> str:
        if block:
            reply = self.sock.recv(256)
        else:  # (with a timeout set, Python waits for readability even with MSG_DONTWAIT)
            self.sock.setblocking(False)
            try:
                reply = self.sock.recv(256)
            finally:
                self.sock.settimeout(self.timeout)
        if not reply:
            raise ConnectionResetError("the resolver closed the connection")
        line = self.due.pop(0)
        text = reply.decode(errors="replace")
        if text != "ok" and not mine:
            self.refused.append(f"{' '.join(line.split()[:2])}: {text}")
        return text


def recv_request(conn: socket.socket) -> tuple[str, list[int]] | None:
    """One request on an accepted control connection: (line, passed fds); None at EOF."""
    fds = array.array("i")
    msg, anc, _flags, _addr = conn.recvmsg(256, socket.CMSG_SPACE(8 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not msg and not fds:
        return None
    return msg.decode(errors="replace"), list(fds)
