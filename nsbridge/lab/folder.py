"""Where a lab runs. With a sandbox (the default), each lab gets a sandbox
host of its own named after it (`lab-<name>`; inside a sandboxed nsbridge,
`<that sandbox>-lab-<name>`) and a state root under the current one
(`<root>/labs/<sandbox name>`): thirty students' labs, or one student's
five, run side by side on one VM without touching its network. The state
stays root-only under nsbridge's own root, never in the (student-owned) lab
folder. Without a sandbox the lab runs on the current host, as `compose` does.
"""
from __future__ import annotations

import os

from nsbridge.compose.load import FILE_NAMES
from nsbridge.engine.host import Host
from nsbridge.errors import NotFound
from nsbridge.record import record

CHECKS = ("checks.yaml", "checks.yml")
NETNS_MAX = 40  # Host's limit for a host namespace's name


@record
class Lab:
    dir: str
    files: list[str]
    checks: str | None
    host: Host
    sandboxed: bool


def compose_files(d: str) -> list[str]:
    """The lab's compose file (only in the folder itself, not above it)."""
    for name in FILE_NAMES:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return [path]
    raise NotFound(f"{d} is not a lab: it has no compose.yaml")


def sandbox_name(parent: Host, lab_name: str) -> str:
    base = f"{parent.netns}-lab-" if parent.netns else "lab-"
    name = base + lab_name
    if len(name) > NETNS_MAX:  # long names: cut, with a hash of the whole to stay unique
        import hashlib

        digest = hashlib.sha256(lab_name.encode()).hexdigest()[:6]
        name = f"{name[:NETNS_MAX - 7]}-{digest}"
    return name


def sandbox_host(parent: Host, lab_name: str) -> Host:
    name = sandbox_name(parent, lab_name)
    return Host(os.path.join(parent.root, "labs", name), name)


def open_lab(d: str, parent: Host, lab_name: str, sandbox: bool | None) -> Lab:
    """The lab in folder D named LAB_NAME (its compose project name). SANDBOX
    None: a sandbox if the lab is up in one (or for a new lab), else the current host."""
    d = os.path.abspath(d)
    files = compose_files(d)
    checks = next((os.path.join(d, c) for c in CHECKS if os.path.isfile(os.path.join(d, c))), None)
    sb = sandbox_host(parent, lab_name)
    if sandbox is None:
        sandbox = os.path.exists(sb.db) or not _up_on(parent, lab_name)
    return Lab(d, files, checks, sb if sandbox else parent, sandbox)


def _up_on(host: Host, project: str) -> bool:
    """Does HOST run containers of PROJECT (a lab brought up with --no-sandbox)?"""
    if not os.path.exists(host.db):
        return False
    from nsbridge.compose import naming
    from nsbridge.state.store import Store

    st = Store(host.db, readonly=True)
    try:
        return any(c.labels.get(naming.PROJECT) == project for c in st.containers())
    finally:
        st.close()


INFO = "lab.json"  # in a lab's state root: its name and folder, for `lab ls`


def remember(lab: Lab, name: str) -> None:
    import json

    from nsbridge.standins import _write_if_changed  # (an `up` of an unchanged lab writes nothing)

    _write_if_changed(os.path.join(lab.host.root, INFO), json.dumps({"name": name, "dir": lab.dir}))


def running_labs(parent: Host) -> list[tuple[str, str, Host]]:
    """Sandboxed labs with state under PARENT's root: (lab name, folder, host)."""
    import json

    d = os.path.join(parent.root, "labs")
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        root = os.path.join(d, n)
        if not os.path.exists(os.path.join(root, "state.db")):
            continue
        try:
            with open(os.path.join(root, INFO)) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {}
        out.append((str(info.get("name", n)), str(info.get("dir", "")), Host(root, n)))
    return out
