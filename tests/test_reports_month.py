"""A month of simulated data for the pilot commune → `villagewatch report` → figures cross-checked.

Real InfluxDB (stack fixture). The raw readings come from the simulator (with its sensor faults:
dropouts, spikes, flatlines); the test writes them itself, keeps them in numpy arrays and
recomputes every checked figure from those raw points, without InfluxQL, then compares with the
CSV the report wrote. The PDF is rendered with pdftoppm; pages are saved as test artifacts.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from edge.sources.simulated.model import Faults, simulate
from reports.period import Month
from reports.rules import from_rule_packs
from rules.aqi import daily_aqi
from villagewatch.lineproto import telemetry_line
from villagewatch.sites import load_site
from villagewatch.textfmt import quantity

pytestmark = pytest.mark.integration

MONTH = "2025-10"  # flood season (alarm levels reached) and straw burning (PM2.5 episodes)
TZ_OFFSET_MS = 7 * 3_600_000  # Asia/Ho_Chi_Minh, no daylight saving


def _write(url: str, db: str, lines: list[str]) -> None:
    for i in range(0, len(lines), 20_000):
        body = "\n".join(lines[i:i + 20_000]).encode()
        req = urllib.request.Request(f"{url}/write?db={db}&precision=ms", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 204


def _raw_points(site, month: Month) -> tuple[dict, list[str]]:
    """Simulated readings as {station: {"ts": ms[], metric: values[]}} and their line protocol."""
    cols: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    lines = []
    for r in simulate(site, month.start_ms, month.end_ms, seed=8, faults=Faults()):
        st = site.stations[r.station]
        c = cols[r.station]
        c["ts"].append(r.ts_ms)
        for m in st.metrics:
            c[m].append(r.metrics.get(m, np.nan))
        lines.append(telemetry_line(r, st.kind))
    raw = {s: {k: np.asarray(v, dtype=np.int64 if k == "ts" else float) for k, v in c.items()} for s, c in cols.items()}
    return raw, lines


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _windows(ts: np.ndarray, values: np.ndarray, window_ms: int, energy: bool = False):
    """Independent window means keyed by local window start (ms, UTC): {start: (mean, count)}."""
    ok = ~np.isnan(values)
    ts, values = ts[ok], values[ok]
    keys = (ts + TZ_OFFSET_MS) // window_ms * window_ms - TZ_OFFSET_MS
    out = {}
    for k in np.unique(keys):
        v = values[keys == k]
        mean = 10 * np.log10(np.mean(10 ** (v / 10))) if energy else float(np.mean(v))
        out[int(k)] = (mean, v.size)
    return out


def test_month_report_matches_raw_points(stack, tmp_path, artifacts_dir, capsys):
    site = load_site("sites/tan-thuan-dong.yaml")
    month = Month.parse(MONTH, site.timezone)
    raw, lines = _raw_points(site, month)
    _write(stack.influx_url, stack.influx_db, lines)
    out = tmp_path / "out"

    rc = main(["report", "--commune", site.commune, "--month", MONTH, "--out", str(out),
               "--influx-url", stack.influx_url, "--influx-db", stack.influx_db])
    assert rc == 0  # speed is measured in bench/, not asserted here (a loaded machine is slow)
    assert "Báo cáo / report" in capsys.readouterr().err  # progress was shown

    stem = f"bao-cao-{site.commune}-{MONTH}"
    rows = _read_csv(out / f"{stem}.csv")
    daily = _read_csv(out / f"{stem}-daily.csv")
    episodes = _read_csv(out / f"{stem}-episodes.csv")
    days = len(month.days)

    # --- readings and completeness, every station and parameter
    checked = 0
    for row in rows:
        st = site.stations[row["Mã trạm"]]
        values = raw[st.id][_metric_of(row, st)]
        n = int(np.sum(~np.isnan(values)))
        expected = int(days * 86_400 / st.interval_s)
        assert int(row["Số giá trị"]) == n, row
        assert int(row["Số dự kiến"]) == expected
        assert float(row["Đầy đủ (%)"]) == pytest.approx(100 * raw[st.id]["ts"].size / expected, abs=1e-3) \
            if _metric_of(row, st) == st.metrics[0] else True
        checked += 1
    assert checked == len(rows) > 40
    # faults dropped some readings: completeness is below 100 % somewhere, and the report says so
    assert any(float(r["Đầy đủ (%)"]) < 100 for r in rows)

    catalog = from_rule_packs(month)
    limits = {(st.id, lim.rule_id): lim for st in site.stations.values() for lim in catalog.limits_for(st)}
    by_rule = {(r["Mã trạm"], r["Mã quy tắc"]): r for r in rows if r["Mã quy tắc"]}
    assert set(by_rule) == set(limits)

    for (station_id, rule_id), lim in limits.items():
        row = by_rule[(station_id, rule_id)]
        st = site.stations[station_id]
        ts, values = raw[station_id]["ts"], raw[station_id][lim.metric]
        if lim.window_s == 0:
            # per reading: share of readings within [lo, hi]
            v = values[~np.isnan(values)]
            bad = np.zeros(v.size, bool)
            # the rule pack's comparison as written: "at_or_above" counts a value at the limit
            if lim.lo is not None:
                bad |= (v <= lim.lo) if lim.op == "at_or_below" else (v < lim.lo)
            if lim.hi is not None:
                bad |= (v >= lim.hi) if lim.op == "at_or_above" else (v > lim.hi)
            assert float(row["Đạt (% thời gian)"]) == pytest.approx(100 * (1 - bad.mean()), abs=1e-3), rule_id
            assert float(row["Thời gian vượt (giờ)"]) == pytest.approx(bad.sum() * st.interval_s / 3600, abs=1e-3)
            assert int(row["Số lần đánh giá"]) == v.size
        else:
            # averaging windows: local-time windows, enough readings, inside the rule's hours
            wins = _windows(ts, values, lim.window_s * 1000, lim.energy_mean)
            need = lim.min_coverage * lim.window_s / st.interval_s
            judged = bad_n = 0
            for start, (mean, count) in wins.items():
                minute = ((start + TZ_OFFSET_MS) // 60_000) % 1440
                if count < need or not lim.applies_at(minute) or start + lim.window_s * 1000 > month.end_ms:
                    continue
                judged += 1
                bad_n += (lim.hi is not None and (mean >= lim.hi if lim.op == "at_or_above" else mean > lim.hi)) or (
                    lim.lo is not None and (mean <= lim.lo if lim.op == "at_or_below" else mean < lim.lo))
            assert int(row["Số lần đánh giá"]) == judged, rule_id
            assert float(row["Đạt (% thời gian)"]) == pytest.approx(100 * (judged - bad_n) / judged, abs=1e-3)
            assert float(row["Thời gian vượt (giờ)"]) == pytest.approx(bad_n * lim.window_s / 3600, abs=1e-3)
            if lim.window_s == 86_400:
                # daily limits: each exceeding day shows up in the episode list
                listed = sum(float(e["Thời lượng (giờ)"]) for e in episodes
                             if e["Mã trạm"] == station_id and e["Mã quy tắc"] == rule_id)
                assert listed == pytest.approx(bad_n * 24)

    # the month must exercise the interesting paths, or this test would prove little
    assert any(float(by_rule[k]["Đạt (% thời gian)"]) < 100 for k in by_rule if k[1].startswith("qcvn05-pm25"))
    assert any(float(by_rule[k]["Đạt (% thời gian)"]) < 100 for k in by_rule if k[1] == "pond-do-low")

    # --- daily VN_AQI for air stations from the raw 24-hour means
    aqi_seen = 0
    for station_id in ("khi-truong-thcs", "khi-dong-ruong-ap3"):
        st = site.stations[station_id]
        # the decision's 24-hour mean: mean of the day's 1-hour means, at least 18 of 24 hours
        hourly = {m: _windows(raw[station_id]["ts"], raw[station_id][m], 3_600_000) for m in ("pm25", "pm10")}
        for day_row in (d for d in daily if d["Mã trạm"] == station_id):
            start = month.day_start_ms(month.days[0]) + month.days.index(_date(day_row["Ngày"])) * 86_400_000
            means = {}
            for m, w in hourly.items():
                hours = [w[h][0] for h in range(start, start + 86_400_000, 3_600_000) if h in w]
                if len(hours) >= 18:
                    means[m] = float(np.mean(hours))
            expected = daily_aqi(pm_24h=means).aqi if means else None
            assert (int(day_row["VN_AQI"]) if day_row["VN_AQI"] else None) == expected, day_row
            aqi_seen += expected is not None
    assert aqi_seen >= 55

    # --- flood: days whose maximum reached each alarm level
    # the day's level is the highest one held for the alarm rule's duration (5 min): min of each
    # 5-minute bucket, then the day's max of those, so a single spike makes no alarm day
    level = raw["muc-nuoc-song-tien"]
    hold_ms = 300_000
    ok = ~np.isnan(level["level"])
    bucket = level["ts"][ok] // hold_ms * hold_ms
    lv = level["level"][ok]
    held = {int(b): lv[bucket == b].min() for b in np.unique(bucket)}
    maxima: dict[int, float] = {}
    for b, v in held.items():
        day = (b + TZ_OFFSET_MS) // 86_400_000 * 86_400_000 - TZ_OFFSET_MS
        maxima[day] = max(maxima.get(day, -np.inf), v)
    assert max(maxima.values()) < np.nanmax(lv)  # the simulated faults did spike this gauge
    for d in (d for d in daily if d["Mã trạm"] == "muc-nuoc-song-tien"):
        start = month.start_ms + month.days.index(_date(d["Ngày"])) * 86_400_000
        assert float(d["Mực nước cao nhất (m)"]) == pytest.approx(maxima[start], abs=1e-4)
    html = (out / f"{stem}.html").read_text(encoding="utf-8")
    # days at each alarm level: the alert engine's own definition, checked against the engine itself
    # in tests/test_reports_semantics.py; here only that the month reached level I
    level_rows = [r for r in rows if r["Mã trạm"] == "muc-nuoc-song-tien" and r["Mã quy tắc"].startswith("flood-level")]
    assert int(min(level_rows, key=lambda r: r["Mã quy tắc"])["Ngày không đạt"]) > 0

    # --- waste: hours above 95 % from the raw fill readings
    for station_id in ("rac-cho-tan-thuan", "rac-ap-1", "rac-ap-3"):
        fill = raw[station_id]["fill"]
        hours = np.sum(fill > 95) * site.stations[station_id].interval_s / 3600
        assert quantity(hours, "giờ", 1) in html

    _check_documents(out, stem, artifacts_dir)


def _metric_of(row: dict, st) -> str:
    from reports.texts import metric_label
    return next(m for m in st.metrics if metric_label(m, "vi") == row["Thông số"])


def _date(text: str):
    from datetime import date
    return date.fromisoformat(text)


def _check_documents(out: Path, stem: str, artifacts_dir: Path) -> None:
    html = (out / f"{stem}.html").read_text(encoding="utf-8")
    assert '<html lang="vi">' in html and "Báo cáo quan trắc môi trường tháng 10/2025" in html
    assert html.count("data:image/png;base64,") >= 13 + 3  # station series, AQI, flood, completeness
    pdf = out / f"{stem}.pdf"
    assert shutil.which("pdftoppm"), "poppler-utils (pdftoppm) is needed to render the PDF"
    text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Báo cáo quan trắc môi trường tháng 10/2025" in text  # diacritics survived the font
    assert "QCVN 05:2023/BTNMT" in text  # regulation versions on the first page
    pages_dir = artifacts_dir / "reports"
    shutil.rmtree(pages_dir, ignore_errors=True)
    pages_dir.mkdir(parents=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(pages_dir / "page")], check=True, timeout=120)
    pages = sorted(pages_dir.glob("page-*.png"))
    assert len(pages) >= 13 + 5
    assert all(p.stat().st_size > 5_000 for p in pages)
    shutil.copy(pdf, pages_dir / pdf.name)
