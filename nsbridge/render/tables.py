"""Docker's tables (`network ls`, `ps`) and their --format/--filter rows.

Column layout is Go's tabwriter as the docker CLI sets it up: minimum cell
width 10, padding 3, the last column unpadded.
"""
from __future__ import annotations

import json
import time
from datetime import datetime

from nsbridge.model import Container, Network


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(10, max([len(h)] + [len(r[i]) for r in rows]) + 3) for i, h in enumerate(header)]
    return "".join(
        "".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + r[-1] + "\n" for r in [header, *rows]
    )


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def parse_time(iso: str) -> float:
    """Our RFC 3339 nanosecond timestamps back to epoch seconds."""
    if iso.startswith("0001-"):
        return 0.0
    base = iso[:26] + "+00:00" if len(iso) >= 26 else iso.replace("Z", "+00:00")
    return datetime.fromisoformat(base).timestamp()


def docker_time(iso: str) -> str:
    """'2026-11-29 15:19:30.643645103 +0000 UTC' (Go's time.String)."""
    return iso.replace("T", " ").replace("Z", " +0000 UTC")


# -- networks -------------------------------------------------------------------
def network_row(n: Network, no_trunc: bool = False) -> dict[str, object]:
    return {
        "CreatedAt": docker_time(n.created),
        "Driver": n.driver,
        "ID": n.id if no_trunc else n.short_id,
        "IPv4": "true" if n.ipam else "false",
        "IPv6": "false",
        "Internal": "true" if n.internal else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in n.labels.items()),
        "Name": n.name,
        "Scope": "local",
    }


def label_match(labels: dict[str, str], want: str) -> bool:
    """Docker's `label=KEY` / `label=KEY=VALUE` filter term."""
    k, eq, v = want.partition("=")
    return k in labels and (not eq or labels[k] == v)


def network_matches(n: Network, filters: list[str]) -> bool:
    """Docker's --filter: same key ORs, different keys AND."""
    by_key: dict[str, list[str]] = {}
    for f in filters:
        k, sep, v = f.partition("=")
        if not sep:  # the docker CLI's filters.ParseFlag, reported as pflag does
            from nsbridge.engine.validate import CliInvalid, goq

            raise CliInvalid(f'invalid argument {goq(f)} for "-f, --filter" flag: bad format of filter (expected name=value)')
        by_key.setdefault(k, []).append(v)
    for k, values in by_key.items():
        if k == "name":
            ok = any(v in n.name for v in values)
        elif k == "driver":
            ok = n.driver in values
        elif k == "id":
            ok = any(n.id.startswith(v) for v in values)
        elif k == "label":
            ok = any(label_match(n.labels, v) for v in values)
        elif k == "type":
            bad = [v for v in values if v not in ("builtin", "custom")]
            if bad:
                from nsbridge.errors import InvalidArgument

                raise InvalidArgument(f"Invalid filter: 'type'='{bad[0]}'")  # Docker's text
            ok = any((v == "builtin") == n.predefined for v in values)
        elif k == "scope":
            ok = "local" in values
        else:
            from nsbridge.errors import InvalidArgument

            raise InvalidArgument(f"Invalid filter '{k}'")  # Docker 20.10's text
        if not ok:
            return False
    return True


# -- containers ------------------------------------------------------------------
def command_text(c: Container, no_trunc: bool) -> str:
    """ps's COMMAND: Docker's daemon joins Path and Args (an argument with a space
    in single quotes); its CLI cuts it to 20 characters with `…` and quotes it."""
    argv = c.shown_command
    cmd = " ".join([*argv[:1], *(f"'{a}'" if " " in a else a for a in argv[1:])])
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return json.dumps(cmd, ensure_ascii=False)


def status_text(c: Container, now: float) -> str:
    if c.state == "running":
        return "Up " + human_duration(now - parse_time(c.started_at))
    if c.state == "created":
        return "Created"
    return f"Exited ({c.exit_code}) {human_duration(now - parse_time(c.finished_at))} ago"


def container_row(c: Container, ports: str, networks: str, no_trunc: bool = False) -> dict[str, object]:
    now = time.time()
    return {
        "Command": command_text(c, no_trunc),
        "CreatedAt": docker_time(c.created),
        "ID": c.id if no_trunc else c.short_id,
        "Image": c.image or "<none>",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())),
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": c.name,
        "Networks": networks,
        "Ports": ports,
        "RunningFor": human_duration(now - parse_time(c.created)) + " ago",
        "Size": "0B",
        "State": c.state,
        "Status": status_text(c, now),
    }


PS_COLUMNS = [
    ("CONTAINER ID", "ID"),
    ("IMAGE", "Image"),
    ("COMMAND", "Command"),
    ("CREATED", "RunningFor"),
    ("STATUS", "Status"),
    ("PORTS", "Ports"),
    ("NAMES", "Names"),
]
NETWORK_COLUMNS = [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"), ("SCOPE", "Scope")]


def rows_table(columns: list[tuple[str, str]], rows: list[dict[str, object]]) -> str:
    return table([h for h, _ in columns], [[str(r[k]) for _, k in columns] for r in rows])


def json_lines(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)
