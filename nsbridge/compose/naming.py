"""Compose's names and labels, so that `ps`, `network ls` and `inspect` show a
lab as Docker Compose would have made it (and a teacher's scripts that filter
on com.docker.compose.project work on both)."""
from __future__ import annotations

import hashlib
import json
import re

from nsbridge.errors import InvalidArgument

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NETWORK = "com.docker.compose.network"
ONEOFF = "com.docker.compose.oneoff"
NUMBER = "com.docker.compose.container-number"
CONFIG_HASH = "com.docker.compose.config-hash"
DEPENDS_ON = "com.docker.compose.depends_on"
IMAGE = "com.docker.compose.image"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
VERSION = "com.docker.compose.version"
#: nsbridge's own: what x-nsbridge applied (impairments, link states), kept apart
#: from the config hash so that changing them never recreates the container
XNSBRIDGE_HASH = "io.nsbridge.compose.x-nsbridge-hash"

#: The Compose version whose behaviour nsbridge follows, in com.docker.compose.version.
COMPOSE_VERSION = "2.29.0"

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def normalize_project_name(name: str) -> str:
    """Compose's default project name from a folder (compose-go's
    NormalizeProjectName): lower case, only [a-z0-9_-], no leading - or _."""
    return "".join(ch for ch in name.lower() if ch.isascii() and (ch.isalnum() or ch in "_-")).lstrip("_-")


def check_project_name(name: str) -> str:
    """A name given with -p or `name:` is checked, not rewritten (as Compose)."""
    if not _PROJECT_RE.match(name):
        raise InvalidArgument(
            f"invalid project name {name!r}: must consist only of lowercase alphanumeric characters, "
            "hyphens, and underscores as well as start with a letter or number"
        )
    return name


def container_name(project: str, service: str, number: int = 1) -> str:
    return f"{project}-{service}-{number}"


def network_name(project: str, key: str) -> str:
    return f"{project}_{key}"


def built_image(project: str, service: str) -> str:
    """The image name Compose gives a service that only has `build:`."""
    return f"{project}-{service}"


def config_hash(data: object) -> str:
    """sha256 of the canonical JSON of a service's or network's settings: the
    label Compose compares to decide what to recreate."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(o: object) -> object:
    from nsbridge.record import asdict

    return asdict(o)
