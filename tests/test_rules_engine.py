"""The pure engine, driven with simulated timestamps (no waiting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.sources.simulated.model import simulate
from rules import aqi
from rules.engine import DAILY_GRACE_MS, Engine
from rules.messages import fmt_number
from rules.rulepack import load_rule_packs
from villagewatch.contract import Reading
from villagewatch.sites import load_site

SITE = load_site(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
T0 = 1_714_521_600_000  # 2024-05-01 00:00 UTC = 07:00 in Hồ Chí Minh city
C = SITE.commune


@pytest.fixture(scope="module")
def ruleset():
    return load_rule_packs()


def engine(ruleset, **kw) -> Engine:
    return Engine(ruleset, {C: SITE}, start_ms=T0, **kw)


def pond(ts_ms: int, do: float, seq: int = 0) -> Reading:
    return Reading(C, "ao-ca-tra-a3", ts_ms, seq, {"do": do, "ph": 7.4, "temp": 29.0, "nh4": 0.4,
                                                   "battery": 3.9, "rssi": -70}, "gw-ao-nuoi")


def test_vietnamese_number_format():
    assert fmt_number(1234.5, 1) == "1.234,5" and fmt_number(1234.5, 1, "en") == "1,234.5"
    assert fmt_number(1.8) == "1,8" and fmt_number(3.0) == "3" and fmt_number(-0.001) == "0"
    assert fmt_number(144.5, 0) == "145" and fmt_number(7.5, 0) == "8"  # half-up, as a reader rounds


def test_pond_do_fires_once_after_duration_no_flapping_then_resolves(ruleset):
    e = engine(ruleset)
    assert e.feed(pond(T0, 5.0)) == []
    # 1.5 mg/L from T0+60 s; pond-do-low needs 120 s
    out = [t for i in range(1, 4) for t in e.feed(pond(T0 + i * 60_000, 1.5, i))]
    firing = [t for t in out if t.rule.id == "pond-do-low"]
    assert [t.state for t in firing] == ["firing"] and firing[0].ts_ms == T0 + 180_000
    assert firing[0].message_vi.startswith(
        "Ao nuôi A3 (cá tra): oxy hòa tan (DO) 1,5 mg/L, thấp hơn mức tối thiểu 3 mg/L (Ngưỡng vận hành")
    assert firing[0].message_en.startswith(
        "Pond A3 (pangasius): dissolved oxygen (DO) 1.5 mg/L, below the minimum 3 mg/L")
    # oscillating around the limit (hysteresis 0.3): no resolve, no second firing
    out = [t for i, v in enumerate([3.1, 2.9, 3.2, 2.8, 3.25, 2.95] * 5)
           for t in e.feed(pond(T0 + (10 + i) * 60_000, v, 10 + i)) if t.rule.id == "pond-do-low"]
    assert out == []
    # recovery above limit + hysteresis → resolved, once
    out = [t for i in range(3) for t in e.feed(pond(T0 + (40 + i) * 60_000, 4.5, 40 + i))
           if t.rule.id == "pond-do-low"]
    assert [t.state for t in out] == ["resolved"]


def test_tick_promotes_pending_between_readings(ruleset):
    e = engine(ruleset)
    e.feed(pond(T0, 1.5))
    assert [t for t in e.tick(T0 + 119_000) if t.rule.id == "pond-do-low"] == []
    assert [t.state for t in e.tick(T0 + 120_000) if t.rule.id == "pond-do-low"] == ["firing"]


def test_pm25_24h_rule_uses_the_24h_mean(ruleset):
    """Hourly straw-burning peaks far above 50 µg/m³ must not fire while the 24-h mean stays below."""
    e = engine(ruleset)
    station = "khi-dong-ruong-ap3"
    rid = "qcvn05-pm25-24h"
    ts = np.arange(T0, T0 + 2 * 86_400_000, 60_000)
    hour = (ts // 3_600_000) % 24
    # day 1: 30 µg/m³ with a 2-hour 200 µg/m³ peak (mean 44.2); day 2: a sustained 70 µg/m³
    pm = np.where(hour < 2, 200.0, 30.0)
    pm[ts >= T0 + 86_400_000] = 70.0
    fired = []
    for i, (t, v) in enumerate(zip(ts.tolist(), pm.tolist(), strict=True)):
        for tr in e.feed(Reading(C, station, t, i, {"pm25": v, "pm10": v * 1.5, "air_temp": 30, "humidity": 70})):
            if tr.rule.id == rid:
                fired.append(tr)
    assert len(fired) == 1 and fired[0].state == "firing"
    # it fires when the rolling 24-h mean crosses 50: first possible after day 1 has ended
    assert fired[0].ts_ms > T0 + 86_400_000 and fired[0].value == pytest.approx(50.0, abs=0.1)
    assert "trung bình 24 giờ" in fired[0].message_vi and "QCVN 05:2023/BTNMT" in fired[0].message_vi


def test_simulated_day_runs_and_rules_fire_only_on_evaluable_windows(ruleset):
    e = engine(ruleset)
    out = e.replay(simulate(SITE, T0, T0 + 86_400_000, seed=3))
    assert all(t.state in ("firing", "resolved") for t in out)
    # a rule never resolves what it did not fire
    opened: set[str] = set()
    for t in out:
        if t.state == "firing":
            assert t.key not in opened
            opened.add(t.key)
        else:
            assert t.key in opened
            opened.discard(t.key)


def test_gateway_silence_gives_one_gateway_alert(ruleset):
    e = engine(ruleset)
    for st in SITE.stations.values():
        e.feed(Reading(C, st.id, T0, 0, {m: _ok(m) for m in st.metrics}, st.gateway))
    # gw-ao-nuoi's stations (3 ponds + canal) fall silent for 20 min; the others keep reporting
    out = []
    for minute in range(1, 21):
        now = T0 + minute * 60_000
        for st in SITE.stations.values():
            if st.gateway != "gw-ao-nuoi" and minute * 60 % st.interval_s == 0:
                e.feed(Reading(C, st.id, now, minute, {m: _ok(m) for m in st.metrics}, st.gateway))
        out += e.tick(now)
    fired = [t for t in out if t.state == "firing"]
    assert [(t.rule.id, t.station) for t in fired] == [("health-gateway-offline", "gw-ao-nuoi")]
    assert fired[0].value == 4 and "4 trạm" in fired[0].message_vi
    # the gateway comes back: resolved
    back = e.feed(Reading(C, "ao-ca-tra-a1", T0 + 21 * 60_000, 21, {"do": 5.0}, "gw-ao-nuoi"))
    back += e.tick(T0 + 21 * 60_000)
    assert [(t.rule.id, t.state) for t in back] == [("health-gateway-offline", "resolved")]


def test_single_station_silence_is_a_station_alert(ruleset):
    e = engine(ruleset)
    out = []
    for minute in range(0, 6):
        now = T0 + minute * 60_000
        for sid in ("ao-ca-tra-a1", "ao-ca-tra-a2", "kenh-xang-lang"):
            e.feed(Reading(C, sid, now, minute, {"do": 5.0}, "gw-ao-nuoi"))
        out += e.tick(now)
    ponds = {s.id for s in SITE.stations_of("gw-ao-nuoi")} | {"gw-ao-nuoi"}
    assert [(t.rule.id, t.station) for t in out if t.state == "firing" and t.station in ponds] == [
        ("health-silent", "ao-ca-tra-a3")]


def _ok(metric: str) -> float:
    return {"do": 5.5, "ph": 7.2, "temp": 29.0, "battery": 3.9, "fill": 20, "bin_temp": 31, "level": 1.2,
            "chlorine": 0.5, "turbidity": 1.0, "pm25": 20, "pm10": 30, "noise": 40, "nh4": 0.1}.get(metric, 1.0)


# ---------------------------------------------------------------------- daily VN_AQI
AIR = "khi-dong-ruong-ap3"
DAY0 = T0 - 7 * 3_600_000  # 2024-05-01 00:00 in Hồ Chí Minh city (UTC+7)
H = 3_600_000


def air_day(day: int, pm25_at_hour, seed: int, drop: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One local day of 1-minute PM2.5 readings with noise and ~``drop`` of them lost (so the mean
    of hourly means differs from the plain mean of readings)."""
    rng = np.random.default_rng(seed)
    ts = np.arange(DAY0 + day * 86_400_000, DAY0 + (day + 1) * 86_400_000, 60_000)
    hour = (ts - DAY0) // H % 24
    pm = np.array([pm25_at_hour(h) for h in hour], dtype=float) * rng.uniform(0.85, 1.15, len(ts))
    keep = rng.random(len(ts)) >= drop
    return ts[keep], pm[keep]


