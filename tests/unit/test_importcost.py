"""tools/importcost.py: reading `python -X importtime` output (which module pulled in which)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))

import importcost  # noqa: E402

# as Python prints it: each import after what it caused, two spaces per level
SAMPLE = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 | _io
import time:       200 |        200 |       re._parser
import time:       300 |        500 |     re
import time:        50 |         50 |     _json
import time:      1000 |       1550 |   json.decoder
import time:       400 |       1950 | json
import time:       700 |        700 |       asyncio.events
import time:        10 |         10 |       re._casefix
import time:      1000 |       1710 |     pyroute2.netlink
import time:       500 |       2210 |   pyroute2
import time:      2000 |       4210 | nsbridge.cli.main
import time:        30 |         30 | pyroute2.iproute
"""


def test_parse_finds_each_line_and_its_parent():
    imps = importcost.parse(SAMPLE)
    assert [i.name for i in imps][:3] == ["_io", "re._parser", "re"]
    by = {i.name: i for i in imps}
    assert imps[by["re._parser"].parent].name == "re"
    assert imps[by["re"].parent].name == "json.decoder"
    assert by["json"].parent == -1 and by["_io"].parent == -1
    assert imps[by["pyroute2"].parent].name == "nsbridge.cli.main"
    assert by["pyroute2.iproute"].parent == -1


def test_totals_pulled_in_and_heaviest():
    imps = importcost.parse(SAMPLE)
    assert importcost.total_ms(imps) == 6.29  # every line's own time, once
    # pyroute2 with all it imported (2210) + the later pyroute2.iproute, outside it (30); not the nested lines again
    assert importcost.pulled_in_ms(imps, lambda n: n.split(".")[0] == "pyroute2") == 2.24
    assert importcost.pulled_in_ms(imps, lambda n: n == "nsbridge.cli.main") == 4.21
    # own time by top-level package, with pyroute2 and all it pulled in (asyncio, re._casefix) left out
    top = importcost.heaviest(imps, 3, lambda n: n.split(".")[0] == "pyroute2")
    assert top == [("nsbridge", 2.0), ("json", 1.4), ("re", 0.5)]
