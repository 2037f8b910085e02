"""Edge processing and the spool, without a broker: calibration, quality flags, aggregation, budget."""

from __future__ import annotations

import datetime as dt

import pytest

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
