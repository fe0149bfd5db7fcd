"""Finding, reading, interpolating and merging compose files, as Compose does,
up to plain dictionaries (parse.py makes the model from them).

YAML is read as Compose reads it (YAML 1.2's core schema, go-yaml v3): `22:22`
is a string, not the sexagesimal number 1342 that YAML 1.1 makes of it, and
`yes`/`on` are strings. Variables are interpolated from the environment and
the project's `.env` file: ${VAR}, $VAR, ${VAR:-default}, ${VAR-default},
${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, nested, and $$ for a $.
"""
from __future__ import annotations

import functools
import os
import re

from nsbridge.errors import InvalidArgument, NotFound

#: Compose's names for the file, in the order it looks for them
FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_NAMES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml")


class ComposeError(InvalidArgument):
    """A compose file Compose would refuse: printed without the daemon's prefix."""

    prefix = ""


@functools.lru_cache(maxsize=1)
def _loader():
    """A safe YAML loader with YAML 1.2 core-schema scalars (what go-yaml v3 gives Compose)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for k, v in base.yaml_implicit_resolvers.items()
    }
    rules = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("tag:yaml.org,2002:float",
         r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
         "-+.0123456789"),
    ]
    for tag, rx, first in rules:
        Loader.add_implicit_resolver(tag, re.compile(rx), list(first))
    return Loader


def parse_yaml(text: str, path: str) -> object:
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ComposeError(f"yaml: {where}{problem} ({path})") from None


# -- finding the files --------------------------------------------------------------------
def find_files(workdir: str) -> list[str]:
    """compose.yaml (or its other names) in WORKDIR or a parent, plus the
    override file next to it, as Compose finds them."""
    d = os.path.abspath(workdir)
    while True:
        for name in FILE_NAMES:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                over = [os.path.join(d, o) for o in OVERRIDE_NAMES if os.path.isfile(os.path.join(d, o))]
                return [path, *over[:1]]
        parent = os.path.dirname(d)
        if parent == d:
            raise NotFound(
                "no configuration file provided: not found"
            )
        d = parent


def read_env_file(path: str) -> dict[str, str]:
    """A .env / env_file: NAME=VALUE lines, # comments, optional quotes."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    except OSError as e:
        raise ComposeError(f"cannot read {path}: {e.strerror}") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        k, sep, v = line.partition("=")
        k = k.strip()
        if not sep:
            if k in os.environ:
                out[k] = os.environ[k]
            continue
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        elif " #" in v:
            v = v.split(" #", 1)[0].rstrip()
        out[k] = v
    return out


# -- interpolation ---------------------------------------------------------------------------
_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class Interpolator:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.unset: list[str] = []  # names used without a value (one warning each)

    def value(self, obj: object) -> object:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj

    def text(self, s: str) -> str:
        if "$" not in s:
            return s
        out, i = [], 0
        while i < len(s):
            ch = s[i]
            if ch != "$":
                out.append(ch)
                i += 1
                continue
            nxt = s[i + 1] if i + 1 < len(s) else ""
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                end = self._close(s, i + 2)
                out.append(self._braced(s[i + 2 : end]))
                i = end + 1
            else:
                m = _NAME.match(s, i + 1)
                if m is None:
                    out.append("$")
                    i += 1
                else:
                    out.append(self._get(m.group(0)))
                    i = m.end()
        return "".join(out)

    @staticmethod
    def _close(s: str, start: int) -> int:
        depth = 1
        for j in range(start, len(s)):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return j
        raise ComposeError(f"Invalid template: {s!r}")

    def _get(self, name: str) -> str:
        if name in self.env:
            return self.env[name]
        if name not in self.unset:
            self.unset.append(name)
        return ""

    def _braced(self, expr: str) -> str:
        m = _NAME.match(expr)
        if m is None:
            raise ComposeError(f"Invalid template: \"${{{expr}}}\"")
        name, rest = m.group(0), expr[m.end() :]
        if not rest:
            return self._get(name)
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if rest.startswith(op):
                arg = rest[len(op) :]
                break
        else:
            raise ComposeError(f"Invalid template: \"${{{expr}}}\"")
        have = name in self.env
        empty = not self.env.get(name)
        missing = (not have) or (op[0] == ":" and empty)
        kind = op[-1]
        if kind == "-":
            return self.text(arg) if missing else self.env[name]
        if kind == "?":
            if missing:
                raise ComposeError(f"required variable {name} is missing a value: {self.text(arg)}")
            return self.env[name]
        return "" if missing else self.text(arg)  # "+"


# -- merging (override files, several -f) --------------------------------------------------
#: sequences that later files add to (Compose's merge); every other list is replaced
_APPENDED = {"ports", "expose", "dns", "dns_search", "dns_opt", "extra_hosts", "links", "cap_add", "cap_drop", "env_file"}


def merge(base: dict, over: dict, key: str = "") -> dict:
    out = dict(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = merge(out[k], v, k)
        elif k in out and isinstance(out[k], list) and isinstance(v, list) and k in _APPENDED:
            out[k] = out[k] + [x for x in v if x not in out[k]]
        else:
            out[k] = v
    return out


def load_dicts(files: list[str], env: dict[str, str]) -> tuple[dict, list[str]]:
    """The merged, interpolated document of FILES; and the variables used unset."""
    interp = Interpolator(env)
    doc: dict = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise NotFound(f"open {path}: no such file or directory") from None
        except OSError as e:
            raise ComposeError(f"open {path}: {e.strerror}") from None
        data = parse_yaml(text, path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ComposeError(f"Top-level object must be a mapping ({path})")
        doc = merge(doc, interp.value(data))
    return doc, interp.unset


def load_project(files: list[str] | None = None, project_name: str | None = None, project_dir: str | None = None,
                 profiles: list[str] | None = None, workdir: str = "."):
    """The project as Compose would load it: files found (or given with -f),
    .env of the project directory, name from -p, COMPOSE_PROJECT_NAME, the
    file's `name:` or the folder (normalised)."""
    from nsbridge.compose import naming, parse

    files = [os.path.abspath(f) for f in files] if files else find_files(workdir)
    pdir = os.path.abspath(project_dir) if project_dir else os.path.dirname(files[0])
    env = {**read_env_file(os.path.join(pdir, ".env")), **os.environ}
    doc, unset = load_dicts(files, env)
    name = project_name or os.environ.get("COMPOSE_PROJECT_NAME")
    if name:
        naming.check_project_name(name)
    elif doc.get("name"):
        name = naming.check_project_name(str(doc["name"]))
    else:
        name = naming.normalize_project_name(os.path.basename(pdir))
        if not name:
            raise ComposeError(f"project name must not be empty (folder {pdir!r} gives none: use -p)")
    if profiles is None:
        profiles = [x for x in os.environ.get("COMPOSE_PROFILES", "").split(",") if x]
    p = parse.project(doc, name, pdir, files, profiles)
    p.warnings[:0] = [f'The "{v}" variable is not set. Defaulting to a blank string.' for v in unset]
    return p
