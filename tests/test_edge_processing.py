"""Edge processing and the spool, without a broker: calibration, quality flags, aggregation, budget."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.processing import PROCESSING_SCHEMA, StationProcessor
from edge.spool import Spool
from villagewatch import contract
from villagewatch.schema import ConfigError, Ctx, load_yaml_text

DAY_MS = 86_400_000


def ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day + "T12:00:00+00:00").timestamp() * 1000)


def proc(yaml_text: str) -> StationProcessor:
    return StationProcessor(PROCESSING_SCHEMA(load_yaml_text(yaml_text), Ctx("site.yaml")))


def test_two_point_calibration_and_expiry_flag():
    p = proc("calibration:\n  ph: {points: [[4.10, 4.00], [7.20, 7.00]], date: 2025-01-10, valid_days: 30}\n")
    (ts, values, flags), = p.process(ms("2025-01-20"), {"ph": 7.20})
    assert values["ph"] == pytest.approx(7.00) and not flags
    (_, values, flags), = p.process(ms("2025-02-10"), {"ph": 4.10})
    assert values["ph"] == pytest.approx(4.00) and flags == {"ph": ["calibration_expired"]}


def test_a_dry_day_is_not_a_stuck_rain_gauge():
    """Rain 0 mm for hours is weather; the same non-zero value for as long is a stuck sensor."""
    p = proc("quality: {flatline_count: 5}\n")
    dry = [p.process(i * 1000, {"rain": 0.0, "air_temp": 30.0})[0][2] for i in range(40)]
    assert all("rain" not in f for f in dry)
    assert dry[-1] == {"air_temp": ["flatline"]}
    p = proc("quality: {flatline_count: 5, steady_values: {fill: [0]}}\n")
    flags = [p.process(i * 1000, {"fill": 0.0, "rain": 2.5})[0][2] for i in range(10)]
    assert flags[-1] == {"rain": ["flatline"]}
    with pytest.raises(ConfigError, match="steady_values"):
        proc("quality: {steady_values: [0]}\n")


def test_polynomial_calibration():
    p = proc("calibration:\n  ec: {points: [[0, 0], [1, 1], [2, 4], [3, 9]], degree: 2, date: 2025-01-01}\n")
    (_, values, _), = p.process(ms("2025-01-02"), {"ec": 2.5})
    assert values["ec"] == pytest.approx(6.25)


def test_spike_and_flatline_are_flags_not_drops():
    p = proc("quality: {spike_window: 9, spike_k: 6, flatline_count: 5}\n")
    out = [p.process(i * 1000, {"do": 5.0 + 0.1 * (i % 3)})[0] for i in range(10)]
    assert all(not f for _, _, f in out)
    (_, values, flags), = p.process(11_000, {"do": 19.0})
    assert values["do"] == 19.0 and flags == {"do": ["spike"]}
    flat = [p.process(12_000 + i * 1000, {"do": 5.1})[0][2] for i in range(6)]
    assert flat[3] == {} and flat[4] == {"do": ["flatline"]}


def spikes(p: StationProcessor, metric: str, values: list[float]) -> list[bool]:
    return ["spike" in p.process(i * 60_000, {metric: v})[0][2].get(metric, ()) for i, v in enumerate(values)]


@settings(max_examples=40, deadline=None)
@given(level=st.floats(0.5, 20), amplitude=st.floats(0, 3), period=st.integers(30, 1440),
       drift=st.floats(-2e-3, 2e-3), decimals=st.sampled_from([1, 2]), metric=st.sampled_from(["chlorine", "level", "do"]))
def test_smooth_quantized_signals_are_not_spikes(level, amplitude, period, drift, decimals, metric):
    # the bug this guards: with MAD 0 on a quantized smooth signal, every step of the last digit was
    # a "spike", and a flagged value never entered the history, so the flags never stopped
    values = [round(level + amplitude * math.sin(2 * math.pi * i / period) + drift * i, decimals) for i in range(1500)]
    flagged = sum(spikes(proc("{}"), metric, values))
    assert flagged < 0.01 * len(values), f"{flagged} of {len(values)} flagged"


def noisy(base: float, sigma: float, n: int, seed: int) -> list[float]:
    import random
    rnd = random.Random(seed)
    return [round(base + rnd.gauss(0, sigma), 2) for _ in range(n)]


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from([("ph", 7.2, 0.03, 13.91), ("temp", 28.0, 0.1, 56.0), ("level", 2.3, 0.01, 5.17),
                             ("chlorine", 0.5, 0.01, 0.05), ("do", 5.0, 0.05, 0.0)]),
       at=st.integers(30, 150), seed=st.integers(0, 10_000))
def test_isolated_outliers_are_spikes(case, at, seed):
    metric, base, sigma, outlier = case
    values = noisy(base, sigma, 200, seed)
    values[at] = outlier
    flags = spikes(proc("{}"), metric, values)
    assert flags[at], f"{metric} {outlier} among {base} not flagged"
    assert sum(flags) <= 2, "the readings around the outlier are not spikes"


@settings(max_examples=30, deadline=None)
@given(base=st.floats(0.5, 10), step=st.floats(0.3, 5), up=st.booleans(), seed=st.integers(0, 10_000))
def test_a_step_change_is_a_level_shift_after_a_few_readings(base, step, up, seed):
    metric = "level"
    new = base + step if up else max(base - step, 0.05)
    values = noisy(base, 0.01, 100, seed) + noisy(new, 0.01, 300, seed + 1)
    p = proc("quality: {shift_count: 3}\n")
    flags = spikes(p, metric, values)
    assert sum(flags[100:]) <= 2 and not any(flags[102:]), "after the first two, the new level is data"
    assert not any(flags[:100])


def test_a_steep_sustained_ramp_is_not_flagged_forever():
    values = [round(1.0 + (0.5 * (i - 50) if i > 50 else 0), 2) for i in range(200)]
    flags = spikes(proc("{}"), "level", values)
    assert sum(flags) <= 6 and not any(flags[100:])


def test_two_readings_in_a_burst_stay_spikes():
    values = noisy(7.2, 0.03, 100, 1)
    values[60:62] = [13.9, 13.91]
    flags = spikes(proc("quality: {shift_count: 3}\n"), "ph", values)
    assert flags[60] and flags[61] and sum(flags) == 2


def test_resolution_from_the_site_raises_the_floor():
    values = [7.0] * 30 + [7.3] + [7.0] * 10
    assert spikes(proc("{}"), "ph", values)[30], "0.3 above a dead-steady 7.00 at 0.01 resolution"
    assert not any(spikes(proc("quality: {resolution: {ph: 0.1}}\n"), "ph", values)), "3 steps of 0.1"
    with pytest.raises(ConfigError) as exc:
        PROCESSING_SCHEMA(load_yaml_text("quality:\n  resolution: {phh: 0.1}\n", "site.yaml"), Ctx("site.yaml"))
    assert "site.yaml:2" in str(exc.value) and "phh" in str(exc.value)


def test_window_aggregation_min_mean_max_last():
    p = proc("aggregate: {interval_s: 60, do: min, temp: mean, ph: max, battery: last}\n")
    assert p.process(0, {"do": 5.0, "temp": 28.0, "ph": 7.0, "battery": 3.9}) == []
    assert p.process(30_000, {"do": 3.0, "temp": 30.0, "ph": 7.4, "battery": 3.8}) == []
    (ts, values, flags), = p.process(60_000, {"do": 6.0, "temp": 29.0, "ph": 7.1, "battery": 3.7})
    assert ts == 0 and values == {"do": 3.0, "temp": 29.0, "ph": 7.4, "battery": 3.8}
    assert all(f == ["aggregated"] for f in flags.values())


def test_bad_processing_config_names_line_and_key():
    with pytest.raises(ConfigError) as exc:
        PROCESSING_SCHEMA(load_yaml_text("quality:\n  spike_windw: 9\n", "site.yaml"), Ctx("site.yaml"))
    assert "site.yaml:2" in str(exc.value) and "spike_window" in str(exc.value)


def reading(station: str, i: int) -> contract.Reading:
    return contract.Reading("xa-thu", station, 1_700_000_000_000 + i * 1000, 0, {"do": 5.0 + i % 7}, "gw")


def test_spool_seq_survives_reopen_and_budget_drops_oldest(tmp_path):
    path = tmp_path / "spool.sqlite"
    s = Spool(path, budget_bytes=20_000)
    for i in range(300):
        s.append([reading("ao-1", i), reading("ao-2", i)])
    assert s.bytes <= 20_000
    assert s.total_drops > 0 and s.drops["ao-1"] > 0 and s.drops["ao-2"] > 0
    rows = s.fetch(0, 100_000)
    seqs = [r.seq for r in rows if r.station == "ao-1"]
    assert seqs == list(range(300 - len(seqs), 300)), "the newest are kept, contiguous"
    assert s.depth == len(rows)
    drops = s.total_drops
    s.close()
    s = Spool(path, budget_bytes=20_000)
    assert s.total_drops == drops and s.depth == len(rows)
    (r,) = s.append([reading("ao-1", 300)])
    assert r.seq == 300, "seq continues after a restart"
    assert s.delete([row.id for row in rows]) == len(rows)
    assert s.depth == 1 and s.oldest_ts() == r.ts_ms
    s.close()