def expected_daily_aqi(ts: np.ndarray, pm25: np.ndarray) -> int:
    """Decision 1459 §2.2.2 by hand: 24-hour mean = mean of the 24 one-hour means (hour index from
    local midnight), PM10 = 1.4 × PM2.5 as fed below, AQI = larger sub-index."""
    hour = (ts - DAY0) // H % 24  # local clock hour (DAY0 is a local midnight)
    counts = np.bincount(hour, minlength=24)
    held = counts > 0  # an hour without readings is left out of the mean
    m25 = float((np.bincount(hour, pm25, 24)[held] / counts[held]).mean())
    m10 = float((np.bincount(hour, pm25 * 1.4, 24)[held] / counts[held]).mean())
    return aqi.daily_aqi(pm_24h={"pm25": m25, "pm10": m10}).aqi


def feed_air(e: Engine, ts: np.ndarray, pm25: np.ndarray) -> list:
    out = []
    for i, (t, v) in enumerate(zip(ts.tolist(), pm25.tolist(), strict=True)):
        out += e.feed(Reading(C, AIR, t, i, {"pm25": v, "pm10": v * 1.4, "air_temp": 30.0, "humidity": 70.0}))
    return [t for t in out if t.rule.id.startswith("vn-aqi-daily")]


def first_reading(day: int) -> tuple[np.ndarray, np.ndarray]:
    ts, pm = air_day(day, clean, seed=day)
    return ts[:1], pm[:1]


