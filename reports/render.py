"""Write the three versions of a report: PDF (print), HTML (screen, self-contained), CSV (spreadsheets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reports import write_html
from reports.model import Report
from reports.sections import SECTIONS
from reports.write_csv import write_csv
from reports.write_pdf import write_pdf
from villagewatch.progress import Progress


@dataclass
class Outputs:
    pdf: Path
    html: Path
    csv: list[Path]


def file_stem(report: Report) -> str:
    return f"bao-cao-{report.site.commune}-{report.month.label}"


def write_report(report: Report, out_dir: str | Path, lang: str = "vi", progress: Progress | None = None) -> Outputs:
    """PDF, then HTML (with the PDF's figures), then CSV: each writer iterates the sections of
    reports/sections in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(report)
    progress = progress or Progress(1, "", enabled=False)
    progress.total = progress.done + sum(1 for s in SECTIONS if s.pdf is not None) + 2
    pdf_path = out_dir / f"{stem}.pdf"
    figures_for_html = write_pdf(report, pdf_path, lang, on_section=lambda name: progress.advance(note=name))
    html_path = write_html.write_html(report, out_dir / f"{stem}.html", lang, figures_for_html)
    progress.advance(note="HTML")
    csv_paths = write_csv(report, out_dir, stem, lang)
    progress.advance(note="CSV")
    return Outputs(pdf_path, html_path, csv_paths)
