"""CSV files for spreadsheets: UTF-8 with a byte-order mark (Excel then shows Vietnamese correctly),
plain numbers with a decimal point, ISO 8601 local times."""

from __future__ import annotations

import csv
from pathlib import Path

from reports import tables
from reports.model import Report


def _write(path: Path, table: tables.Table) -> Path:
    header, rows = table
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_csv(report: Report, out_dir: Path, stem: str, lang: str) -> list[Path]:
    """One file per table the sections declare (reports/sections): the main CSV (per station and
    parameter) plus episodes and per-day companions."""
    from reports.sections import SECTIONS

    return [_write(out_dir / f"{stem}{suffix}.csv", table)
            for section in SECTIONS if section.csv is not None
            for suffix, table in section.csv(report, lang)]
