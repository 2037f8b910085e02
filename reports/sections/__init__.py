"""Report sections, in the order they appear (reports/sections/base.py says what a section declares).

A new section is one module in this folder and one line below; the PDF (reports/write_pdf.py), HTML
(reports/write_html.py) and CSV (reports/write_csv.py) writers iterate ``SECTIONS``. The HTML shows
the figures of the PDF pass where the ``figures`` section stands.
"""

from __future__ import annotations

from reports.sections import (
    appendix,
    aqi,
    completeness,
    daily,
    episodes,
    figures,
    flood,
    results,
    stations,
    summary,
    waste,
)
from reports.sections.base import Page, Section

SECTIONS: list[Section] = [
    summary.SECTION,
    results.SECTION,
    aqi.SECTION,
    flood.SECTION,
    waste.SECTION,
    completeness.SECTION,
    figures.SECTION,
    episodes.SECTION,
    stations.SECTION,
    appendix.SECTION,
    daily.SECTION,
]

__all__ = ["SECTIONS", "Page", "Section"]
