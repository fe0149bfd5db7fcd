"""A client for a real etcd v3 (Debian's etcd-server, 3.4 on bookworm), over
the JSON gateway that etcd serves on its client port.

Why not a library: python-etcd3 (PyPI `etcd3`, last release 2020) ships
generated protobuf modules that fail to import with any protobuf >= 4
("Descriptors cannot be created directly", kragniz/python-etcd3#1957, #2709);
its forks and the grpc.aio clients pull in grpcio (tens of MB, ~0.3 s to
import on the CLI path). etcd3gw (OpenStack, maintained) speaks the same JSON
gateway as this module, but brings requests, pbr, six and futurist (~80 ms of
imports for every overlay `run`), runs its watch callback on a thread pool with
no reconnect and no resume from a revision, and its errors are not ours to word.
What nsbridge needs is small -- range/put/delete/txn, lease grant/keepalive/
revoke and one streaming watch -- and etcd documents the gateway as a stable
HTTP/JSON API (`/v3/...` since 3.4; keys and values base64, int64s as strings),
so the standard library's http.client speaks it with no new dependency.

Every failure to talk to etcd is a ClusterUnavailable with one line:
"cannot reach the cluster store at etcd://HOST:PORT: WHY".
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from collections.abc import Iterator

from nsbridge.errors import NsbridgeError
from nsbridge.record import record

DEFAULT_PORT = 2379
TIMEOUT = 5.0  # seconds for one request (connect + answer)


class ClusterUnavailable(NsbridgeError):
    """etcd could not be reached or did not answer."""


class ClusterError(NsbridgeError):
    """etcd answered with an error (a bad request, a lost lease...)."""


class Compacted(ClusterError):
    """A watch asked for history that etcd has compacted away: the caller must
    read the current state again and watch from there."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"watch history compacted up to revision {revision}")
        self.revision = revision


@record(frozen=True)
class KV:
    key: str
    value: str
    create_revision: int = 0
    mod_revision: int = 0
    lease: int = 0


@record(frozen=True)
class Event:
    """One change seen by a watch: PUT (value set) or DELETE (value '')."""

    type: str
    kv: KV


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode("ascii")


def _unb64(s: str | None) -> str:
    return base64.b64decode(s).decode() if s else ""


def prefix_end(prefix: str) -> bytes:
    """The range_end that selects every key starting with PREFIX (etcd's rule:
    the prefix's bytes with the last one below 0xff plus one)."""
    b = bytearray(prefix.encode())
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


def _kv(d: dict) -> KV:
    return KV(
        key=_unb64(d.get("key")),
        value=_unb64(d.get("value")),
        create_revision=int(d.get("create_revision", 0)),
        mod_revision=int(d.get("mod_revision", 0)),
        lease=int(d.get("lease", 0)),
    )


def parse_url(url: str) -> tuple[str, int]:
    """`etcd://HOST[:PORT]` (or http://) -> (host, port). Raises ValueError with
    the reason."""
    rest = url
    for scheme in ("etcd://", "http://"):
        if url.startswith(scheme):
            rest = url[len(scheme):]
            break
    else:
        raise ValueError(f"invalid cluster store address {url!r}: expected etcd://HOST:PORT")
    rest = rest.rstrip("/")
    host, sep, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not sep:
        host, port = rest, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid cluster store address {url!r}: expected etcd://HOST:PORT")
    return host, int(port)


