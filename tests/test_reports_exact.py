"""Hand-made readings with known answers through the real InfluxDB: episode bounds, peaks, the
running month (readings not yet due are not missing), and input errors of `villagewatch report`."""

from __future__ import annotations

import urllib.request

import pytest

from app.cli import main
from reports.build import build_report
from reports.config import load_report_config
from reports.influx import InfluxReader
from reports.period import Month
from reports.rules import from_rule_packs
from villagewatch.contract import Reading
from villagewatch.lineproto import telemetry_line
from villagewatch.sites import load_site

MIN = 60_000


def _write(stack, readings: list[Reading], kind: str) -> None:
    body = "\n".join(telemetry_line(r, kind) for r in readings).encode()
    req = urllib.request.Request(f"{stack.influx_url}/write?db={stack.influx_db}&precision=ms", data=body,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 204


@pytest.mark.integration
def test_pond_episode_bounds_and_running_month(stack):
    site = load_site("sites/tan-thuan-dong.yaml")
    month = Month.parse("2025-10", site.timezone)
    t0 = month.start_ms
    readings = []
    for i in range(2 * 1440):  # two days of minute readings of pond A1
        if 600 <= i < 660:
            continue  # one hour lost: 60 readings missing
        do = 5.0
        if 120 <= i < 130:
            do = 2.0 if i == 125 else 2.5  # ten minutes below the 3.0 mg/L operational limit
        if i == 2000:
            do = 2.9  # a single low reading
        readings.append(Reading(site.commune, "ao-ca-tra-a1", t0 + i * MIN, i,
                                {"do": do, "ph": 7.5, "temp": 29.0, "nh4": 0.2, "battery": 3.9, "rssi": -70.0}))
    _write(stack, readings, "pond")
    now_ms = t0 + 2 * 86_400_000  # the report is run at the end of day 2 of a running month
    report = build_report(site, month, InfluxReader(stack.influx_url, stack.influx_db), from_rule_packs(month),
                          load_report_config(), now_ms=now_ms)
    row = next(r for r in report.rows if r.station.id == "ao-ca-tra-a1" and r.limit and r.limit.rule_id == "pond-do-low")
    assert row.readings == 2 * 1440 - 60
    assert row.expected == 2 * 1440  # days still to come are not counted as missing
    assert row.completeness_pct == pytest.approx(100 * (2880 - 60) / 2880)
    assert [(e.start_ms, e.end_ms, e.peak) for e in row.episodes] == [
        (t0 + 120 * MIN, t0 + 130 * MIN, 2.0), (t0 + 2000 * MIN, t0 + 2001 * MIN, 2.9)]
    assert row.outside_s == 11 * 60
    assert row.within_pct == pytest.approx(100 * (2820 - 11) / 2820)
    assert report.completeness["ao-ca-tra-a1"][0] == pytest.approx(100 * (1440 - 60) / 1440)
    assert report.completeness["ao-ca-tra-a1"][1] == 100
    assert report.completeness["ao-ca-tra-a1"][5] != report.completeness["ao-ca-tra-a1"][5]  # NaN: not yet due
    # a station that sent nothing is 0 % complete, not absent from the report
    assert report.station_totals["ao-ca-tra-a2"] == (0, 2 * 1440)


def test_cli_input_errors_are_user_errors(capsys, tmp_path):
    assert main(["report", "--commune", "tan-thuan-dog", "--month", "2025-10", "--out", str(tmp_path)]) == 2
    assert "did you mean 'tan-thuan-dong'" in capsys.readouterr().err
    assert main(["report", "--commune", "tan-thuan-dong", "--month", "10-2025", "--out", str(tmp_path)]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert main(["report", "--commune", "tan-thuan-dong", "--month", "2025-10", "--out", str(tmp_path),
                 "--influx-url", "http://127.0.0.1:9"]) == 2
    assert "villagewatch stack up" in capsys.readouterr().err
