"""PDF pages drawn with matplotlib (PdfPages): no system dependency beyond matplotlib itself.

Text pages (cover, tables) are figures with text placed on a grid; plots come from reports.plots.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports import summary, tables  # noqa: E402
from reports.limits import pick_lang  # noqa: E402
from reports.model import Report  # noqa: E402
from reports.plots import A4_PORTRAIT  # noqa: E402
from reports.texts import t  # noqa: E402

STATUS_COLOURS = {"ok": "#1a9850", "warn": "#f39c12", "bad": "#c0392b"}
A4_LANDSCAPE = (A4_PORTRAIT[1], A4_PORTRAIT[0])


def title_text(report: Report, lang: str) -> str:
    return t("title", lang, month=f"{report.month.month:02d}/{report.month.year}")


def cover_page(report: Report, lang: str) -> Figure:
    """Page 1: what a commune chairman reads in one minute."""
    fig = plt.figure(figsize=A4_PORTRAIT)
    site = report.site
    y = 0.955
    fig.text(0.06, y, title_text(report, lang), fontsize=15, weight="bold")
    y -= 0.032
    name = site.name_vi if lang == "vi" or not site.name_en else site.name_en
    fig.text(0.06, y, f"{name}{' — ' + t('province', lang) + ' ' + site.province if site.province else ''}",
             fontsize=11)
    y -= 0.045
    fig.text(0.06, y, t("summary", lang), fontsize=12, weight="bold")
    y -= 0.012
    for h in summary.headlines(report, lang):
        lines = textwrap.wrap(h.text, 95)
        y -= 0.024
        fig.text(0.065, y, "●", color=STATUS_COLOURS[h.status], fontsize=11, va="baseline")
        for i, line in enumerate(lines):
            fig.text(0.09, y - i * 0.019, line, fontsize=9.5, va="baseline")
        y -= 0.019 * (len(lines) - 1)
    y -= 0.04
    fig.text(0.06, y, t("versions", lang), fontsize=10, weight="bold")
    for v in report.versions:
        y -= 0.015
        title = v.title_vi if lang == "vi" else v.title_en
        fig.text(0.065, y, f"• {pick_lang(v.regulation, lang)} — {title}  [{v.pack}, {v.digest}]", fontsize=7)
    if any(r.limit.unverified for r in report.limited_rows()):
        y -= 0.024
        fig.text(0.065, y, t("unverified", lang), fontsize=7.5, style="italic")
    y -= 0.035
    fig.text(0.06, y, t("method", lang), fontsize=10, weight="bold")
    for line in textwrap.wrap(t("method_text", lang, tz=report.month.timezone), 120):
        y -= 0.017
        fig.text(0.065, y, line, fontsize=7.2)
    generated = report.generated_at.astimezone(report.month.tz).strftime("%d/%m/%Y %H:%M")
    fig.text(0.06, 0.03, t("generated", lang, at=generated), fontsize=7, color="grey")
    return fig


def table_pages(title: str, table: tables.Table, widths: list[float], rows_per_page: int = 48,
                wrap: int | None = None, landscape: bool = True) -> list[Figure]:
    """A long table split over pages; ``widths`` are relative column widths."""
    header, rows = table
    total = sum(widths)
    xs = [0.03]
    for w in widths[:-1]:
        xs.append(xs[-1] + 0.94 * w / total)
    pages = []
    chunks = [rows[i:i + rows_per_page] for i in range(0, len(rows), rows_per_page)] or [[]]
    for n, chunk in enumerate(chunks, 1):
        fig = plt.figure(figsize=A4_LANDSCAPE if landscape else A4_PORTRAIT)
        fig.text(0.03, 0.95, title + (f" ({n}/{len(chunks)})" if len(chunks) > 1 else ""), fontsize=11,
                 weight="bold")
        y = 0.91
        for x, cell, w in zip(xs, header, widths, strict=True):
            chars = max(6, int(w / total * (190 if landscape else 130)))
            fig.text(x, y, "\n".join(textwrap.wrap(str(cell), chars)[:2]), fontsize=6.5, weight="bold", va="top")
        y -= 0.055
        fig.add_artist(plt.Line2D([0.03, 0.97], [y + 0.008, y + 0.008], color="black", linewidth=0.5))
        step = 0.86 / rows_per_page
        for i, row in enumerate(chunk):
            if i % 2 == 0:
                fig.add_artist(plt.Rectangle((0.03, y - step * 0.75), 0.94, step, color="#f2f2f2", zorder=0))
            for x, cell, w in zip(xs, row, widths, strict=True):
                chars = max(4, int(w / total * (200 if landscape else 140)))
                text = str(cell)
                if len(text) > chars:
                    text = text[:chars - 1] + "…"
                fig.text(x, y, text, fontsize=6, va="baseline")
            y -= step
        pages.append(fig)
    return pages
