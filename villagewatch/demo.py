"""``villagewatch demo``: the stack, the pilot commune's gateways and the ingest in one command."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pilot-village demo")
    p.set_defaults(_parser=p)
