"""One time-series page per station (its readings against its limits); shown in the HTML too."""

from __future__ import annotations

from collections.abc import Iterator

from reports import plots
from reports.model import Report
from reports.sections.base import Page, Section


def _pdf(report: Report, lang: str) -> Iterator[Page]:
    for station_id in report.site.stations:  # one at a time: a page is closed before the next is drawn
        yield plots.timeseries_figure(report, station_id, lang), report.site.stations[station_id].name(lang)


SECTION = Section("stations", None, pdf=_pdf)
