"""A kill inside an operation, for crash tests: die right after the N-th
kernel request of this process (NSBRIDGE_TEST_CRASH_AT_REQUEST=N).

A request is one netlink send (the kernel handles its messages before the
process can be killed) or one stage of making or removing a named network
namespace. Named steps (engine/plan.py) kill between steps; this kills
between the requests inside a step, which is where a device can be made and
not yet recorded. Off, it costs one comparison per request.
"""
from __future__ import annotations

import os

_AT = int(os.environ.get("NSBRIDGE_TEST_CRASH_AT_REQUEST") or 0)
# The count of requests so far: process-wide on purpose (a request made on any
# socket counts), and only ever read when the failpoint is armed.
_done = [0]


def request_done() -> None:
    if _AT:
        _done[0] += 1
        if _done[0] == _AT:
            os._exit(137)