def _keepalive_socket(sock: socket.socket) -> None:
    """Let the kernel notice a peer that went silent (a cut link) within ~10 s,
    where etcd would send nothing on an idle watch for minutes."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, val in (("TCP_KEEPIDLE", 4), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)


class Etcd:
    """One etcd endpoint; a persistent HTTP connection, re-opened on error.
    Not for sharing between threads: give each thread its own."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.host, self.port = parse_url(url)
        self.timeout = timeout
        self.api = "/v3"  # the gateway's prefix: /v3 from etcd 3.4 on, /v3beta on 3.3
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Etcd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def unreachable(self, why: object) -> ClusterUnavailable:
        text = str(why) or type(why).__name__
        if isinstance(why, TimeoutError | socket.timeout):
            text = f"no answer within {self.timeout:g} s"
        return ClusterUnavailable(f"cannot reach the cluster store at etcd://{self.host}:{self.port}: {text}")

    # -- transport ------------------------------------------------------------
    def _post(self, call: str, body: dict) -> dict:
        """POST BODY to the gateway's CALL (`kv/range`...) and return its answer."""
        data = json.dumps(body)
        path = f"{self.api}/{call}"
        for attempt in (0, 1, 2):  # a kept-alive connection may have been closed by etcd: retry once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = self._conn.getresponse()
                raw = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 0:
                    continue
                raise self.unreachable(e) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise self.unreachable(e) from None
            if r.status == 404 and self.api == "/v3" and attempt < 2:
                self.api = "/v3beta"  # etcd 3.3 (Ubuntu 22.04's) serves the gateway there
                path = f"{self.api}/{call}"
                continue
            break
        try:
            out = json.loads(raw) if raw else {}
        except ValueError:
            raise ClusterError(f"the cluster store at etcd://{self.host}:{self.port} answered {path} with non-JSON") from None
        if r.status != 200 or "error" in out:
            msg = out.get("message") or out.get("error") or raw[:200].decode(errors="replace")
            raise ClusterError(f"the cluster store at etcd://{self.host}:{self.port} refused {path}: {msg}")
        return out

    # -- keys -----------------------------------------------------------------
    def get(self, key: str) -> KV | None:
        kvs = self._post("kv/range", {"key": _b64(key)}).get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under PREFIX, sorted by key, and the store's revision at
        that read (watch from revision + 1 to miss nothing)."""
        out = self._post("kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                          "sort_order": "ASCEND", "sort_target": "KEY"})
        return [_kv(d) for d in out.get("kvs") or []], int(out["header"]["revision"])

    def put(self, key: str, value: str, lease: int = 0) -> int:
        body: dict = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._post("kv/put", body)["header"]["revision"])

    def delete(self, key: str) -> int:
        """Number of keys deleted (0 or 1)."""
        return int(self._post("kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_prefix(self, prefix: str) -> int:
        body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        return int(self._post("kv/deleterange", body).get("deleted", 0))

    def create(self, key: str, value: str, lease: int = 0) -> bool:
        """Put KEY only if it does not exist (compare create_revision == 0, in
        one transaction): True if this call created it. What makes a name, a
        VXLAN ID or an address unique across hosts."""
        put: dict = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        out = self._post("kv/txn", {
            "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": put}],
        })
        return bool(out.get("succeeded"))

    def delete_if(self, key: str, value: str) -> bool:
        """Delete KEY only while it still holds VALUE (ours, not a successor's)."""
        out = self._post("kv/txn", {
            "compare": [{"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}],
            "success": [{"request_delete_range": {"key": _b64(key)}}],
        })
        return bool(out.get("succeeded"))

    # -- leases ---------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        return int(self._post("lease/grant", {"TTL": str(int(ttl))})["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh LEASE once; its remaining TTL, 0 when it has expired or was
        revoked (its keys are gone then)."""
        out = self._post("lease/keepalive", {"ID": str(lease)})
        return int(out.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        """Revoke LEASE: etcd deletes every key attached to it. Unknown counts as done."""
        try:
            self._post("lease/revoke", {"ID": str(lease)})
        except ClusterError as e:
            if "not found" not in str(e):
                raise

    def status(self) -> dict:
        """etcd's own status (version, leader, db size)."""
        return self._post("maintenance/status", {})

    # -- watch ----------------------------------------------------------------
    def watch_once(self, prefix: str, start_revision: int, idle: float | None = None) -> Iterator[list[Event]]:
        """One watch stream on PREFIX from START_REVISION: yields each batch of
        events as etcd sends them, until the connection ends (raises
        ClusterUnavailable) or history is compacted (raises Compacted).
        IDLE: seconds without data after which the stream counts as lost."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision)}}
        try:
            conn.connect()
            assert conn.sock is not None
            _keepalive_socket(conn.sock)
            conn.request("POST", f"{self.api}/watch", json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            if r.status == 404 and self.api == "/v3":
                self.api = "/v3beta"  # etcd 3.3: the next try (watch() retries) asks there
                raise self.unreachable("no /v3 gateway (etcd 3.3?): trying /v3beta")
            if r.status != 200:
                raise ClusterError(f"the cluster store at etcd://{self.host}:{self.port} refused a watch: HTTP {r.status}")
            conn.sock.settimeout(idle)
            while True:
                line = r.readline()
                if not line:
                    raise self.unreachable("the watch stream ended")
                if not line.strip():
                    continue
                res = json.loads(line).get("result", {})
                if int(res.get("compact_revision", 0) or 0):
                    raise Compacted(int(res["compact_revision"]))
                if res.get("canceled"):
                    raise ClusterError(f"etcd cancelled the watch: {res.get('cancel_reason', '')}")
                events = [Event(e.get("type", "PUT"), _kv(e["kv"])) for e in res.get("events") or []]
                if events:
                    yield events
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise self.unreachable(e) from None
        finally:
            conn.close()

    def watch(self, prefix: str, start_revision: int, retry: float = 1.0,
              on_error=None) -> Iterator[list[Event]]:
        """watch_once, reconnecting after a lost connection and resuming after
        the last revision seen, so no event is missed or repeated. ON_ERROR(e)
        is told of each lost connection; Compacted is raised to the caller."""
        rev = start_revision
        while True:
            try:
                for batch in self.watch_once(prefix, rev):
                    rev = batch[-1].kv.mod_revision + 1
                    yield batch
            except ClusterUnavailable as e:
                if on_error is not None:
                    on_error(e)
                time.sleep(retry)
