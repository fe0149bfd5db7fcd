"""The image catalog and the stand-in decisions (pure; no root needed)."""
from __future__ import annotations

import json
import os

import pytest

from nsbridge import standins
from nsbridge.standins import decide, lookup, normalize


@pytest.mark.parametrize(
    "ref, name",
    [
        ("nginx", "nginx"),
        ("nginx:latest", "nginx"),
        ("nginx:1.25-alpine", "nginx"),
        ("docker.io/library/nginx:1.25", "nginx"),
        ("library/nginx", "nginx"),
        ("NGINX", "nginx"),
        ("nginx@sha256:abcd", "nginx"),
        ("training/webapp", "training/webapp"),
        ("localhost:5000/training/webapp:v2", "training/webapp"),
        ("registry.example.com:443/fhsinchy/hello-dock:latest", "fhsinchy/hello-dock"),
        ("", ""),
    ],
)
def test_normalize(ref, name):
    assert normalize(ref) == name


def test_tutorial_images_are_known():
    expect = {
        "nginx": ("web", 80),
        "httpd": ("web", 80),
        "fhsinchy/hello-dock": ("web", 80),
        "training/webapp": ("web", 5000),
        "redis": ("service", 6379),
        "mongo": ("service", 27017),
        "postgres": ("service", 5432),
        "training/postgres": ("service", 5432),
        "mysql": ("service", 3306),
        "prom/prometheus": ("web", 9090),
        "prometheus": ("web", 9090),
        "grafana/grafana": ("web", 3000),
        "busybox": ("distro", 0),
        "alpine": ("distro", 0),
        "ubuntu": ("distro", 0),
        "debian": ("distro", 0),
    }
    for ref, (kind, port) in expect.items():
        img = lookup(ref)
        assert img is not None, ref
        assert (img.kind, img.port) == (kind, port), ref
    assert lookup("redis:7-alpine").name == "redis"
    assert lookup("nosuch/image") is None
    assert lookup("") is None


def test_catalog_is_valid_and_names_are_unique():
    with open(standins.CATALOG) as f:
        data = json.load(f)
    seen: dict[str, str] = {}
    for name, d in data["images"].items():
        img = standins._image(name, d)  # raises on a bad kind or port
        assert normalize(name) == name, f"catalog keys are normalized repository names: {name}"
        for key in (name, *img.aliases):
            k = normalize(key)
            assert k not in seen, f"{key} of {name} is also {seen[k]}"
            seen[k] = name
        if img.kind == "distro":
            assert img.shell in ("sh", "bash")
        for e in img.entry:
            assert e and all(isinstance(x, str) for x in e)


def test_bad_catalog_entries_are_refused():
    with pytest.raises(ValueError):
        standins._image("x", {"kind": "database", "port": 1})
    with pytest.raises(ValueError):
        standins._image("x", {"kind": "web"})


def test_decide_without_command():
    d = decide("nginx", [])
    assert d.kind == "web" and d.image.port == 80 and d.note is None
    assert decide("redis", []).kind == "service"
    # distro images idle, and with -i/-t run their shell
    assert decide("ubuntu", []).kind == "idle"
    assert decide("ubuntu", [], tty=True, interactive=True).argv == ["bash"]
    assert decide("ubuntu", [], interactive=True).argv == ["bash"]
    assert decide("alpine", [], tty=True).argv == ["sh"]
    # web/service images run their stand-in even with -it (as Docker runs nginx)
    assert decide("nginx", [], tty=True, interactive=True).kind == "web"
    # an unknown image idles, with a one-line note naming it
    d = decide("favorites-api", [])
    assert d.kind == "idle" and "favorites-api" in d.note and "\n" not in d.note
    # no image (`run -- cmd`) and no command: nothing to say
    assert decide("", []).note is None


def test_decide_with_command():
    # the image's own command: the stand-in runs instead
    assert decide("training/webapp", ["python", "app.py"]).kind == "web"
    assert decide("training/webapp", ["/usr/bin/python", "app.py"]).kind == "web"
    assert decide("redis", ["redis-server"]).kind == "service"
    assert decide("redis", ["redis-server", "--appendonly", "yes"]).kind == "service"
    assert decide("nginx", ["nginx", "-g", "daemon off;"]).kind == "web"
    # anything else is the user's command
    d = decide("training/webapp", ["python", "other.py"])
    assert d.kind == "command" and d.argv == ["python", "other.py"]
    assert decide("redis", ["sleep", "1"]).kind == "command"
    assert decide("ubuntu", ["bash"], tty=True).kind == "command"
    assert decide("nosuch", ["true"]).note is None
    assert standins.replaces("training/webapp", ["python", "app.py"])
    assert not standins.replaces("ubuntu", ["python", "app.py"])
    assert not standins.replaces("training/webapp", ["python"])


