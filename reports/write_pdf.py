"""PDF pages drawn with matplotlib (PdfPages): no system dependency beyond matplotlib itself.

Text pages (cover, tables, appendix) are figures with text placed on a grid; plots come from
reports.plots. Page 1 fits one A4 page for a commune chairman; the method and the rule-pack hashes
are on the last page.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports import summary, tables  # noqa: E402
from reports.limits import pick_lang  # noqa: E402
from reports.model import Report  # noqa: E402
from reports.plots import A4_PORTRAIT  # noqa: E402
from reports.texts import t  # noqa: E402

STATUS_COLOURS = {"ok": "#1a9850", "warn": "#f39c12", "fail": "#c0392b", "nodata": "#8c8c8c", "info": "#2166ac"}
A4_LANDSCAPE = (A4_PORTRAIT[1], A4_PORTRAIT[0])


def title_text(report: Report, lang: str) -> str:
    return t("title", lang, month=f"{report.month.month:02d}/{report.month.year}")


class _Writer:
    """Lines of text down a page, wrapped; y in figure fraction from the top."""

    def __init__(self, fig: Figure, y: float = 0.955, left: float = 0.06):
        self.fig, self.y, self.left = fig, y, left

    def text(self, text: str, size: float = 9.5, width: int = 100, indent: float = 0.0, gap: float = 0.0,
             **kw) -> None:
        self.y -= gap
        step = size / 72 / A4_PORTRAIT[1] * 1.45
        for line in textwrap.wrap(text, width) or [""]:
            self.fig.text(self.left + indent, self.y, line, fontsize=size, va="top", **kw)
            self.y -= step

    def bullet(self, status: str, text: str, size: float = 9.5, width: int = 96) -> None:
        self.fig.text(self.left + 0.003, self.y + 0.001, "●", color=STATUS_COLOURS[status], fontsize=size + 1, va="top")
        self.text(text, size, width, indent=0.025)
        self.y -= 0.004


def cover_page(report: Report, lang: str) -> Figure:
    """Page 1: verdicts, what to do and who, data completeness, regulations applied."""
    fig = plt.figure(figsize=A4_PORTRAIT)
    site = report.site
    w = _Writer(fig)
    w.text(title_text(report, lang), 15, weight="bold")
    name = site.name_vi if lang == "vi" or not site.name_en else site.name_en
    w.text(f"{name}{' — ' + t('province', lang) + ' ' + site.province if site.province else ''}", 11, gap=0.004)
    if report.empty:
        month = f"{report.month.month:02d}/{report.month.year}"
        w.y -= 0.012
        fig.add_artist(plt.Rectangle((0.05, w.y - 0.075), 0.9, 0.085, color="#e6e6e6", zorder=0))
        w.text(t("empty_title", lang, month=month), 13, weight="bold", indent=0.01, gap=0.004)
        w.text(t("empty_text", lang), 10, width=95, indent=0.01)
        w.y -= 0.03
    w.text(t("verdicts", lang), 12, weight="bold", gap=0.015)
    w.y -= 0.006
    lines = summary.headlines(report, lang)
    for h in lines[1:] if report.empty else lines:  # the empty banner above already says it
        w.bullet(h.status, h.text)
    w.text(t("actions", lang), 12, weight="bold", gap=0.015)
    w.y -= 0.006
    acts = summary.actions(report, lang)
    for i, a in enumerate(acts, 1):
        w.text(f"{i}. {a.what}", 9.5, width=98, indent=0.005)
        w.text(("Người làm: " if lang == "vi" else "Who: ") + a.who, 8.5, width=105, indent=0.025, style="italic")
        w.y -= 0.004
    if not acts:
        w.text(t("no_action", lang), 9.5)
    w.y -= 0.01
    for h in summary.data_lines(report, lang):
        w.bullet(h.status, h.text)
    w.text(t("in_force", lang), 10.5, weight="bold", gap=0.012)
    for line in summary.version_lines(report, lang):
        w.text("• " + line, 8, width=115, indent=0.005)
    note = summary.unverified_used(report, lang)
    if note:
        w.text(note, 7.5, width=122, gap=0.004, style="italic")
    generated = report.generated_at.astimezone(report.month.tz).strftime("%d/%m/%Y %H:%M")
    fig.text(0.06, 0.03, t("generated", lang, at=generated) + " — " +
             ("phương pháp và mã băm ở trang cuối" if lang == "vi" else "method and hashes on the last page"),
             fontsize=7, color="grey")
    return fig


def appendix_page(report: Report, lang: str) -> Figure:
    """Last page: evidence rules, method, rule packs with their SHA-256 digests."""
    fig = plt.figure(figsize=A4_PORTRAIT)
    w = _Writer(fig)
    s = report.settings
    w.text(t("appendix", lang), 13, weight="bold")
    w.text(t("evidence", lang), 10.5, weight="bold", gap=0.015)
    w.text(t("evidence_text", lang, hours=s["day_min_hours"], win=s["day_min_windows_pct"],
             month=s["month_min_days_pct"]), 8.5, width=120)
    w.text(t("method", lang), 10.5, weight="bold", gap=0.015)
    w.text(t("method_text", lang, tz=report.month.timezone), 8.5, width=120)
    w.text(t("versions", lang), 10.5, weight="bold", gap=0.015)
    for v in report.versions:
        title = v.title_vi if lang == "vi" else v.title_en
        w.text(f"• {pick_lang(v.regulation, lang)} — {title}: {t('pack_id', lang).lower()} {v.pack}, "
               f"SHA-256 {v.digest}; {pick_lang(v.source, lang)}", 7.5, width=120)
    notes = sorted({f"{pick_lang(r.limit.regulation, lang)} — {r.limit.rule_id}: {pick_lang(r.limit.unverified_note, lang)}"
                    for r in report.limited_rows() if r.limit.unverified and r.limit.unverified_note})
    if notes:
        w.text(t("unverified", lang), 9, weight="bold", gap=0.012)
        for n in notes:
            w.text("• " + n, 7.5, width=120)
    generated = report.generated_at.astimezone(report.month.tz).strftime("%d/%m/%Y %H:%M")
    fig.text(0.06, 0.03, t("generated", lang, at=generated), fontsize=7, color="grey")
    return fig


def table_pages(title: str, table: tables.Table, widths: list[float], rows_per_page: int = 48,
                wrap: int | None = None, landscape: bool = True) -> list[Figure]:
    """A long table split over pages; ``widths`` are relative column widths. Cells wrap onto up to
    three lines instead of being cut (a station name is never truncated)."""
    header, rows = table
    total = sum(widths)
    xs = [0.03]
    for w in widths[:-1]:
        xs.append(xs[-1] + 0.94 * w / total)
    chars = [max(4, int(w / total * (175 if landscape else 125))) for w in widths]
    wrapped = [[textwrap.wrap(str(c), n)[:3] or [""] for c, n in zip(row, chars, strict=True)] for row in rows]
    line_h = 0.86 / rows_per_page * 0.62
    pages: list[Figure] = []
    i = 0
    while i < len(wrapped) or not pages:
        fig = plt.figure(figsize=A4_LANDSCAPE if landscape else A4_PORTRAIT)
        fig.text(0.03, 0.95, title, fontsize=11, weight="bold")
        y = 0.91
        for x, cell, n in zip(xs, header, chars, strict=True):
            fig.text(x, y, "\n".join(textwrap.wrap(str(cell), n)[:3]), fontsize=6.5, weight="bold", va="top")
        y -= 0.06
        fig.add_artist(plt.Line2D([0.03, 0.97], [y + 0.012, y + 0.012], color="black", linewidth=0.5))
        shade = False
        while i < len(wrapped):
            lines = max(len(c) for c in wrapped[i])
            height = lines * line_h + 0.004
            if y - height < 0.04:
                break
            if shade:
                fig.add_artist(plt.Rectangle((0.03, y - height + 0.002), 0.94, height, color="#f2f2f2", zorder=0))
            shade = not shade
            for x, cell in zip(xs, wrapped[i], strict=True):
                fig.text(x, y, "\n".join(cell), fontsize=6, va="top", linespacing=1.15)
            y -= height
            i += 1
        pages.append(fig)
    if len(pages) > 1:
        for n, fig in enumerate(pages, 1):
            fig.text(0.97, 0.95, f"({n}/{len(pages)})", fontsize=9, ha="right")
    return pages


def write_pdf(report: Report, path: Path, lang: str,
              on_section: Callable[[str], None] | None = None) -> list[tuple[str, bytes]]:
    """Every section of the registry (reports/sections) in order, page by page; returns the
    (title, PNG) pairs of the pages the HTML shows too (drawn once, here)."""
    from reports.sections import SECTIONS
    from reports.write_html import png_bytes

    figures_for_html: list[tuple[str, bytes]] = []
    with PdfPages(path) as pdf:
        meta = pdf.infodict()
        meta["Title"] = f"{title_text(report, lang)} — {report.site.name_vi}"
        meta["Subject"] = "villagewatch"
        for section in SECTIONS:
            if section.pdf is None:
                continue
            for fig, html_title in section.pdf(report, lang):
                pdf.savefig(fig)
                if html_title is not None:
                    figures_for_html.append((html_title, png_bytes(fig)))
                plt.close(fig)
            if on_section is not None:
                on_section(section.name)
    return figures_for_html
