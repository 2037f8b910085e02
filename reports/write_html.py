"""One self-contained HTML file (figures embedded as PNG): opens offline, can be e-mailed."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from reports import summary, tables
from reports.limits import pick_lang
from reports.model import Report
from reports.texts import t
from reports.write_pdf import STATUS_COLOURS, title_text

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0} h2{border-bottom:2px solid #08519c;padding-bottom:.2em;margin-top:2em}
.sub{color:#555;margin-top:.2em} ul.summary{list-style:none;padding-left:0;font-size:1.1em}
ul.summary li{margin:.4em 0} .dot{font-size:1.2em;margin-right:.4em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0;width:100%}
th,td{border:1px solid #ccc;padding:.25em .4em;text-align:left;vertical-align:top}
th{background:#eef3f8} tr:nth-child(even) td{background:#fafafa} td.n{text-align:right}
img{max-width:100%;border:1px solid #eee;margin:.5em 0} .note{color:#555;font-size:.85em}
.empty{background:#e6e6e6;padding:1em;font-size:1.2em;margin:1em 0} li.nodata{color:#555}
"""


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _table(table: tables.Table) -> str:
    header, rows = table
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{escape(str(c))}</td>' if isinstance(c, int | float) or _numeric(c)
            else f"<td>{escape(str(c))}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(cell: object) -> bool:
    text = str(cell).replace(",", "").replace(".", "").replace(" %", "").replace("-", "")
    return text.isdigit()


def write_html(report: Report, path: Path, lang: str, figures: list[tuple[str, bytes]]) -> Path:
    site = report.site
    name = site.name_vi if lang == "vi" or not site.name_en else site.name_en
    parts = [f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title_text(report, lang))} — {escape(name)}</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(title_text(report, lang))}</h1>",
             f'<p class="sub">{escape(name)}{" — " + escape(site.province) if site.province else ""}</p>',
             ]
    if report.empty:
        month = f"{report.month.month:02d}/{report.month.year}"
        parts.append(f"<div class='empty'><b>{escape(t('empty_title', lang, month=month))}</b><br>"
                     f"{escape(t('empty_text', lang))}</div>")
    parts.append(f"<h2>{escape(t('verdicts', lang))}</h2><ul class='summary'>")
    lines = summary.headlines(report, lang)
    for h in lines[1:] if report.empty else lines:
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
    parts.append(f"<h2>{escape(t('per_station', lang))}</h2>{_table(tables.results_table(report, lang))}")
    if report.flood:
        parts.append(f"<h2>{escape(t('flood', lang))}</h2>{_table(tables.flood_table(report, lang))}")
    if report.waste:
        parts.append(f"<h2>{escape(t('waste', lang))}</h2>{_table(tables.waste_table(report, lang))}")
    for title, png in figures:
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{escape(title)}</h2><img alt=\"{escape(title)}\" src=\"data:image/png;base64,{data}\">")
    parts.append(f"<h2>{escape(t('episode_list', lang))}</h2>{_table(tables.episodes_table(report, lang))}")
    st = report.settings
    parts.append(f"<section id='appendix'><h2>{escape(t('appendix', lang))}</h2>"
                 f"<p class='note'><b>{escape(t('evidence', lang))}:</b> "
                 f"{escape(t('evidence_text', lang, hours=st['day_min_hours'], win=st['day_min_windows_pct'], month=st['month_min_days_pct']))}</p>"
                 f"<p class='note'><b>{escape(t('method', lang))}:</b> "
                 f"{escape(t('method_text', lang, tz=report.month.timezone))}</p><ul class='note'>")
    for v in report.versions:
        title = v.title_vi if lang == "vi" else v.title_en
        parts.append(f"<li>{escape(pick_lang(v.regulation, lang))} — {escape(title)}: "
                     f"{escape(t('pack_id', lang).lower())} {escape(v.pack)}, SHA-256 {escape(v.digest)}; "
                     f"{escape(pick_lang(v.source, lang))}</li>")
    parts.append("</ul></section>")
    generated = report.generated_at.astimezone(report.month.tz).strftime("%d/%m/%Y %H:%M")
    parts.append(f"<p class='note'>{escape(t('generated', lang, at=generated))}</p></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