def burning(h: int) -> float:
    return 300.0 if 14 <= h < 22 else 35.0  # straw burning in the fields from 14:00 to 22:00


def clean(h: int) -> float:
    return 18.0


def test_daily_vn_aqi_fires_once_for_a_burning_day_and_not_for_a_clean_day(ruleset):
    e = Engine(ruleset, {C: SITE}, start_ms=DAY0)
    day1 = air_day(0, burning, seed=1)
    day2 = air_day(1, clean, seed=2)
    day3 = air_day(2, clean, seed=3)
    assert feed_air(e, *day1) == []  # nothing before the day is complete (hourly rules aside)
    out = feed_air(e, *day2)
    expected = expected_daily_aqi(*day1)
    assert 150 < expected <= 200  # the episode makes a "bad" day, not a "very bad" one
    assert [(t.rule.id, t.state) for t in out] == [("vn-aqi-daily-bad", "firing")]
    fired = out[0]
    # fired at the first reading of 2 May (local), on the value of 1 May
    assert fired.ts_ms == day2[0][0] and fired.value == expected and fired.limit == 150
    assert fired.message_vi == ("Không khí — cánh đồng ấp 3 (đốt rơm rạ): VN_AQI ngày 01/05/2024 là "
                                f"{expected}, mức xấu (trên 150) (Quyết định 1459/QĐ-TCMT)")
    assert fired.message_en == ("Air — hamlet 3 rice fields (straw burning): daily VN_AQI for 01/05/2024 was "
                                f"{expected}, bad (above 150) (Quyết định 1459/QĐ-TCMT)")
    assert "2.2.2" in fired.rule.table and fired.rule.severity == "warning"
    # the clean 2 May resolves it when 3 May begins; the clean 3 May fires nothing
    out = feed_air(e, *day3)
    assert [(t.rule.id, t.state) for t in out] == [("vn-aqi-daily-bad", "resolved")]
    assert out[0].ts_ms == day3[0][0] and out[0].value == expected_daily_aqi(*day2) < 140
    assert feed_air(e, *first_reading(3)) == []


