"""Waste collection punctuality (bins above the fill threshold, for how long)."""

from __future__ import annotations

from html import escape

from reports import tables
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_html import html_table
from reports.write_pdf import table_pages


def _pdf(report: Report, lang: str) -> list[Page]:
    if not report.waste:
        return []
    return [(fig, None) for fig in table_pages(t("waste", lang), tables.waste_table(report, lang),
                                               [16, 6, 6, 6, 6, 6], rows_per_page=10, landscape=False)]


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    if not report.waste:
        return []
    return [f"<h2>{escape(t('waste', lang))}</h2>{html_table(tables.waste_table(report, lang))}"]


SECTION = Section("waste", "waste", pdf=_pdf, html=_html)
