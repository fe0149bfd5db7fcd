"""Shared bits for the benchmark sections: timing, medians, table printing."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def whole_process_ms(argv: list[str], runs: int, env: dict | None = None) -> float:
    return median_ms(lambda: subprocess.run(argv, env=env, capture_output=True, check=False), runs)


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


def nsbridge_entry() -> tuple[str, str]:
    """The entry point a user runs, as installed next to this Python (its venv; /usr/local/bin/nsbridge
    links to it, or to another checkout's), and the interpreter its first line starts."""
    here = os.path.join(os.path.dirname(sys.executable), "nsbridge")
    cli = here if os.path.exists(here) else shutil.which("nsbridge") or ""
    if not cli:
        raise SystemExit("bench: no nsbridge entry point (run ./setup.sh install)")
    with open(cli) as f:
        first = f.readline()
    # setup.sh's launcher starts `#!/usr/bin/env -S --block-signal=INT PYTHON`: the interpreter is the last word
    words = first[2:].split() if first.startswith("#!") else []
    return cli, words[-1] if words else sys.executable
