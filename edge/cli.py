"""CLI for the edge gateway."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edge", help="run one edge gateway of a site")
    p.set_defaults(_parser=p)
