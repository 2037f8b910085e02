"""Exceedance episodes: the list (PDF, HTML) and the episodes CSV."""

from __future__ import annotations

from html import escape

from reports import tables
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_html import html_table
from reports.write_pdf import table_pages


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(fig, None) for fig in table_pages(t("episode_list", lang), tables.episodes_table(report, lang, per_row=5),
                                               [16, 11, 12, 8, 8, 6, 6], rows_per_page=48)]


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    return [f"<h2>{escape(t('episode_list', lang))}</h2>{html_table(tables.episodes_table(report, lang))}"]


def _csv(report: Report, lang: str) -> list[tuple[str, tables.Table]]:
    return [("-episodes", tables.episodes_table(report, lang, machine=True))]


SECTION = Section("episodes", "episode_list", pdf=_pdf, html=_html, csv=_csv)
