"""The lessons that ship with nsbridge: `lab ls` lists them, `lab get NAME
[DIR]` copies one out. Each is a folder under lessons/ with compose.yaml,
README.md (the tasks) and checks.yaml; index.yaml gives their order, title and
what they need (`requires: [macvlan]`: a driver this nsbridge must have)."""
from __future__ import annotations

import os
import shutil

from nsbridge.errors import Conflict, NotFound
from nsbridge.record import field, record

LESSONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lessons")
#: network drivers this nsbridge has (a lesson that needs another is listed, not offered)
DRIVERS = ("bridge", "host", "null")


@record
class Lesson:
    name: str
    title: str
    requires: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return os.path.join(LESSONS, self.name)

    @property
    def available(self) -> bool:
        return all(r in DRIVERS for r in self.requires)


def index() -> list[Lesson]:
    from nsbridge.compose.load import parse_yaml

    path = os.path.join(LESSONS, "index.yaml")
    with open(path, encoding="utf-8") as f:
        doc = parse_yaml(f.read(), path)
    return [Lesson(str(d["name"]), str(d["title"]), [str(r) for r in d.get("requires", [])]) for d in doc["lessons"]]


def get(name: str, dest: str | None) -> str:
    """Copy lesson NAME to DEST (default ./NAME); returns the folder."""
    lesson = next((x for x in index() if x.name == name), None)
    if lesson is None:
        raise NotFound(f"no lesson {name!r} (nsbridge lab ls lists them)")
    if not lesson.available:
        raise NotFound(f"lesson {name} needs the {', '.join(lesson.requires)} driver, which this nsbridge does not have yet")
    dest = os.path.abspath(dest or name)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise Conflict(f"{dest} exists and is not empty: choose another folder")
    shutil.copytree(lesson.path, dest, dirs_exist_ok=True)
    _give_back(dest)
    return dest


def _give_back(dest: str) -> None:
    """Under sudo, the copy belongs to the student who asked for it (to edit it)."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if not (uid and gid and uid.isdigit() and gid.isdigit()):
        return
    for root, dirs, files in os.walk(dest):
        for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
            os.lchown(n, int(uid), int(gid))
