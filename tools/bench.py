#!/usr/bin/env python3
"""nsbridge benchmarks: each prints a table for this machine, next to the same
work done another way in the same run (ratios), in its own sandbox host.

  sudo .venv/bin/python tools/bench.py [core|dns|ports|scale|standins|fill|lab|explain|docker|overlay|all] [options]

Sections live in tools/bench_<name>.py, each with `main(argv) -> int`.
Speed is measured here, never asserted in tests.
"""
from __future__ import annotations

import importlib
import os
import sys

SECTIONS = ("core", "dns", "ports", "scale", "standins", "fill", "lab", "explain", "docker", "overlay")


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("bench: run as root (it makes its own sandbox host)", file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    which = argv[0] if argv and not argv[0].startswith("-") else "core"
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    names = SECTIONS if which == "all" else (which,)
    rc = 0
    for name in names:
        if name not in SECTIONS:
            print(f"bench: unknown section {name} (one of {', '.join(SECTIONS)}, all)", file=sys.stderr)
            return 2
        try:
            mod = importlib.import_module(f"bench_{name}")
        except ModuleNotFoundError as e:
            print(f"bench {name}: not available ({e})")
            rc = rc or 1
            continue
        rc = mod.main(rest) or rc
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
