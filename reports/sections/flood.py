"""Water level against the flood alarm levels: the figure, then the table of days."""

from __future__ import annotations

from html import escape

from reports import plots, tables
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_html import html_table
from reports.write_pdf import table_pages


def _pdf(report: Report, lang: str) -> list[Page]:
    pages: list[Page] = []
    figure = plots.flood_figure(report, lang)
    if figure is not None:
        pages.append((figure, t("flood", lang)))
    if report.flood:
        table = tables.flood_table(report, lang)
        n = len(table[0])
        pages += [(fig, None) for fig in table_pages(t("flood", lang), table, [16, 8, 8] + [8] * (n - 3),
                                                     rows_per_page=10, landscape=False)]
    return pages


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    if not report.flood:
        return []
    return [f"<h2>{escape(t('flood', lang))}</h2>{html_table(tables.flood_table(report, lang))}"]


SECTION = Section("flood", "flood", pdf=_pdf, html=_html)
