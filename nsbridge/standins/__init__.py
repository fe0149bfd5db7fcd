"""Image stand-ins: what a well-known image does when nsbridge runs it.

nsbridge pulls no images: IMAGE is a label. When no command is given,
catalog.json says what the image does, so that the tutorials' containers
behave as the lessons expect:

- web images (nginx, fhsinchy/hello-dock, training/webapp, ...) serve HTTP on
  their usual port with a page naming the container (busybox httpd);
- service images (redis, mongo, postgres, mysql, ...) accept TCP on their
  port and answer a one-line banner (busybox nc);
- distro images (busybox, alpine, ubuntu, ...) idle, and with -i/-t run
  their shell.

A stand-in is a real listening socket in the container's namespace, held by
the container's main process (a small busybox process, ~0.5 MB PSS). Given
the image's own entry command (`training/webapp python app.py`), the stand-in
runs instead. Pure decisions here; the engine (engine/standins.py) writes the
page and starts the process.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os

from nsbridge.record import field, record

CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.json")

#: Machine-wide runtime files: symlinks to busybox applets, the bash rc file.
RUNTIME_DIR = "/run/nsbridge/standins"

#: Busybox-flavoured images (alpine, busybox) get every applet of the host's
#: busybox first on PATH, as those images have them: their shell (ash, prompt
#: `/ # `), ping, ip, nslookup, wget, nc... print what the tutorials show. Tools
#: busybox lacks (python3, dig, tc, ...) are still found further down PATH.
#: These must be there even if the busybox build at hand is a small one.
BUSYBOX_APPLETS = ("sh", "ash", "ping", "ping6", "ip", "nslookup", "wget")

#: An interactive bash in a container shows Debian's prompt (root@<hostname>:/#),
#: whatever the machine's own root .bashrc says.
BASHRC = """\
# nsbridge: interactive bash in a container (as in Debian/Ubuntu images)
[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc
PS1='${debian_chroot:+($debian_chroot)}\\u@\\h:\\w\\$ '
"""

KINDS = ("web", "service", "distro")


@record(frozen=True)
class Image:
    name: str
    kind: str
    port: int = 0
    title: str = ""
    banner: str = ""
    shell: str = ""
    userland: str = ""
    entry: tuple[tuple[str, ...], ...] = ()
    aliases: tuple[str, ...] = ()
    #: the real image's ENTRYPOINT and CMD (what Docker's `ps` and `inspect` show)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


@record
class Decision:
    """What a container runs. kind: web | service (a stand-in), shell (the
    image's shell), command (the user's), idle (nothing)."""

    kind: str
    image: Image | None = None
    argv: list[str] = field(default_factory=list)
    note: str | None = None


def _image(name: str, d: dict) -> Image:
    kind = d.get("kind")
    if kind not in KINDS:
        raise ValueError(f"catalog: {name}: kind must be one of {KINDS}, not {kind!r}")
    port = int(d.get("port", 0))
    if kind != "distro" and not 0 < port < 65536:
        raise ValueError(f"catalog: {name}: a {kind} image needs a port")
    return Image(
        name=name,
        kind=kind,
        port=port,
        title=d.get("title", ""),
        banner=d.get("banner", ""),
        shell=d.get("shell", "sh" if kind == "distro" else ""),
        userland=d.get("userland", ""),
        entry=tuple(tuple(e) for e in d.get("entry", [])),
        aliases=tuple(d.get("aliases", [])),
        entrypoint=tuple(d.get("entrypoint", [])),
        cmd=tuple(d.get("cmd", [])),
    )


@functools.lru_cache(maxsize=4)
def load(path: str = CATALOG) -> dict[str, Image]:
    """Repository name (and alias) -> Image."""
    with open(path) as f:
        data = json.load(f)
    out: dict[str, Image] = {}
    for name, d in data["images"].items():
        img = _image(name, d)
        for key in (name, *img.aliases):
            out[normalize(key)] = img
    return out


def normalize(ref: str) -> str:
    """`docker.io/library/nginx:1.25@sha256:...` -> `nginx`: the repository
    name without registry, `library/`, tag or digest, lower-cased."""
    ref = ref.strip().lower().split("@", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "library":
        parts = parts[1:]
    last = parts[-1].split(":", 1)[0] if parts else ""
    return "/".join([*parts[:-1], last])


def lookup(ref: str, path: str = CATALOG) -> Image | None:
    if not ref:
        return None
    return load(path).get(normalize(ref))


def exposed_ports(ref: str) -> list[str]:
    """The image's EXPOSE list as Docker records it (`80/tcp`), for -P."""
    img = lookup(ref)
    return [f"{img.port}/tcp"] if img is not None and img.port else []


def image_config(ref: str) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) of the real image, [] when unknown: recorded in the
    container at create, as Docker copies them from the image's config."""
    img = lookup(ref)
    return (list(img.entrypoint), list(img.cmd)) if img is not None else ([], [])


def is_entry(img: Image, cmd: list[str]) -> bool:
    """Whether CMD is the image's own command (its CMD or a recorded command line;
    program compared by basename; extra arguments after it are allowed)."""
    if not cmd:
        return False
    for e in (*img.entry, *((img.cmd,) if img.cmd else ())):
        if len(cmd) >= len(e) and os.path.basename(cmd[0]) == e[0] and list(cmd[1 : len(e)]) == list(e[1:]):
            return True
    return False


def entry_args(cmd: list[str]) -> bool:
    """CMD only passes arguments to the image's entrypoint (`mariadb
    --default-authentication-plugin=...`, as Docker runs it): no program of its own."""
    return bool(cmd) and cmd[0].startswith("-")


