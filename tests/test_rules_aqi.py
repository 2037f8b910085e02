"""VN_AQI (Decision 1459/QĐ-TCMT): worked examples computed by hand from the decision's formula."""

from __future__ import annotations

import numpy as np
import pytest

from rules import aqi


def test_sub_index_interpolates_inside_band():
    # PM2.5 62.5 µg/m³ lies in 50..80 (I 100..150): 100 + 50/30 · 12.5 = 120.83
    assert aqi.sub_index("pm25", 62.5) == pytest.approx(120.8333, abs=1e-3)
    # PM10 120 in 50..150 (I 50..100): 50 + 50/100 · 70 = 85
    assert aqi.sub_index("pm10", 120) == pytest.approx(85.0)
    # breakpoints are continuous: 25 µg/m³ PM2.5 is exactly 50
    assert aqi.sub_index("pm25", 25) == pytest.approx(50.0)
    # the two PM2.5 bands above 250 stay apart: 300 → 300 + 100/100 · 50 = 350
    assert aqi.sub_index("pm25", 300) == pytest.approx(350.0)
    assert aqi.sub_index("pm25", 800) == 500.0
    assert aqi.sub_index("pm25", None) is None
    # O3 8 h above 400 has no index (the 1-hour one is used instead)
    assert aqi.sub_index("o3_8h", 450) is None


def test_nowcast_worked_examples():
    # w* = 20/40 = 0.5 → w = 0.5: (40 + 0.5·30 + 0.25·20) / (1 + 0.5 + 0.25) = 60 / 1.75
    assert aqi.nowcast([40, 30, 20]) == pytest.approx(34.285714, abs=1e-5)
    # w* = 60/80 = 0.75: (80 + 52.5 + 33.75) / (1 + 0.75 + 0.5625) = 166.25 / 2.3125
    assert aqi.nowcast([80, 70, 60]) == pytest.approx(71.891892, abs=1e-5)
    # a missing hour is left out of both sums: (40 + 0.25·20) / (1 + 0.25) = 36
    assert aqi.nowcast([40, None, 20]) == pytest.approx(36.0)
    # fewer than 2 of the latest 3 hours → no NowCast
    assert aqi.nowcast([40, None, None, 20, 20]) is None
    # all 12 hours constant → w = 1 → plain mean
    assert aqi.nowcast([33.0] * 12) == pytest.approx(33.0)


def test_hourly_aqi_uses_nowcast_and_rounds():
    r = aqi.hourly_aqi(pm_hourly={"pm25": [40, 30, 20]})
    # NowCast 34.2857 → 50 + 50/25 · 9.2857 = 68.57 → 69
    assert r.aqi == 69 and r.dominant == "pm25"
    r = aqi.hourly_aqi(gases_1h={"no2": 150}, pm_hourly={"pm25": [80, 70, 60]})
    # PM2.5 NowCast 71.89 → 100 + 50/30 · 21.89 = 136.49 → 136; NO2 150 → 75
    assert r.sub_indices == {"no2": 75, "pm25": 136} and r.aqi == 136
    assert r.band.label_vi == "Kém" and r.band.rgb == (255, 126, 0)
    # without PM there is no AQI
    assert aqi.hourly_aqi(gases_1h={"no2": 150}).aqi is None


def test_daily_aqi():
    r = aqi.daily_aqi(pm_24h={"pm25": 62.5, "pm10": 120}, gases_1h_max={"o3_1h": 180}, o3_8h_max=130)
    # O3: 1 h 180 → 75; 8 h 130 → 100 + 50/50 · 10 = 110; the larger counts
    assert r.sub_indices == {"pm25": 121, "pm10": 85, "o3": 110}
    assert r.aqi == 121 and r.band.label_en == "Poor"
    # 8-hour O3 above 400 → only the 1-hour value
    r = aqi.daily_aqi(pm_24h={"pm25": 10}, gases_1h_max={"o3_1h": 900}, o3_8h_max=450)
    # O3 1 h 900 in 800..1000 (I 300..400): 300 + 100/200 · 100 = 350
    assert r.sub_indices["o3"] == 350 and r.aqi == 350


def test_hourly_means_clock_hours():
    ts = np.arange(0, 3 * 3_600_000, 600_000)  # every 10 min over 3 h
    values = np.repeat([10.0, 20.0, 30.0], 6)
    assert aqi.hourly_means(ts, values, 3 * 3_600_000, hours=4) == [30.0, 20.0, 10.0, None]


def test_bands():
    assert [aqi.band(x).label_en for x in (0, 50, 51, 100, 150.4, 151, 300, 301, 500)] == [
        "Good", "Good", "Moderate", "Moderate", "Poor", "Bad", "Very bad", "Hazardous", "Hazardous"]
    assert aqi.band(42).hex == "#00e400"


def test_day_mean_is_the_mean_of_hourly_means():
    """Decision 1459 §2.2.2 a: the 24-hour mean averages the day's 1-hour means, so an hour with
    more readings does not weigh more."""
    day_end = 24 * 3_600_000
    # 22 hours at 20 µg/m³ with one reading each; hour 22 holds six readings of 80; hour 23 is empty
    ts = np.array([h * 3_600_000 for h in range(22)] + [22 * 3_600_000 + k * 600_000 for k in range(6)])
    values = np.array([20.0] * 22 + [80.0] * 6)
    # by hand: (22 · 20 + 80) / 23 = 520 / 23 = 22.6087 (the plain mean of readings would be 31.4)
    assert aqi.day_mean(ts, values, day_end) == pytest.approx(22.6087, abs=1e-4)
    assert aqi.day_mean(ts, values, day_end, min_hours=24) is None  # only 23 hours hold data
    # the decision's daily example: PM2.5 24-hour mean 55.7 → (150 − 100)/(80 − 50) · 5.7 + 100 = 109.5 → 110
    assert aqi.daily_aqi(pm_24h={"pm25": 55.7}).aqi == 110
