"""Words of the Vietnamese report (issue 13): Vietnamese names for every id, decimal commas, units on
every value and limit of page 1; an empty month says so on page 1 and exits with its own status.

Real InfluxDB; a few days of simulated history (``simulate backfill``, through the edge processing)
for five stations at 5 minutes, then `villagewatch report`. The scan reads what a person reads: the
HTML without markup and embedded images, the PDF text (pdftotext), the CSV headers. The technical
appendix (last page / #appendix: rule-pack ids and hashes for an inspector) is left out of the id scan.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.cli import main
from reports.cli import EXIT_EMPTY_MONTH
from reports.texts import VARIANT_LABELS
from villagewatch.contract import METRICS

pytestmark = pytest.mark.integration
STATIONS = ("nmn-tan-thuan", "ao-ca-tra-a1", "khi-truong-thcs", "rac-ap-1", "muc-nuoc-song-tien")
UNITS = ("%", "mg/L", "m", "µg/m³", "dBA", "°C", "NTU", "µS/cm", "‰", "giờ", "ngày", "V", "dBm", "mm", "m/s")
# a decimal point between digits — but not the Vietnamese thousands dot ("26.716")
DECIMAL_POINT = re.compile(r"\d\.(?!\d{3}(?!\d))\d")
DECIMAL_COMMA = re.compile(r"(?<![\d.])(\d+,\d+)(?!\d)\s*([^\s,;.)]*)")


def _site(tmp_path: Path) -> Path:
    raw = yaml.safe_load(Path("sites/tan-thuan-dong.yaml").read_text(encoding="utf-8"))
    raw["stations"] = [dict(s, interval_s=300, source={"type": "simulated"})
                       for s in raw["stations"] if s["id"] in STATIONS]
    folder = tmp_path / "sites"
    folder.mkdir()
    (folder / "tan-thuan-dong.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return folder


def _pdf_pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")


def _html_text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    html = re.sub(r'src="data:[^"]*"', " ", html)
    return re.sub(r"<[^>]+>", " ", html)


def _ids(site_ids: list[str]) -> re.Pattern:
    words = set(site_ids) | {"tan-thuan-dong"} | {v for v in VARIANT_LABELS if "-" in v or v in ("special", "common")}
    words |= {m for m in METRICS if m not in ("ph", "do", "ec", "cod", "tss")}  # ids that are not also words
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")(?![\w-])")


def _unitless(text: str) -> list[str]:
    """Decimal numbers of page 1 not followed by a unit (pH is dimensionless: its lines are skipped)."""
    bad = []
    for line in text.splitlines():
        if "pH" in line:
            continue
        for m in DECIMAL_COMMA.finditer(line):
            if not m.group(2).startswith(UNITS):
                bad.append(f"{m.group(0)!r} in {line.strip()!r}")
    return bad


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils needed")
def test_vietnamese_report_words_and_the_empty_month(stack, tmp_path, artifacts_dir, capsys):
    sites = _site(tmp_path)
    base = ["--influx-url", stack.influx_url, "--influx-db", stack.influx_db]
    assert main(["simulate", "backfill", "--site", str(sites / "tan-thuan-dong.yaml"), "--from", "2025-10-14",
                 "--to", "2025-10-16", "--seed", "5", "--quiet", *base]) == 0
    out = tmp_path / "out"
    assert main(["report", "--commune", "tan-thuan-dong", "--month", "2025-10", "--out", str(out),
                 "--sites", str(sites), "--quiet", *base]) == 0
    stem = out / "bao-cao-tan-thuan-dong-2025-10"
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    pages = _pdf_pages(stem.with_suffix(".pdf"))
    ids = _ids(list(STATIONS))

    body = _html_text(html.split("id='appendix'")[0])
    reader_text = body + "\n".join(pages[:-2])  # the last page is the technical appendix
    assert not ids.findall(reader_text), sorted(set(ids.findall(reader_text)))
    everything = _html_text(html) + "\n".join(pages)
    assert not DECIMAL_POINT.findall(everything), [everything[max(0, m.start() - 30):m.end() + 30]
                                                  for m in DECIMAL_POINT.finditer(everything)][:5]
    page1 = pages[0]
    assert not _unitless(page1), _unitless(page1)
    # three days of data in a 31-day month: not enough to say "met" — stated first, in grey words
    assert "không đủ số liệu" in page1
    assert page1.index("không đủ số liệu") < page1.index("Ba việc cần làm")
    assert "đạt —" not in page1.replace("không đạt —", "")  # no domain is declared met on 3 of 31 days
    assert "QCVN 01-1:2024/BYT" in page1 and "QCVN 01-1:2018/BYT" not in page1  # the version in force
    assert "chưa đối chiếu" in page1  # its limits are unverified, and page 1 says so
    assert "số đo bị loại do lỗi cảm biến" in page1
    with open(stem.with_suffix(".csv"), encoding="utf-8-sig", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert not any(h.isascii() and "_" in h for h in header), header  # Vietnamese headers, no ids
    columns = {row[header.index("Cột / giới hạn")] for row in rows}
    assert any("khu vực đặc biệt" in c for c in columns), columns  # noise area by its name, not "special"
    assert any("trạm Cao Lãnh" in c for c in columns) and not any("cao-lanh" in c for c in columns)

    # ---- the empty month: a report that says so on page 1, and its own exit status
    capsys.readouterr()
    empty = tmp_path / "empty"
    rc = main(["report", "--commune", "tan-thuan-dong", "--month", "2025-09", "--out", str(empty),
               "--sites", str(sites), "--quiet", *base])
    assert rc == EXIT_EMPTY_MONTH == 3
    assert "KHÔNG CÓ SỐ LIỆU" in capsys.readouterr().err
    page1 = _pdf_pages(empty / "bao-cao-tan-thuan-dong-2025-09.pdf")[0]
    assert "KHÔNG CÓ SỐ LIỆU NÀO TRONG THÁNG 09/2025" in page1
    assert not re.search(r"(?<!không )đạt —", page1) and "không đạt —" not in page1
    html = (empty / "bao-cao-tan-thuan-dong-2025-09.html").read_text(encoding="utf-8")
    assert "KHÔNG CÓ SỐ LIỆU NÀO" in html and "đạt giới hạn" not in html

    shots = artifacts_dir / "reports-words"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    for pdf, name in ((stem.with_suffix(".pdf"), "three-days"), (empty / "bao-cao-tan-thuan-dong-2025-09.pdf", "empty")):
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(shots / name)],
                       check=True, timeout=120)