def replaces(image: str, cmd: list[str]) -> bool:
    """A given command the stand-in runs instead of (no host program needed)."""
    if entry_args(cmd):
        return True
    img = lookup(image)
    return img is not None and img.kind in ("web", "service") and is_entry(img, cmd)


def decide(image: str, cmd: list[str], tty: bool = False, interactive: bool = False) -> Decision:
    """What a container of IMAGE given CMD runs (pure)."""
    img = lookup(image)
    if cmd:
        if img is not None and img.kind in ("web", "service") and (is_entry(img, cmd) or entry_args(cmd)):
            return Decision(img.kind, img)
        if entry_args(cmd):
            return Decision("idle", img, note=(
                f"{cmd[0]!r} is an argument for image {image!r}'s entrypoint, which nsbridge does not have: the container idles"
            ))
        return Decision("command", img, list(cmd))
    if img is None:
        note = None
        if image:
            note = (
                f"image {image!r} has no stand-in in nsbridge's catalog (nsbridge pulls no images): "
                "the container idles; give a command to run one"
            )
        return Decision("idle", None, note=note)
    if img.kind in ("web", "service"):
        return Decision(img.kind, img)
    if tty or interactive:
        return Decision("shell", img, [img.shell or "sh"])
    return Decision("idle", img)


# -- what the stand-ins say ------------------------------------------------------------
def _fields(img: Image, name: str, cid: str, hostname: str, image_ref: str) -> dict[str, str]:
    return {
        "name": name,
        "id": cid[:12],
        "hostname": hostname,
        "image": image_ref or img.name,
        "port": str(img.port),
        "title": img.title or img.name,
    }


def page(img: Image, name: str, cid: str, hostname: str, image_ref: str = "") -> str:
    """The web stand-in's index.html: names the container that serves it."""
    import html  # only for writing a web stand-in's page

    f = {k: html.escape(v) for k, v in _fields(img, name, cid, hostname, image_ref).items()}
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f"<title>{f['title']}</title>\n"
        "</head>\n<body>\n"
        f"<h1>{f['title']}</h1>\n"
        f"<p>Served by container <b>{f['name']}</b> (ID {f['id']}, hostname {f['hostname']}) "
        f"from image {f['image']}, port {f['port']}.</p>\n"
        "<p>This is nsbridge's stand-in for the image: a small web server in the container's "
        "own network namespace.</p>\n"
        "</body>\n</html>\n"
    )


def banner(img: Image, name: str, cid: str, hostname: str, image_ref: str = "") -> str:
    """The service stand-in's one-line answer to every TCP connection."""
    f = _fields(img, name, cid, hostname, image_ref)
    text = img.banner or "{image} stand-in (nsbridge) in container {name} ({id}) on port {port}/tcp"
    return text.format(**f).replace("\n", " ")


def ready_line(img: Image, name: str, port: int) -> str:
    """The first line of a stand-in's log (`nsbridge logs NAME`)."""
    what = "serving HTTP" if img.kind == "web" else "accepting TCP"
    return f"nsbridge stand-in for {img.name}: container {name} {what} on port {port}/tcp"


# -- host programs and runtime files ------------------------------------------------------
def busybox() -> str:
    from nsbridge.procs import which

    path = which("busybox", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        from nsbridge.errors import ExecFailed

        raise ExecFailed("nsbridge's image stand-ins need busybox: apt-get install busybox (setup.sh does)", 127)
    return path


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def bashrc_path(runtime_dir: str | None = None) -> str:
    runtime_dir = runtime_dir or RUNTIME_DIR
    os.makedirs(runtime_dir, mode=0o755, exist_ok=True)
    path = os.path.join(runtime_dir, "bashrc")
    _write_if_changed(path, BASHRC)
    return path


def busybox_bin(runtime_dir: str | None = None, ensure: bool = True) -> str | None:
    """A directory of busybox applet links, put first on PATH in
    busybox-flavoured containers; None without busybox. ENSURE: make the
    links too (a start does; recording a container's PATH needs only the name)."""
    runtime_dir = runtime_dir or RUNTIME_DIR
    try:
        bb = busybox()
    except Exception:
        return None
    d = os.path.join(runtime_dir, "busybox-applets")
    if not ensure:
        return d
    stamp = os.path.join(d, ".busybox")  # made last: the links are complete for this busybox
    with contextlib.suppress(OSError):
        if os.readlink(stamp) == bb:
            return d
    os.makedirs(d, mode=0o755, exist_ok=True)
    for applet in (*_applets(bb), ".busybox"):
        link = os.path.join(d, applet)
        if os.path.islink(link) and os.readlink(link) == bb:
            continue
        tmp = f"{link}.{os.getpid()}"
        try:
            os.symlink(bb, tmp)
            os.replace(tmp, link)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return d


def _applets(bb: str) -> list[str]:
    """Every applet BB offers (`busybox --list`), and at least BUSYBOX_APPLETS."""
    import subprocess

    try:
        out = subprocess.run([bb, "--list"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    names = [n for n in out.split() if n and "/" not in n and not n.startswith(".")]
    return list(dict.fromkeys([*BUSYBOX_APPLETS, *names]))


def path_dirs(image: str, ensure: bool = True) -> list[str]:
    """Directories put before the usual PATH for a container of IMAGE (ENSURE:
    as busybox_bin)."""
    img = lookup(image)
    if img is not None and img.userland == "busybox":
        d = busybox_bin() if ensure else busybox_bin(ensure=False)
        return [d] if d else []
    return []


def shell_argv(cmd: list[str], tty: bool) -> list[str]:
    """An interactive bash gets Debian's prompt from our rc file."""
    if tty and len(cmd) == 1 and os.path.basename(cmd[0]) == "bash":
        return [cmd[0], "--rcfile", bashrc_path()]
    return list(cmd)