def test_page_names_the_container_and_escapes():
    img = lookup("fhsinchy/hello-dock")
    html = standins.page(img, "hello-dock", "a37f723dad3a" + "0" * 52, "a37f723dad3a", "fhsinchy/hello-dock")
    assert "<title>Hello, Dock!</title>" in html
    assert "<b>hello-dock</b>" in html and "a37f723dad3a" in html and "port 80" in html
    evil = standins.page(img, "<x>", "0" * 64, "h", "i")
    assert "<x>" not in evil and "&lt;x&gt;" in evil


def test_banner_is_one_line_naming_the_container():
    img = lookup("mongo")
    b = standins.banner(img, "mongodb", "f" * 64, "ffffffffffff", "mongo:7")
    assert b == "mongo:7 stand-in (nsbridge) in container mongodb (ffffffffffff) on port 27017/tcp"
    custom = standins.Image("x", "service", 1, banner="+OK {name}\nsecond")
    assert standins.banner(custom, "db", "0" * 64, "h") == "+OK db second"
    assert "accepting TCP on port 27017/tcp" in standins.ready_line(img, "mongodb", 27017)


def test_exposed_ports():
    assert standins.exposed_ports("nginx:alpine") == ["80/tcp"]
    assert standins.exposed_ports("training/webapp") == ["5000/tcp"]
    assert standins.exposed_ports("ubuntu") == []
    assert standins.exposed_ports("nosuch") == []


def test_interactive_bash_gets_debians_prompt(tmp_path, monkeypatch):
    monkeypatch.setattr(standins, "RUNTIME_DIR", str(tmp_path))
    argv = standins.shell_argv(["bash"], tty=True)
    assert argv[:2] == ["bash", "--rcfile"]
    rc = open(argv[2]).read()
    assert "PS1='${debian_chroot:+($debian_chroot)}\\u@\\h:\\w\\$ '" in rc
    assert standins.shell_argv(["/bin/bash"], tty=True)[1] == "--rcfile"
    # not without a terminal, and not when bash is given arguments
    assert standins.shell_argv(["bash"], tty=False) == ["bash"]
    assert standins.shell_argv(["bash", "-c", "true"], tty=True) == ["bash", "-c", "true"]


def test_busybox_applets_list():
    """`busybox --list` of the host's busybox, with the applets the lessons use."""
    import shutil

    bb = shutil.which("busybox")
    if bb is None:
        pytest.skip("busybox is not installed (setup.sh installs it)")
    names = standins._applets(bb)
    assert set(standins.BUSYBOX_APPLETS) <= set(names) and "nc" in names and "ls" in names
    assert all("/" not in n for n in names)


def test_busybox_applets_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(standins, "busybox", lambda: "/usr/bin/busybox")
    monkeypatch.setattr(standins, "_applets", lambda bb: [*standins.BUSYBOX_APPLETS, "nc", "[["])
    d = standins.busybox_bin(str(tmp_path))
    # every applet busybox lists (and the stamp that says the set is complete)
    assert sorted(os.listdir(d)) == sorted([*standins.BUSYBOX_APPLETS, "nc", "[[", ".busybox"])
    assert all(os.readlink(os.path.join(d, a)) == "/usr/bin/busybox" for a in os.listdir(d))
    os.unlink(os.path.join(d, "nc"))
    assert standins.busybox_bin(str(tmp_path)) == d  # idempotent: the stamp says it is done
    assert not os.path.exists(os.path.join(d, "nc"))
    os.unlink(os.path.join(d, ".busybox"))
    standins.busybox_bin(str(tmp_path))  # no stamp: made again
    assert os.readlink(os.path.join(d, "nc")) == "/usr/bin/busybox"
    monkeypatch.setattr(standins, "busybox_bin", lambda: "/x")
    assert standins.path_dirs("alpine:3.19") == ["/x"]
    assert standins.path_dirs("busybox") == ["/x"]
    assert standins.path_dirs("ubuntu") == []
    assert standins.path_dirs("") == []
