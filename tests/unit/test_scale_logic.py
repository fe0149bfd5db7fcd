"""Pure logic behind issue 15's flat per-container cost; no root.

The store's look-ups while making a container cost the same beside 20 or 2,000
containers (counted in SQLite VM steps, not timed); the runtime files' tmpfs is
found by its mark in mountinfo; the private proc instance of sysctl writes is
renewed every RENEW namespaces and falls back to /proc; namespaces of a reset
are handled in parallel, in order under a crash test.
"""
from __future__ import annotations

import contextlib

import os

import pytest

from nsbridge.engine import runtime
from nsbridge.engine.host import Host
from nsbridge.errors import InvalidArgument
from nsbridge.kernel import failpoint, ns, sysctl
from nsbridge.model import Container, Endpoint, IpamConfig, Network, new_id, now_iso
from nsbridge.state.store import Store


def _steps(store: Store, fn) -> int:
    """SQLite virtual-machine steps (in thousands) that FN makes STORE take."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store.db.set_progress_handler(tick, 1000)
    try:
        fn()
    finally:
        store.db.set_progress_handler(None, 0)
    return count[0]


def _fill(store: Store, first: int, last: int, net: Network) -> None:
    with store.tx():
        for i in range(first, last):
            c = Container(id=new_id(), name=f"c{i}", created=now_iso(), state="running")
            store.put_container(c)
            store.put_endpoint(Endpoint(c.id, net.id, 0, ip=f"10.{i // 250}.{i % 250}.2"))


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "state.db"))
    net = Network(id=new_id(), name="n", driver="bridge", created=now_iso(),
                  ipam=IpamConfig(subnet="10.0.0.0/8", gateway="10.0.0.1"), bridge="br-n")
    with s.tx():
        s.put_network(net)
    s.test_net = net  # type: ignore[attr-defined]
    yield s
    s.close()


def test_a_name_made_of_hex_digits_is_looked_up_by_index(store):
    """`c1`, `db`, `cafe` are hex: their look-up also tries them as an ID prefix, which
    was a LIKE over every row (0.22 -> 3.7 ms per run at 5,000 containers)."""
    net = store.test_net
    _fill(store, 0, 20, net)
    def look() -> None:
        for i in range(10):
            # (random IDs: two of 2,000 may share the prefix c{i}0, which is Docker's refusal)
            with contextlib.suppress(InvalidArgument):
                store.find_container(f"c{i}0")

    small = _steps(store, look)
    _fill(store, 20, 2000, net)
    big = _steps(store, look)
    assert big <= small + 2, (small, big)


def test_id_prefix_look_ups_still_find_and_refuse_as_before(store):
    net = store.test_net
    _fill(store, 0, 50, net)
    c = store.find_container("c7")
    assert c is not None and c.name == "c7"
    some = store.containers()[0]
    assert store.find_container(some.id[:10]).id == some.id
    assert store.find_container(some.id).id == some.id
    assert store.find_container("0" * 64) is None
    from nsbridge.errors import InvalidArgument

    pairs = {}
    for x in store.containers():
        pairs.setdefault(x.id[0], []).append(x)
    first = next(k for k, v in pairs.items() if len(v) > 1)
    with pytest.raises(InvalidArgument, match="Multiple IDs found"):
        store.find_container(first)
    assert store.find_network(net.id[:6]).id == net.id


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /tmp/nsbridge-abc/run rw,nosuid,nodev,noexec shared:9 - tmpfs nsbridge-1111 rw,size=524288k,mode=700
31 22 0:41 / /tmp/nsbridge-abc/labs/lab-x/run rw shared:10 - tmpfs nsbridge-2222 rw,mode=700
32 22 0:42 / /tmp/nsbridge-abcd/run rw shared:11 - tmpfs nsbridge-3333 rw
33 22 0:43 / /tmp/nsbridge-abc/other rw shared:12 - tmpfs tmpfs rw
34 22 0:44 / /tmp/with\\040space/run rw shared:13 - tmpfs nsbridge-4444 rw
"""


def test_reset_finds_the_marked_tmpfs_mounts_under_its_root_deepest_first():
    assert runtime.marked_mounts("/tmp/nsbridge-abc", MOUNTINFO) == [
        ("/tmp/nsbridge-abc/labs/lab-x/run", "nsbridge-2222"),  # a lab's engine, below ours: first
        ("/tmp/nsbridge-abc/run", "nsbridge-1111"),
    ]  # not /tmp/nsbridge-abcd (a prefix of the name only), nor an unmarked tmpfs
    assert runtime.marked_mounts("/tmp/with space", MOUNTINFO) == [("/tmp/with space/run", "nsbridge-4444")]


