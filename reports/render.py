"""Write the three versions of a report: PDF (print), HTML (screen, self-contained), CSV (spreadsheets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from reports import plots, tables, write_html  # noqa: E402
from reports.model import Report  # noqa: E402
from reports.texts import t  # noqa: E402
from reports.write_csv import write_csv  # noqa: E402
from reports.write_pdf import appendix_page, cover_page, table_pages, title_text  # noqa: E402
from villagewatch.progress import Progress  # noqa: E402


@dataclass
class Outputs:
    pdf: Path
    html: Path
    csv: list[Path]


def file_stem(report: Report) -> str:
    return f"bao-cao-{report.site.commune}-{report.month.label}"


def write_report(report: Report, out_dir: str | Path, lang: str = "vi", progress: Progress | None = None) -> Outputs:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(report)
    stations = list(report.site.stations)
    progress = progress or Progress(1, "", enabled=False)
    progress.total = progress.done + 6 + len(stations)
    pdf_path = out_dir / f"{stem}.pdf"
    figures_for_html: list[tuple[str, bytes]] = []
    with PdfPages(pdf_path) as pdf:
        meta = pdf.infodict()
        meta["Title"] = f"{title_text(report, lang)} — {report.site.name_vi}"
        meta["Subject"] = "villagewatch"

        def page(fig, html_title: str | None = None) -> None:
            pdf.savefig(fig)
            if html_title is not None:
                figures_for_html.append((html_title, write_html.png_bytes(fig)))
            plt.close(fig)

        page(cover_page(report, lang))
        for fig in table_pages(t("per_station", lang), tables.results_table(report, lang),
                               [17, 12, 10, 16, 6, 6, 9, 9, 8], rows_per_page=42):
            page(fig)
        progress.advance(note="tables")
        if report.aqi:
            page(plots.aqi_calendar_figure(report, lang), t("aqi_calendar", lang))
        flood = plots.flood_figure(report, lang)
        if flood is not None:
            page(flood, t("flood", lang))
        if report.waste or report.flood:
            extra = []
            if report.flood:
                n = len(tables.flood_table(report, lang)[0])
                extra += table_pages(t("flood", lang), tables.flood_table(report, lang), [16, 8, 8] + [8] * (n - 3),
                                     rows_per_page=10, landscape=False)
            if report.waste:
                extra += table_pages(t("waste", lang), tables.waste_table(report, lang), [16, 6, 6, 6, 6, 6],
                                     rows_per_page=10, landscape=False)
            for fig in extra:
                page(fig)
        progress.advance(note="AQI, flood, waste")
        page(plots.completeness_figure(report, lang), t("completeness_map", lang))
        progress.advance(note="completeness")
        for fig in table_pages(t("episode_list", lang), tables.episodes_table(report, lang, per_row=5),
                               [16, 11, 12, 8, 8, 6, 6], rows_per_page=48):
            page(fig)
        progress.advance(note="episodes")
        for station_id in stations:
            st = report.site.stations[station_id]
            page(plots.timeseries_figure(report, station_id, lang), st.name(lang))
            progress.advance(note=station_id)
        page(appendix_page(report, lang))
    html_path = write_html.write_html(report, out_dir / f"{stem}.html", lang, figures_for_html)
    progress.advance(note="HTML")
    csv_paths = write_csv(report, out_dir, stem, lang)
    progress.advance(note="CSV")
    return Outputs(pdf_path, html_path, csv_paths)
