"""Per-day values of every station and parameter: CSV only (for spreadsheets)."""

from __future__ import annotations

from reports import tables
from reports.model import Report
from reports.sections.base import Section


def _csv(report: Report, lang: str) -> list[tuple[str, tables.Table]]:
    return [("-daily", tables.daily_table(report, lang, machine=True))]


SECTION = Section("daily", None, csv=_csv)
