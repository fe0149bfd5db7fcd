"""`nsbridge lab ...` (being written)."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("lab", help="Labs: compose folders in their own sandbox hosts, with checks")
