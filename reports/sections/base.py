"""What a report section declares: its name, its title (vi/en, from reports/texts.py) and builders
for the outputs it appears in. A section is one module in this folder ending in
``SECTION = Section(...)`` plus one line in the registry (``reports/sections/__init__.py``); the
PDF, HTML and CSV writers iterate the registry in order, so nothing else changes.

- ``pdf(report, lang)`` yields pages: ``(figure, html_title)``. A page with an ``html_title`` is a
  figure the HTML shows as well (rendered once, embedded as PNG by the ``figures`` section).
- ``html(report, lang, figures)`` returns the HTML fragments of the section (joined by newlines);
  ``figures`` are the (title, PNG) pairs of the PDF pass, for the section that shows them.
- ``csv(report, lang)`` returns ``(file suffix, table)`` pairs: ``bao-cao-<commune>-<month><suffix>.csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from matplotlib.figure import Figure

from reports.model import Report
from reports.tables import Table
from reports.texts import t

Page = tuple[Figure, str | None]
PdfBuilder = Callable[[Report, str], Iterable[Page]]
HtmlBuilder = Callable[[Report, str, list[tuple[str, bytes]]], list[str]]
CsvBuilder = Callable[[Report, str], list[tuple[str, Table]]]


@dataclass(frozen=True)
class Section:
    name: str
    title: str | None = None  # key of reports/texts.py TEXTS: (vi, en)
    pdf: PdfBuilder | None = None
    html: HtmlBuilder | None = None
    csv: CsvBuilder | None = None

    def title_text(self, lang: str) -> str:
        return t(self.title, lang) if self.title else self.name
