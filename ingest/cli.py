"""CLI for the ingest service (filled in by the ingest module)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="run the ingest service (MQTT → InfluxDB)")
    p.set_defaults(_parser=p)