def test_daily_vn_aqi_clean_day_alone_never_fires(ruleset):
    e = Engine(ruleset, {C: SITE}, start_ms=DAY0)
    assert feed_air(e, *air_day(0, clean, seed=5)) == []
    assert feed_air(e, *first_reading(1)) == []  # day closed, nothing fired
    assert e.daily_next[(C, AIR)] == DAY0 + 2 * 86_400_000  # 1 May was evaluated


def test_daily_vn_aqi_closed_by_the_clock_when_the_station_is_silent(ruleset):
    """The station stops at 23:00 on a very bad day: ``tick`` closes the day after the grace."""
    e = Engine(ruleset, {C: SITE}, start_ms=DAY0)
    ts, pm = air_day(0, lambda h: 600.0 if 6 <= h < 18 else 60.0, seed=7, drop=0.0)
    before_23 = ts < DAY0 + 23 * H
    assert feed_air(e, ts[before_23], pm[before_23]) == []
    midnight = DAY0 + 86_400_000
    assert [t for t in e.tick(midnight + DAILY_GRACE_MS - 1000) if t.rule.id.startswith("vn-aqi-daily")] == []
    out = [t for t in e.tick(midnight + DAILY_GRACE_MS) if t.rule.id.startswith("vn-aqi-daily")]
    assert sorted(t.rule.id for t in out) == ["vn-aqi-daily-bad", "vn-aqi-daily-very-bad"]
    assert all(t.state == "firing" for t in out)
    # 23 of 24 hours hold data: still a valid day; the value is the decision's, from those hours
    assert out[0].value == expected_daily_aqi(ts[before_23], pm[before_23]) > 200
    assert [t for t in e.tick(midnight + 2 * H) if t.rule.id.startswith("vn-aqi-daily")] == []  # once


def test_daily_vn_aqi_needs_three_quarters_of_the_day(ruleset):
    e = Engine(ruleset, {C: SITE}, start_ms=DAY0)
    ts, pm = air_day(0, lambda h: 600.0, seed=8, drop=0.0)
    evening = ts >= DAY0 + 7 * H  # 17 hours of data < 18
    assert feed_air(e, ts[evening], pm[evening]) == []
    assert feed_air(e, *first_reading(1)) == []


def test_daily_vn_aqi_after_a_restart_only_new_days(ruleset):
    """Restarted at 02:00: the previous day was the previous run's. Restarted at 00:30: evaluated
    (the service was down at midnight), from the warm-up history."""
    ts, pm = air_day(0, burning, seed=10)
    for started, fires in ((DAY0 + 86_400_000 + 2 * H, False), (DAY0 + 86_400_000 + H // 2, True)):
        e = Engine(ruleset, {C: SITE}, start_ms=started)
        for i, (t, v) in enumerate(zip(ts.tolist(), pm.tolist(), strict=True)):
            e.remember(Reading(C, AIR, t, i, {"pm25": v, "pm10": v * 1.4}))
        out = [t for t in e.tick(started) if t.rule.id.startswith("vn-aqi-daily")]
        assert [t.state for t in out] == (["firing"] if fires else [])
        if fires:
            assert out[0].value == expected_daily_aqi(ts, pm)
