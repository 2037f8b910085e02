"""Data completeness per station and day (%): the map of what the verdicts rest on."""

from __future__ import annotations

from reports import plots
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(plots.completeness_figure(report, lang), t("completeness_map", lang))]


SECTION = Section("completeness", "completeness_map", pdf=_pdf)
