"""What a command's imports cost, from `python3 -X importtime` (its stderr): all imports, what one
package pulled in wherever it was imported, and the heaviest of the rest. tools/bench.py docker uses
it to say where each verb's time goes."""
from __future__ import annotations

import re
from collections.abc import Callable

from nsbridge.record import record

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$", re.M)


@record
class Imp:
    self_us: int
    cum_us: int
    depth: int
    name: str
    parent: int = -1  # index of the import that caused this one (-1: none)


def parse(stderr: str) -> list[Imp]:
    """Lines in the order Python printed them: each import after the imports it caused."""
    imps = [Imp(int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)) for m in _LINE.finditer(stderr)]
    stack: list[int] = []  # walking backwards, an import comes before what it caused
    for i in range(len(imps) - 1, -1, -1):
        while stack and imps[stack[-1]].depth >= imps[i].depth:
            stack.pop()
        imps[i].parent = stack[-1] if stack else -1
        stack.append(i)
    return imps


def _lineage(imps: list[Imp], i: int) -> list[str]:
    """The module itself and every import above it."""
    out = []
    while i >= 0:
        out.append(imps[i].name)
        i = imps[i].parent
    return out


def total_ms(imps: list[Imp]) -> float:
    return sum(i.self_us for i in imps) / 1000


def pulled_in_ms(imps: list[Imp], match: Callable[[str], bool]) -> float:
    """Cumulative time of the outermost imports that MATCH (with all they imported), wherever they happened."""
    return sum(imp.cum_us for i, imp in enumerate(imps)
               if match(imp.name) and not any(match(n) for n in _lineage(imps, imp.parent))) / 1000


def heaviest(imps: list[Imp], n: int, skip: Callable[[str], bool]) -> list[tuple[str, float]]:
    """Top-level packages by their own import time, leaving out SKIP's modules and all they imported."""
    per: dict[str, int] = {}
    for i, imp in enumerate(imps):
        if not any(skip(name) for name in _lineage(imps, i)):
            top = imp.name.split(".")[0]
            per[top] = per.get(top, 0) + imp.self_us
    return [(k, v / 1000) for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:n]]
