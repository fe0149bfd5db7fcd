"""The state store: SQLite in WAL mode. The only module with SQL.

Networks and containers are rows with a JSON blob for their less-queried
fields; endpoints are real columns because the DNS resolver looks them up
per query. Every committed write bumps a generation counter, which the
resolver reads (one cheap SELECT) to invalidate its answer cache.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator

from nsbridge.errors import NotFound
from nsbridge.model import Container, Endpoint, Network, network_from_dict, network_to_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS networks(
  id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, driver TEXT NOT NULL,
  bridge TEXT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS containers(
  id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, state TEXT NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0, pid_start INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints(
  container_id TEXT NOT NULL, network_id TEXT NOT NULL, position INTEGER NOT NULL,
  ip TEXT, mac TEXT, endpoint_id TEXT, ifname TEXT, host_ifname TEXT,
  ip_requested TEXT, aliases TEXT NOT NULL DEFAULT '[]', last_ip TEXT,
  PRIMARY KEY(container_id, network_id));
CREATE INDEX IF NOT EXISTS endpoints_ip ON endpoints(ip);
CREATE INDEX IF NOT EXISTS endpoints_net ON endpoints(network_id);
-- host ports held by containers' bindings (also in their data), indexed so that
-- checking or picking a port costs the same beside ten published ports or thousands
CREATE TABLE IF NOT EXISTS ports(
  container_id TEXT NOT NULL, proto TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ports_port ON ports(proto, host_port);
CREATE INDEX IF NOT EXISTS ports_ctr ON ports(container_id);
CREATE TABLE IF NOT EXISTS resolvers(
  network_id TEXT PRIMARY KEY, pid INTEGER, pid_start INTEGER, address TEXT, log TEXT);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0');
"""

EP_COLS = "container_id, network_id, position, ip, mac, endpoint_id, ifname, host_ifname, ip_requested, aliases, last_ip"


def _ep(row: tuple) -> Endpoint:
    return Endpoint(
        container_id=row[0],
        network_id=row[1],
        position=row[2],
        ip=row[3],
        mac=row[4] or "",
        endpoint_id=row[5] or "",
        ifname=row[6] or "",
        host_ifname=row[7] or "",
        ip_requested=row[8],
        aliases=json.loads(row[9]),
        last_ip=row[10],
    )


