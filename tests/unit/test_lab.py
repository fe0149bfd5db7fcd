"""Labs without root: checks.yaml's grammar, the shipped lessons' files,
where a lab runs, and the stand-in for a command of entrypoint arguments."""
from __future__ import annotations

import os

import pytest

from nsbridge import standins
from nsbridge.compose.load import load_project
from nsbridge.engine.host import Host
from nsbridge.lab import checks, folder, lessons


@pytest.mark.parametrize("text,want", [
    ("web -> db:6379/tcp", ("web", "db", 6379, "tcp")),
    ("web -> db:6379", ("web", "db", 6379, "tcp")),
    ("web->db", ("web", "db", 0, "icmp")),
    ("web -> 10.1.0.5 icmp", ("web", "10.1.0.5", 0, "icmp")),
    ("web -> db:53/udp", ("web", "db", 53, "udp")),
    ("client -> @web%front:80", ("client", "@web%front", 80, "tcp")),
    ("host -> 127.0.0.1:8080", ("host", "127.0.0.1", 8080, "tcp")),
])
def test_reach_grammar(text, want):
    c = checks.parse_item({"reach": text}, "t")
    assert (c.src, c.dst, c.port, c.proto) == want


@pytest.mark.parametrize("item,message", [
    ({"reach": "web db"}, "reach must read"),
    ({"reach": "web -> db:80 icmp"}, "tcp and udp need a port"),
    ({"reach": "web -> db sctp"}, "protocol 'sctp'"),
    ({"reach": "a -> b", "resolve": {}}, "exactly one of"),
    ({"ping": "a -> b"}, "exactly one of"),
    ({"reach": "a -> b", "colour": 1}, "unknown key 'colour'"),
    ({"resolve": {"from": "a"}}, "resolve needs `from` and `name`"),
    ({"exec": {"in": "a"}}, "exec needs `in` and `run`"),
    ({"exec": {"in": "a", "run": "x", "expect-exitcode": 0}}, "exec has no key 'expect-exitcode'"),
    ("reach web", "must be a mapping"),
])
def test_bad_checks_are_named_in_one_line(item, message):
    with pytest.raises(checks.CheckError, match=message):
        checks.parse_item(item, "checks.yaml: check 3")


def test_resolve_and_exec_checks():
    r = checks.parse_item({"resolve": {"from": "a", "name": "b", "expect": "none"}}, "t")
    assert r.expect == []
    r = checks.parse_item({"resolve": {"from": "a", "name": "b", "expect": ["@b", "10.0.0.2"]}}, "t")
    assert r.expect == ["@b", "10.0.0.2"]
    assert checks.parse_item({"resolve": {"from": "a", "name": "b"}}, "t").expect is None
    e = checks.parse_item({"exec": {"in": "a", "run": "ip -o link", "expect-output": "lo:", "reject-output": ["eth0"]}}, "t")
    assert (e.run, e.expect_exit, e.expect_output, e.reject_output) == (["sh", "-c", "ip -o link"], 0, ["lo:"], ["eth0"])


def test_lessons_are_complete_and_their_files_load_without_a_warning():
    idx = lessons.index()
    names = [x.name for x in idx]
    on_disk = sorted(d for d in os.listdir(lessons.LESSONS) if os.path.isdir(os.path.join(lessons.LESSONS, d)))
    assert sorted(names) == on_disk and len(names) >= 10
    for ls in idx:
        for f in ("compose.yaml", "checks.yaml", "README.md"):
            assert os.path.isfile(os.path.join(ls.path, f)), (ls.name, f)
        p = load_project([os.path.join(ls.path, "compose.yaml")])
        assert p.name == ls.name.lower().replace(".", "")
        assert p.warnings == [], (ls.name, p.warnings)
        cs = checks.load(os.path.join(ls.path, "checks.yaml"))
        assert cs, ls.name
        known = set(p.services) | {s.container_name for s in p.services.values()} | {"host"}
        for c in cs:  # every check names things the lab has
            assert c.src in known, (ls.name, c.text)
            if c.dst.startswith("@"):
                assert c.dst[1:].split("%")[0] in known, (ls.name, c.text)
        with open(os.path.join(ls.path, "README.md")) as f:
            readme = f.read()
        assert "shared/" not in readme and "nsbridge lab up" in readme


def test_lab_get_copies_a_lesson_and_refuses_to_overwrite(tmp_path):
    dest = lessons.get("skynet", str(tmp_path / "mine"))
    assert sorted(os.listdir(dest)) == ["README.md", "checks.yaml", "compose.yaml"]
    from nsbridge.errors import Conflict, NotFound

    with pytest.raises(Conflict, match="exists and is not empty"):
        lessons.get("skynet", dest)
    with pytest.raises(NotFound, match="no lesson 'nope'"):
        lessons.get("nope", str(tmp_path / "x"))


def test_each_lab_gets_a_sandbox_host_named_after_it():
    machine = Host("/var/lib/nsbridge", None)
    assert folder.sandbox_name(machine, "skynet") == "lab-skynet"
    h = folder.sandbox_host(Host("/tmp/root", "nsbt123456"), "skynet")
    assert (h.netns, h.root) == ("nsbt123456-lab-skynet", "/tmp/root/labs/nsbt123456-lab-skynet")
    long = folder.sandbox_name(Host("/r", "nsbt123456"), "a-very-long-lab-name-for-a-course-2026")
    assert len(long) <= 40 and long != folder.sandbox_name(Host("/r", "nsbt123456"), "a-very-long-lab-name-for-a-course-2027")
    Host.from_env("/r", long)  # a valid host namespace name


def test_a_command_of_entrypoint_arguments_goes_to_the_stand_in():
    d = standins.decide("mariadb", ["--default-authentication-plugin=mysql_native_password"])
    assert d.kind == "service" and d.image is not None and d.image.port == 3306
    assert standins.replaces("mariadb", ["--character-set-server=utf8mb4"])
    d = standins.decide("alpine", ["--verbose"])
    assert d.kind == "idle" and "entrypoint" in (d.note or "")
    assert standins.decide("alpine", ["echo", "-n"]).kind == "command"
