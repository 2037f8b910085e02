"""Page 1 / the top of the HTML: verdicts per domain, what to do and who, data completeness,
regulations in force (reports/summary.py writes the sentences)."""

from __future__ import annotations

from html import escape

from reports import summary
from reports.model import Report
from reports.sections.base import Page, Section
from reports.texts import t
from reports.write_pdf import STATUS_COLOURS, cover_page


def _pdf(report: Report, lang: str) -> list[Page]:
    return [(cover_page(report, lang), None)]


def _html(report: Report, lang: str, _figures: list[tuple[str, bytes]]) -> list[str]:
    parts = []
    if report.empty:
        month = f"{report.month.month:02d}/{report.month.year}"
        parts.append(f"<div class='empty'><b>{escape(t('empty_title', lang, month=month))}</b><br>"
                     f"{escape(t('empty_text', lang))}</div>")
    parts.append(f"<h2>{escape(t('verdicts', lang))}</h2><ul class='summary'>")
    lines = summary.headlines(report, lang)
    for h in lines[1:] if report.empty else lines:  # the empty banner above already says it
        parts.append(f'<li class="{h.status}"><span class="dot" style="color:{STATUS_COLOURS[h.status]}">●</span>'
                     f"{escape(h.text)}</li>")
    parts.append(f"</ul><h2>{escape(t('actions', lang))}</h2><ol>")
    for a in summary.actions(report, lang):
        who = "Người làm" if lang == "vi" else "Who"
        parts.append(f"<li>{escape(a.what)}<br><i>{who}: {escape(a.who)}</i></li>")
    parts.append("</ol><ul class='summary'>")
    for h in summary.data_lines(report, lang):
        parts.append(f'<li><span class="dot" style="color:{STATUS_COLOURS[h.status]}">●</span>{escape(h.text)}</li>')
    parts.append(f"</ul><h2>{escape(t('in_force', lang))}</h2><ul>")
    for line in summary.version_lines(report, lang):
        parts.append(f"<li>{escape(line)}</li>")
    parts.append("</ul>")
    note = summary.unverified_used(report, lang)
    if note:
        parts.append(f"<p class='note'>{escape(note)}</p>")
    return parts


SECTION = Section("summary", "verdicts", pdf=_pdf, html=_html)