def test_runtime_files_go_to_run_where_it_is_a_tmpfs(monkeypatch):
    h = Host("/var/lib/nsbridge-x", "sbx")
    monkeypatch.setattr(ns, "fs_type", lambda path: runtime.TMPFS_MAGIC)
    assert h.files_dir("ab") == f"/run/nsbridge/{h.engine_id}/containers/ab"
    monkeypatch.setattr(ns, "fs_type", lambda path: 0xEF53)  # ext4
    assert h.files_dir("ab") == "/var/lib/nsbridge-x/run/containers/ab"
    assert h.container_dir("ab") == "/var/lib/nsbridge-x/containers/ab"  # logs stay on disk


def test_sysctl_writes_renew_their_private_proc_instance(monkeypatch, tmp_path):
    opened: list[int] = []

    def fake() -> int:
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        opened.append(fd)
        return fd

    monkeypatch.setattr(sysctl, "_private_proc", fake)
    with sysctl.ProcSys(renew=3) as p:
        for _ in range(7):
            p.next_namespace()
        assert len(opened) == 3  # namespaces 1-3, 4-6, 7
        os.makedirs(tmp_path / "sys/net/ipv6/conf/all")
        (tmp_path / "sys/net/ipv6/conf/all/disable_ipv6").write_text("0")
        p.write("net.ipv6.conf.all.disable_ipv6", 1)
        assert (tmp_path / "sys/net/ipv6/conf/all/disable_ipv6").read_text() == "1"
    assert p.fd == -1


def test_sysctl_writes_fall_back_to_proc_without_the_new_mount_api(monkeypatch):
    def enosys() -> int:
        raise OSError(38, "fsopen proc: Function not implemented")

    written = []
    monkeypatch.setattr(sysctl, "_private_proc", enosys)
    monkeypatch.setattr(sysctl, "write", lambda key, value: written.append((key, value)))
    p = sysctl.ProcSys()
    sysctl.disable_ipv6_here(p)
    sysctl.disable_ipv6_here(p)
    assert p.plain and p.fd == -1
    assert written == [("net.ipv6.conf.all.disable_ipv6", 1), ("net.ipv6.conf.default.disable_ipv6", 1)] * 2


def test_namespaces_are_handled_in_parallel_in_order_under_a_crash_test(monkeypatch):
    import threading

    seen: list[str] = []

    def work(name: str) -> str:
        seen.append(threading.current_thread().name)
        return name.upper()

    names = [f"n{i}" for i in range(40)]
    assert ns.in_parallel(work, names) == [n.upper() for n in names]
    assert all(t.startswith("netns") for t in seen)
    seen.clear()
    monkeypatch.setattr(failpoint, "_AT", 5)
    assert ns.in_parallel(work, names) == [n.upper() for n in names]
    assert set(seen) == {threading.current_thread().name}


def test_resolver_requests_are_pipelined_and_answered_in_order():
    """The engine hands a new container's sockets over without waiting for the
    resolver (issue 15: a busy resolver made every `run` wait); a waited-for
    request still comes after the earlier ones, and the session's end waits for all."""
    import secrets
    import socket
    import threading

    from nsbridge.dns import embedded

    address = "\0nsbridge-test-" + secrets.token_hex(4)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(address)
    srv.listen(1)
    seen: list[str] = []
    go = threading.Event()

    def resolver() -> None:
        conn, _ = srv.accept()
        go.wait(5)  # busy: the engine's sends must not wait for this
        with conn:
            while True:
                line, fds = embedded.recv_request(conn) or ("", [])
                if not line:
                    return
                for fd in fds:
                    os.close(fd)
                seen.append(line)
                conn.send(b"no: bad request" if line.startswith("bad") else b"ok")

    t = threading.Thread(target=resolver)
    t.start()
    try:
        ctl = embedded.Control(address)
        r, w = os.pipe()
        for i in range(5):
            ctl.send(f"take c{i} -", (r, w))
        ctl.send("bad one")
        assert seen == [] and len(ctl.due) == 6  # nothing waited for
        go.set()
        assert ctl.call("drop c0") == "ok"
        assert seen == [*[f"take c{i} -" for i in range(5)], "bad one", "drop c0"]
        ctl.send("take c9 -")
        assert ctl.close() == ["bad one: no: bad request"]
        os.close(r)
        os.close(w)
    finally:
        go.set()
        t.join(5)
        srv.close()
    assert seen[-1] == "take c9 -"
