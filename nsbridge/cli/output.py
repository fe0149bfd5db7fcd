"""Printing objects the docker CLI's way: --format templates, `json`, tables."""
from __future__ import annotations

import json
import sys

from nsbridge.errors import InvalidArgument


class FormatError(InvalidArgument):
    """A bad --format template: the docker CLI reports it itself (no daemon prefix)."""

    prefix = ""


def _template(fmt: str):
    from nsbridge.render.gotemplate import TemplateError, compile_template

    try:
        return compile_template(fmt)
    except TemplateError as e:
        raise FormatError(f"Template parsing error: {e}") from None


def confirm(warning: str) -> bool:
    """Docker's `WARNING! ... [y/N]` prompt; no answer (no stdin) is no."""
    sys.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline() if sys.stdin and not sys.stdin.closed else ""
    return answer.strip().lower() in ("y", "yes")


def print_inspect(objs: list[dict], fmt: str | None) -> None:
    """`inspect`: indented JSON array, or the template once per object."""
    if not fmt:
        sys.stdout.write(json.dumps(objs, indent=4, ensure_ascii=False) + "\n")
        return
    if fmt == "json":
        for o in objs:
            sys.stdout.write(json.dumps(o, separators=(",", ":"), ensure_ascii=False) + "\n")
        return
    from nsbridge.render.gotemplate import TemplateError

    t = _template(fmt)
    for o in objs:
        try:
            sys.stdout.write(t.execute(o) + "\n")
        except TemplateError as e:
            raise FormatError(str(e) if str(e).startswith("template: ") else f"template: {e}") from None


def print_rows(rows: list[dict[str, object]], columns: list[tuple[str, str]], fmt: str | None, quiet: bool) -> None:
    """`ls`/`ps`: a table, IDs only, JSON lines, or a template per row."""
    from nsbridge.render import tables

    if quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return
    if not fmt or fmt == "table":
        sys.stdout.write(tables.rows_table(columns, rows))
        return
    if fmt == "json":
        sys.stdout.write(tables.json_lines(rows))
        return
    from nsbridge.render.gotemplate import TemplateError, docker_preprocess, is_table

    table = is_table(fmt)
    t = _template(docker_preprocess(fmt))
    try:
        lines = [t.execute(r) for r in rows]
        header = t.execute_header({k: k for r in rows[:1] for k in r} or {h: h for _, h in columns}) if table else ""
    except TemplateError as e:
        raise FormatError(str(e) if str(e).startswith("template: ") else f"template: {e}") from None
    if table:
        header = _header_names(header, columns)
        cells = [line.split("\t") for line in [header, *lines]]
        if all(len(c) == len(cells[0]) for c in cells):
            sys.stdout.write(tables.table(cells[0], cells[1:]))
            return
        lines = [header, *lines]
    sys.stdout.write("".join(line + "\n" for line in lines))


def _header_names(header: str, columns: list[tuple[str, str]]) -> str:
    """Field names in a table header become Docker's column titles."""
    titles = {field: title for title, field in columns}
    titles.update({"Name": "NAME", "Names": "NAMES", "Networks": "NETWORKS", "State": "STATE", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT", "Internal": "INTERNAL", "IPv6": "IPV6", "IPv4": "IPV4"})
    return "\t".join(titles.get(cell, cell.upper()) for cell in header.split("\t"))
