"""Report sections registry (reports/sections): a section is one module + one registry line, and the
PDF, HTML and CSV writers all follow the registry. Real InfluxDB (stack fixture), real PDF read back
with poppler's pdftotext; the month asked has no data, so the report is the "empty" one (fast)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from app.cli import main
from reports import sections
from reports.model import Report
from reports.sections import SECTIONS, Section

MARK = "Mục thử nghiệm ĐẶC BIỆT"


def _pdf(report: Report, lang: str):
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.1, 0.9, f"{MARK} {report.site.commune}")
    yield fig, MARK


def _html(report: Report, lang: str, figures: list[tuple[str, bytes]]) -> list[str]:
    return [f"<h2>{MARK}</h2><p>{len(figures)} figures so far</p>"]


def _csv(report: Report, lang: str):
    return [("-thu", (["Mã trạm", "Ghi chú"], [[s, MARK] for s in report.site.stations]))]


DUMMY = Section("thu", None, pdf=_pdf, html=_html, csv=_csv)


def _report(stack, out: Path) -> tuple[str, str, list[Path]]:
    rc = main(["report", "--commune", "tan-thuan-dong", "--month", "2020-01", "--out", str(out), "--quiet",
               "--influx-url", stack.influx_url, "--influx-db", stack.influx_db])
    assert rc == 3  # the "no data" exit status: the report is still written, and says so
    stem = out / "bao-cao-tan-thuan-dong-2020-01"
    text = subprocess.run(["pdftotext", "-layout", f"{stem}.pdf", "-"], capture_output=True, text=True,
                          check=True).stdout
    return text, Path(f"{stem}.html").read_text(encoding="utf-8"), sorted(out.glob("*.csv"))


def test_a_registered_section_reaches_pdf_html_and_csv(stack, tmp_path, monkeypatch):
    assert shutil.which("pdftotext"), "poppler-utils (pdftotext) is needed to read the PDF back"
    at = [s.name for s in SECTIONS].index("appendix")
    monkeypatch.setattr(sections, "SECTIONS", [*SECTIONS[:at], DUMMY, *SECTIONS[at:]])  # its registry line
    pdf_text, html, csv_files = _report(stack, tmp_path / "after")
    assert f"{MARK} tan-thuan-dong" in pdf_text
    assert pdf_text.index(MARK) < pdf_text.rindex("SHA-256")  # before the appendix, after the rest
    assert f"<h2>{MARK}</h2>" in html
    # its PDF page has an HTML title, so the figures section (earlier in the registry) shows it
    assert html.count(f'alt="{MARK}"') == 1
    added = [p for p in csv_files if p.name.endswith("-thu.csv")]
    assert len(added) == 1 and len(csv_files) == 4  # main, episodes, daily + the new section's
    with open(added[0], encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["Mã trạm", "Ghi chú"] and len(rows) > 1 and all(r[1] == MARK for r in rows[1:])


def test_registry_names_are_unique_and_titles_exist_in_both_languages():
    from reports.texts import t
    names = [s.name for s in SECTIONS]
    assert len(names) == len(set(names))
    for s in SECTIONS:
        assert s.pdf or s.html or s.csv, s.name
        if s.title:
            assert t(s.title, "vi") != t(s.title, "en"), s.name


@pytest.mark.parametrize("name", ["results", "episodes", "daily"])
def test_csv_files_come_from_the_sections(name):
    assert any(s.name == name and s.csv for s in SECTIONS)
