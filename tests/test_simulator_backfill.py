"""`villagewatch simulate backfill`: deterministic with a seed, runs the edge's own processing (the
flags a gateway would send), and user mistakes are messages (exit 2), never tracebacks."""

from __future__ import annotations

import dataclasses

import pytest

from app.cli import main
from edge.sources.simulated.model import Faults
from simulator.backfill import Period, processed_readings
from villagewatch.errors import UserError
from villagewatch.sites import load_site

SITE = "sites/tan-thuan-dong.yaml"


def _day(seed: int, station: str = "ao-ca-tra-a1", **source):
    site = load_site(SITE)
    st = site.stations[station]
    if source:
        st = dataclasses.replace(st, source={"type": "simulated", **source})
    p = Period.parse("2025-10-15", "2025-10-15", site.timezone)
    return list(processed_readings(site, st, p.start_ms, p.end_ms, seed, Faults(flatline_day_probability=1.0)))


def test_same_seed_same_points_and_the_edge_flags_faults():
    a, b, c = _day(3), _day(3), _day(4)
    assert [(r.ts_ms, r.metrics, r.flags) for r in a] == [(r.ts_ms, r.metrics, r.flags) for r in b]
    assert [r.metrics for r in a] != [r.metrics for r in c]
    # a sensor stuck from 01:00 (the simulator's flatline fault): the edge flags it after 30 equal values
    flat = [r for r in a if any("flatline" in fl for fl in r.flags.values())]
    assert flat and all(1 <= (r.ts_ms // 3_600_000 + 7) % 24 < 7 for r in flat)  # 01:00–07:00 local
    assert all(r.seq == r.ts_ms // 60_000 for r in a)


def test_edge_aggregation_from_the_site_source_is_applied():
    readings = _day(3, aggregate={"interval_s": 600})
    assert len(readings) == 24 * 6  # one reading per 10 minutes instead of per minute
    assert all("aggregated" in fl for r in readings for fl in r.flags.values())


@pytest.mark.parametrize("args, words", [
    (["--from", "2025-10-32", "--to", "2025-10-31"], "YYYY-MM-DD"),
    (["--from", "2025-10-02", "--to", "2025-10-01"], "--to is before --from"),
    (["--from", "2999-01-01", "--to", "2999-01-02"], "future"),
    (["--from", "2025-10-01", "--to", "2025-10-01", "--station", "nope"], "no station"),
    (["--from", "2025-10-01", "--to", "2025-10-01", "--station", "rac-ap-1", "--influx-url", "http://127.0.0.1:9"],
     "cannot reach InfluxDB"),
])
def test_user_mistakes_are_messages(capsys, args, words):
    assert main(["simulate", "backfill", "--site", SITE, "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_period_is_local_days_with_the_last_day_included():
    p = Period.parse("2025-10-01", "2025-10-31", "Asia/Ho_Chi_Minh")
    assert (p.end_ms - p.start_ms) == 31 * 86_400_000 and p.start_ms % 86_400_000 == 17 * 3_600_000
    with pytest.raises(UserError):
        Period.parse("01/10/2025", "2025-10-31", "Asia/Ho_Chi_Minh")
