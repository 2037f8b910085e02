"""Technical appendix (last page): evidence rules, method, rule packs with their SHA-256 digests."""

from __future__ import annotations

from html import escape

from reports.limits import pick_lang
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_pdf import appendix_page


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(appendix_page(report, lang), None)]


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    st = report.settings
    parts = [f"<section id='appendix'><h2>{escape(t('appendix', lang))}</h2>"
             f"<p class='note'><b>{escape(t('evidence', lang))}:</b> "
             f"{escape(t('evidence_text', lang, hours=st['day_min_hours'], win=st['day_min_windows_pct'], month=st['month_min_days_pct']))}</p>"
             f"<p class='note'><b>{escape(t('method', lang))}:</b> "
             f"{escape(t('method_text', lang, tz=report.month.timezone))}</p><ul class='note'>"]
    for v in report.versions:
        title = v.title_vi if lang == "vi" else v.title_en
        parts.append(f"<li>{escape(pick_lang(v.regulation, lang))} — {escape(title)}: "
                     f"{escape(t('pack_id', lang).lower())} {escape(v.pack)}, SHA-256 {escape(v.digest)}; "
                     f"{escape(pick_lang(v.source, lang))}</li>")
    parts.append("</ul></section>")
    return parts


SECTION = Section("appendix", "appendix", pdf=_pdf, html=_html)