class Store:
    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        new = not os.path.exists(path)
        if new and readonly:
            # Nothing recorded yet: an in-memory store with the schema answers reads.
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            self.db.executescript(SCHEMA)
            return
        if new:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_RDWR | os.O_CLOEXEC, 0o600))
            except FileExistsError:
                pass  # made meanwhile (by root: the state root is root's alone)
        # How long a write waits for another process holding the database (not
        # another nsbridge command: those wait for the host lock first).
        timeout = float(os.environ.get("NSBRIDGE_DB_TIMEOUT") or 30)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=timeout)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if not readonly:
            self.db.executescript(SCHEMA)
            if self.get_meta("ports_indexed") != "1":  # a state root older than the ports table
                with self.tx():
                    for c in self.containers():
                        self._put_ports(c)
                    self.set_meta("ports_indexed", "1")

    def close(self) -> None:
        self.db.close()

    def check_writable(self) -> None:
        """Wait (the timeout) for a write lock and let it go: a database held by
        another process is found before an operation changes the kernel."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("ROLLBACK")

    @contextlib.contextmanager
    def tx(self) -> Iterator["Store"]:
        """One write transaction; bumps the generation on commit."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # (a Ctrl-C may land just after the COMMIT)
                self.db.execute("ROLLBACK")
            raise

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta_items(self, prefix: str) -> dict[str, str]:
        """Every meta key starting with PREFIX (e.g. the cluster membership's)."""
        rows = self.db.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        ).fetchall()
        return {k: v for k, v in rows}

    def delete_meta(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    # -- networks ------------------------------------------------------------
    def networks(self) -> list[Network]:
        rows = self.db.execute("SELECT data FROM networks ORDER BY name").fetchall()
        return [network_from_dict(json.loads(r[0])) for r in rows]

    def network(self, id_: str) -> Network:
        row = self.db.execute("SELECT data FROM networks WHERE id = ?", (id_,)).fetchone()
        if not row:
            raise NotFound(f"network {id_} not found")
        return network_from_dict(json.loads(row[0]))

    def find_network(self, ref: str) -> Network | None:
        """By name, full ID, or unique ID prefix (Docker's lookup order)."""
        for q in ("SELECT data FROM networks WHERE name = ?", "SELECT data FROM networks WHERE id = ?"):
            row = self.db.execute(q, (ref,)).fetchone()
            if row:
                return network_from_dict(json.loads(row[0]))
        if not ref or not all(c in "0123456789abcdef" for c in ref):
            return None
        rows = self.db.execute("SELECT data FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) == 1:
            return network_from_dict(json.loads(rows[0][0]))
        if len(rows) > 1:
            from nsbridge.errors import InvalidArgument

            raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
        return None

    def put_network(self, n: Network) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO networks(id, name, driver, bridge, data) VALUES (?, ?, ?, ?, ?)",
            (n.id, n.name, n.driver, n.bridge, json.dumps(network_to_dict(n))),
        )

    def delete_network(self, id_: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id = ?", (id_,))
        self.db.execute("DELETE FROM resolvers WHERE network_id = ?", (id_,))

    # -- containers ----------------------------------------------------------
    def containers(self) -> list[Container]:
        rows = self.db.execute("SELECT data FROM containers").fetchall()
        cs = [Container.from_dict(json.loads(r[0])) for r in rows]
        cs.sort(key=lambda c: c.created, reverse=True)
        return cs

    def container(self, id_: str) -> Container:
        row = self.db.execute("SELECT data FROM containers WHERE id = ?", (id_,)).fetchone()
        if not row:
            raise NotFound(f"No such container: {id_}")
        return Container.from_dict(json.loads(row[0]))

    def find_container(self, ref: str) -> Container | None:
        ref = ref[1:] if ref.startswith("/") else ref
        for q in ("SELECT data FROM containers WHERE name = ?", "SELECT data FROM containers WHERE id = ?"):
            row = self.db.execute(q, (ref,)).fetchone()
            if row:
                return Container.from_dict(json.loads(row[0]))
        if not ref or not all(c in "0123456789abcdef" for c in ref):
            return None
        rows = self.db.execute("SELECT data FROM containers WHERE id LIKE ? LIMIT 2", (ref + "%",)).fetchall()
        if len(rows) == 1:
            return Container.from_dict(json.loads(rows[0][0]))
        if len(rows) > 1:
            from nsbridge.errors import InvalidArgument

            raise InvalidArgument(f"Multiple IDs found with provided prefix: {ref}")  # Docker 20.10's text
        return None

    def put_container(self, c: Container) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO containers(id, name, state, pid, pid_start, data) VALUES (?, ?, ?, ?, ?, ?)",
            (c.id, c.name, c.state, c.pid, c.pid_start, json.dumps(c.to_dict())),
        )
        self._put_ports(c)

    def _put_ports(self, c: Container) -> None:
        self.db.execute("DELETE FROM ports WHERE container_id = ?", (c.id,))
        self.db.executemany(
            "INSERT INTO ports(container_id, proto, host_ip, host_port) VALUES (?, ?, ?, ?)",
            [(c.id, b.proto, b.host_ip, b.host_port) for b in c.ports if b.host_port],
        )

    def held_ports(self, exclude: str, proto: str, lo: int, hi: int) -> list[tuple[bool, str, int]]:
        """(held by a running container, host ip, port) of every PROTO host port
        in LO..HI that a container other than EXCLUDE keeps: by index, so it
        costs the same whatever the host publishes outside that range."""
        return [
            (bool(r[0]), r[1], r[2])
            for r in self.db.execute(
                "SELECT c.state = 'running', p.host_ip, p.host_port FROM ports p JOIN containers c ON c.id = p.container_id "
                "WHERE p.proto = ? AND p.host_port BETWEEN ? AND ? AND p.container_id != ?",
                (proto, lo, hi, exclude),
            )
        ]

    def sharing_netns_of(self, container_id: str) -> list[Container]:
        """Containers run with --network container:ID."""
        rows = self.db.execute(
            "SELECT data FROM containers WHERE json_extract(data, '$.network_mode') = ?",
            (f"container:{container_id}",),
        ).fetchall()
        return [Container.from_dict(json.loads(r[0])) for r in rows]

    def name_taken(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone() is not None

    def running_processes(self) -> list[tuple[str, int, int]]:
        """(id, pid, start) of running containers with a main process: what
        every operation checks for exits, without decoding every container."""
        return self.db.execute(
            "SELECT id, pid, pid_start FROM containers WHERE state = 'running' AND pid > 0"
        ).fetchall()

    def delete_container(self, id_: str) -> None:
        self.db.execute("DELETE FROM containers WHERE id = ?", (id_,))
        self.db.execute("DELETE FROM endpoints WHERE container_id = ?", (id_,))
        self.db.execute("DELETE FROM ports WHERE container_id = ?", (id_,))

    # -- endpoints -----------------------------------------------------------
    def endpoints_of(self, container_id: str) -> list[Endpoint]:
        rows = self.db.execute(
            f"SELECT {EP_COLS} FROM endpoints WHERE container_id = ? ORDER BY position", (container_id,)
        ).fetchall()
        return [_ep(r) for r in rows]

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        rows = self.db.execute(
            f"SELECT {EP_COLS} FROM endpoints WHERE network_id = ? ORDER BY position", (network_id,)
        ).fetchall()
        return [_ep(r) for r in rows]

    def all_endpoints(self) -> list[Endpoint]:
        return [_ep(r) for r in self.db.execute(f"SELECT {EP_COLS} FROM endpoints").fetchall()]

    def taken_ips(self, network_id: str) -> set[str]:
        rows = self.db.execute(
            "SELECT ip FROM endpoints WHERE network_id = ? AND ip IS NOT NULL", (network_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def put_endpoint(self, e: Endpoint) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO endpoints({EP_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.container_id,
                e.network_id,
                e.position,
                e.ip,
                e.mac,
                e.endpoint_id,
                e.ifname,
                e.host_ifname,
                e.ip_requested,
                json.dumps(e.aliases),
                e.last_ip,
            ),
        )

    def delete_endpoint(self, container_id: str, network_id: str) -> None:
        self.db.execute(
            "DELETE FROM endpoints WHERE container_id = ? AND network_id = ?", (container_id, network_id)
        )

    # -- resolvers -----------------------------------------------------------
    def resolvers(self) -> dict[str, tuple[int, int, str, str]]:
        rows = self.db.execute("SELECT network_id, pid, pid_start, address, log FROM resolvers").fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def put_resolver(self, network_id: str, pid: int, pid_start: int, address: str, log: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO resolvers(network_id, pid, pid_start, address, log) VALUES (?, ?, ?, ?, ?)",
            (network_id, pid, pid_start, address, log),
        )

    def delete_resolver(self, network_id: str) -> None:
        self.db.execute("DELETE FROM resolvers WHERE network_id = ?", (network_id,))


# -- what a failure of the database means to the user -------------------------------------------------
def explain(e: BaseException, path: str, reset_hint: str) -> str | None:
    """One line for a database failure (None: not one of these): damaged, full
    disk, held by another process. RESET_HINT: the command that starts afresh."""
    if not isinstance(e, sqlite3.DatabaseError):
        return None
    name = getattr(e, "sqlite_errorname", "")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or type(e) is sqlite3.DatabaseError:
        return (f"the state database {path} is damaged ({e}): `{reset_hint}` removes everything nsbridge made "
                "there, by the marks on the kernel's objects, and starts afresh")
    if name == "SQLITE_FULL":
        return no_space(path)
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(e):
        holders = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in lock_holders(path)) or "another process"
        return f"the state database {path} is locked by {holders}: nothing was changed; try again when it lets go"
    return None


def no_space(path: str) -> str:
    return f"no space left on the device of {os.path.dirname(path)}: nothing was changed; free some space and try again"


def lock_holders(path: str) -> list[tuple[int, str]]:
    """Processes holding a write lock on the database or its WAL index (from
    /proc/locks), other than this one."""
    inodes = set()
    for p in (path, path + "-shm"):
        try:
            st = os.stat(p)
        except OSError:
            continue
        inodes.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    found: dict[int, str] = {}
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        # "1: POSIX  ADVISORY  WRITE 1234 00:2e:5678 120 120" ("->" marks a waiter)
        if "->" in parts or len(parts) < 6 or parts[3] != "WRITE":
            continue
        try:
            pid = int(parts[4])
            major, minor, ino = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(ino))
        except ValueError:
            continue
        if key in inodes and pid != os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = "?"
            found[pid] = cmd[:60]
    return sorted(found.items())
