"""Daily VN_AQI calendar (only when the commune measures PM)."""

from __future__ import annotations

from reports import plots
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(plots.aqi_calendar_figure(report, lang), t("aqi_calendar", lang))] if report.aqi else []


SECTION = Section("aqi", "aqi_calendar", pdf=_pdf)
