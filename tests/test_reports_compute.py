"""Unit tests of the report's pure parts: month boundaries, episodes, windows, rule mapping, progress."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pytest

from reports import compute
from reports.limits import Limit, pick_lang
from reports.period import Month, PeriodError
from reports.rules import from_rule_packs, limit_from_rule
from rules.rulepack import load_rule_packs
from villagewatch.progress import Progress
from villagewatch.sites import load_site

MIN = 60_000


def test_month_is_local_days_in_utc_ms():
    m = Month.parse("2025-10", "Asia/Ho_Chi_Minh")
    assert len(m.days) == 31 and m.days[0] == date(2025, 10, 1)
    assert m.start_ms == 1759251600000  # 2025-09-30T17:00:00Z = 1 Oct 00:00 +07
    assert m.end_ms - m.start_ms == 31 * 86_400_000
    assert m.day_index(m.start_ms) == 0 and m.day_index(m.start_ms - 1) == -1
    assert len(Month.parse("2024-02", "Asia/Ho_Chi_Minh").days) == 29
    for bad in ("2025-13", "2025-1", "10/2025", ""):
        with pytest.raises(PeriodError):
            Month.parse(bad, "Asia/Ho_Chi_Minh")


def test_episodes_split_on_good_readings_and_keep_peak():
    ts = np.array([0, 1, 2, 10, 11, 30]) * MIN  # minute readings; 3..9 and 12..29 were within
    values = np.array([2.9, 2.5, 2.8, 1.0, 2.0, 2.95])
    eps = compute.episodes_from_points(ts, values, 60, lo=3.0, hi=None)
    assert [(e.start_ms // MIN, e.end_ms // MIN, e.peak) for e in eps] == [(0, 3, 2.5), (10, 12, 1.0), (30, 31, 2.95)]
    assert eps[0].duration_s == 180
    merged = compute.episodes_from_points(ts, values, 60, lo=3.0, hi=None, max_gap_s=10 * 60)
    assert [(e.start_ms // MIN, e.end_ms // MIN, e.peak) for e in merged] == [(0, 12, 1.0), (30, 31, 2.95)]
    assert compute.episodes_from_points(np.array([]), np.array([]), 60, 3.0, None) == []


def test_window_stats_ignore_windows_without_enough_data():
    means = np.array([40.0, 60.0, 70.0, np.nan, 55.0])
    counts = np.array([1440, 1440, 600, 0, 1100])  # 600 < 75 % of 1440
    stats = compute.window_stats(means, counts, 1440, 0.75, None, 50)
    assert stats.valid.tolist() == [True, True, False, False, True]
    assert stats.bad.tolist() == [False, True, False, False, True]
    assert stats.within_pct == pytest.approx(100 / 3)
    starts = np.arange(5) * 86_400_000
    eps = compute.episodes_from_windows(starts, means, stats.bad, 86_400, None, 50)
    assert [(e.start_ms, e.end_ms, e.peak) for e in eps] == [(86_400_000, 2 * 86_400_000, 60.0),
                                                          (4 * 86_400_000, 5 * 86_400_000, 55.0)]


def test_band_peak_is_the_side_that_was_crossed():
    assert compute.worst(np.array([0.15, 0.1, 0.18]), 0.2, 1.0) == 0.1
    assert compute.worst(np.array([1.2, 1.5]), 0.2, 1.0) == 1.5
    assert compute.completeness_pct(1500, 1440) == 100.0 and compute.completeness_pct(1, 0) is None


def test_limits_come_from_the_rule_packs():
    site = load_site("sites/tan-thuan-dong.yaml")
    rules = load_rule_packs()
    by_id = {}
    for st in site.stations.values():
        for rule in rules.rules_for(st):
            lim = limit_from_rule(rule)
            if lim:
                by_id[(st.id, lim.rule_id)] = lim
    chlorine = by_id[("nmn-tan-thuan", "qcvn01-chlorine")]
    assert (chlorine.lo, chlorine.hi, chlorine.window_s) == (0.2, 1.0, 0)
    do_pond = by_id[("ao-ca-tra-a3", "pond-do-low")]
    assert (do_pond.lo, do_pond.hi) == (3.0, None)
    noise_night = by_id[("khi-truong-thcs", "qcvn26-night")]
    assert noise_night.energy_mean and noise_night.window_s == 3600 and noise_night.hi == 45
    assert noise_night.applies_at(23 * 60) and noise_night.applies_at(5 * 60) and not noise_night.applies_at(12 * 60)
    assert by_id[("song-tien-ben-do", "qcvn08-t2-do")].unverified
    # rules without a compliance limit (rate, stale, AQI alarms) are not report rows
    assert not any(k[1].startswith(("pond-do-falling", "vn-aqi", "health-silent")) for k in by_id)


def test_pm25_limit_follows_its_validity_dates():
    site = load_site("sites/tan-thuan-dong.yaml")
    air = site.stations["khi-truong-thcs"]

    def pm25(month: str) -> list[float]:
        cat = from_rule_packs(Month.parse(month, site.timezone))
        return [lim.hi for lim in cat.limits_for(air) if lim.metric == "pm25"]

    assert pm25("2025-12") == [50.0]
    assert pm25("2026-01") == [45.0]


def test_limit_texts():
    lim = Limit("x", "ph", 6.0, 8.5, 0, "QCVN", averaging="mẫu đơn / single sample", hours=(21 * 60, 6 * 60))
    assert lim.describe("vi") == "6–8,5" and lim.describe("en") == "6–8.5" and lim.hours_text() == "21:00–06:00"
    # the comparison as the rule pack writes it: an alarm level is reached *at* the level
    level = Limit("f", "level", None, 1.9, 0, "QĐ", op="at_or_above", unit="m")
    assert level.describe("vi") == "< 1,9 m" and level.violated(1.9) and not level.violated(1.89)
    above = Limit("f", "level", None, 1.9, 0, "QĐ", op="above", unit="m")
    assert above.describe("vi") == "≤ 1,9 m" and not above.violated(1.9) and above.violated(1.91)
    do = Limit("d", "do", 3.0, None, 0, "op", op="below", unit="mg/L")
    assert do.describe("vi") == "≥ 3 mg/L" and do.violated(2.99) and not do.violated(3.0)
    assert lim.averaging_text("vi") == "mẫu đơn" and lim.averaging_text("en") == "single sample"
    assert pick_lang("no slash", "en") == "no slash"


def test_progress_writes_bounded_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(200, "Đang thử / testing", stream=out) as p:
        for _ in range(200):
            p.advance()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("Đang thử / testing: 100 %")
    assert len(lines) <= 13  # one per 10 % (+ start and finish), not one per step
