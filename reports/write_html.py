"""One self-contained HTML file (figures embedded as PNG): opens offline, can be e-mailed."""

from __future__ import annotations

import io
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from reports import tables
from reports.model import Report
from reports.texts import t
from reports.write_pdf import title_text

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


def html_table(table: tables.Table) -> str:
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
    """Header, then every section of the registry (reports/sections) in order, then the footer;
    ``figures`` are the (title, PNG) pairs of the PDF pass."""
    from reports.sections import SECTIONS  # the sections build with this module's helpers

    site = report.site
    name = site.name_vi if lang == "vi" or not site.name_en else site.name_en
    parts = [f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title_text(report, lang))} — {escape(name)}</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(title_text(report, lang))}</h1>",
             f'<p class="sub">{escape(name)}{" — " + escape(site.province) if site.province else ""}</p>',
             ]
    for section in SECTIONS:
        if section.html is not None:
            parts += section.html(report, lang, figures)
    generated = report.generated_at.astimezone(report.month.tz).strftime("%d/%m/%Y %H:%M")
    parts.append(f"<p class='note'>{escape(t('generated', lang, at=generated))}</p></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
