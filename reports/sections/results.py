"""Results per station and parameter: the main table (PDF, HTML) and the main CSV."""

from __future__ import annotations

from html import escape

from reports import tables
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_html import html_table
from reports.write_pdf import table_pages


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(fig, None) for fig in table_pages(t("per_station", lang), tables.results_table(report, lang),
                                               [17, 12, 10, 16, 6, 6, 9, 9, 8], rows_per_page=42)]


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    return [f"<h2>{escape(t('per_station', lang))}</h2>{html_table(tables.results_table(report, lang))}"]


def _csv(report: Report, lang: str) -> list[tuple[str, tables.Table]]:
    return [("", tables.results_table(report, lang, machine=True))]


SECTION = Section("results", "per_station", pdf=_pdf, html=_html, csv=_csv)
