"""The HTML's figures: every PDF page that has an HTML title (AQI calendar, flood, completeness,
station time series), embedded as PNG so the file opens offline. HTML only."""

from __future__ import annotations

import base64
from html import escape

from reports.model import Report
from reports.sections.base import Section


def _html(_report: Report, _lang: str, figures: list[tuple[str, bytes]]) -> list[str]:
    parts = []
    for title, png in figures:
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{escape(title)}</h2><img alt=\"{escape(title)}\" src=\"data:image/png;base64,{data}\">")
    return parts


SECTION = Section("figures", None, html=_html)
