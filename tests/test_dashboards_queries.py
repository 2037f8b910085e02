"""Every query of every generated dashboard runs on a real InfluxDB filled by the simulator.

Grafana cannot run here, so the proof that a panel shows data is: substitute $timeFilter,
$__interval and the template variables as Grafana's InfluxDB datasource does, run the query on
the real InfluxDB 1.6.7 of the `stack` fixture, and require rows. A failure names the dashboard,
the panel and the query.
"""

from __future__ import annotations

import copy
import time
import urllib.request

import pytest

from alerts.points import alert_line
from dashboards.check import Influx, check_all, check_dashboard
from dashboards.generator import build_all
from edge.sources.simulated.model import backfill
from ingest.pipeline import status_line
from ingest.service import STATS_MEASUREMENT
from villagewatch import contract, lineproto
from villagewatch.sites import load_sites

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def _write(stack, lines: list[str]) -> None:
    url = f"{stack.influx_url}/write?db={stack.influx_db}&precision=ms"
    with urllib.request.urlopen(urllib.request.Request(url, data="\n".join(lines).encode(), method="POST")) as r:
        assert r.status == 204


def _other_measurements(site, now_ms: int) -> list[str]:
    """Representative points for the measurements the simulator does not write, made with the
    producers' own code where it exists: gateway_status by ingest's status_line (from the
    gateways' status messages), ingest_stats in ingest/service.py's shape, and alert transitions
    in the shape assumed for the alert engine (docs/dashboards.md; the engine has not landed)."""
    lines = []
    for i, gw in enumerate(site.gateways):
        info = contract.parse_topic(contract.gateway_status_topic(site.commune, gw))
        for k in range(12):
            # the shape edge/gateway.py Gateway.status() publishes (ingest flattens one level)
            body = {"online": True, "ts": now_ms - (12 - k) * 5 * 60_000,
                    "queue": {"depth": (k * 7 + i) % 40, "drops": k // 4, "oldest_age_s": 3.0}}
            lines.append(status_line(info, body))
    for k in range(30):
        fields = {"received": 1000.0 + 600 * k, "written": 995.0 + 600 * k, "rejected": float(k // 3),
                  "spool_batches": 0.0, "inflight": 0.0}
        lines.append(lineproto.line(STATS_MEASUREMENT, {"instance": "test:ingest"}, fields,
                                    now_ms - (30 - k) * 60_000))
    transitions = [  # (station, rule, severity, state, value, minutes ago)
        ("ao-ca-tra-a1", "pond-do-low", "critical", "firing", 2.4, 50),
        ("rac-cho-tan-thuan", "waste-fill-warning", "warning", "firing", 86.0, 40),
        ("rac-ap-1", "waste-fill-warning", "warning", "firing", 82.0, 90),
        ("rac-ap-1", "waste-fill-warning", "warning", "resolved", 12.0, 30),
        ("khi-dong-ruong-ap3", "health-silent", "warning", "firing", 20.0, 20),
        ("muc-nuoc-song-tien", "flood-level-1", "info", "acknowledged", 1.95, 10),
    ]
    for station, rule, severity, state, value, ago in transitions:
        # the alert engine's own serializer: the shape the dashboards read is the shape it writes
        lines.append(alert_line(commune=site.commune, station=station, rule=rule, severity=severity, state=state,
                                ts_ms=now_ms - ago * 60_000, value=value, message_vi=f"{station}: {rule} {value}",
                                message_en=f"{station}: {rule} {value}"))
    return lines


@pytest.fixture
def filled(stack, site_dir):
    sites = load_sites(site_dir)
    site = sites["tan-thuan-dong"]
    now_ms = int(time.time() * 1000)
    # 2 days: the widest fixed window a panel uses by default is 7 days, the completeness panel
    # needs 24 h, the time-to-full panel 6 h; every one of them must find readings
    written = backfill(site, now_ms - 48 * HOUR_MS, now_ms, stack.influx_url, stack.influx_db, seed=6)
    assert written > 20_000
    _write(stack, _other_measurements(site, now_ms))
    return sites, Influx(stack.influx_url, stack.influx_db)


def test_every_panel_query_returns_data(filled):
    sites, influx = filled
    built = build_all(sites)
    assert {b.lang for b in built} == {"vi", "en"}
    result = check_all([b.dashboard for b in built], influx)
    assert not result.failures, "\n".join(str(f) for f in result.failures)
    panels = sum(1 for b in built for p in b.dashboard["panels"] if p["type"] != "row")
    assert result.queries > panels  # every panel target, plus variables and annotations
    assert result.rows > 10_000


def test_station_state_query_gives_worst_open_alert(filled):
    """The geomap's state codes: the resolved alert of rac-ap-1 must not count."""
    sites, influx = filled
    overview = next(b.dashboard for b in build_all(sites, langs=("vi",)) if b.board == "overview")
    geomap = next(p for p in overview["panels"] if p["type"] == "geomap")
    from dashboards.interpolate import TimeRange, interpolate
    codes: dict[str, int] = {}
    for ref in ("WARN", "ALARM", "OFFLINE"):
        raw = next(t["query"] for t in geomap["targets"] if t["refId"] == ref)
        q = interpolate(raw, {"commune": ["tan-thuan-dong"], "station": list(sites["tan-thuan-dong"].stations)},
                        {"station": True}, TimeRange("24h"))
        for s in influx.query(q):
            codes[s["tags"]["station"]] = max(codes.get(s["tags"]["station"], 0), int(s["values"][0][1]))
    assert codes == {"ao-ca-tra-a1": 2, "rac-cho-tan-thuan": 1, "muc-nuoc-song-tien": 1,
                     "khi-dong-ruong-ap3": 3}


def test_a_broken_panel_is_named(filled):
    """The proof can fail: a panel reading a field nobody writes is reported by dashboard and panel."""
    sites, influx = filled
    dash = copy.deepcopy(next(b.dashboard for b in build_all(sites, langs=("vi",)) if b.board == "flood"))
    victim = next(p for p in dash["panels"] if p["type"] == "timeseries")
    victim["targets"][0]["query"] = victim["targets"][0]["query"].replace('"level"', '"levle"')
    bad = copy.deepcopy(victim)
    bad["title"], bad["targets"][0]["query"] = "syntax", "SELEKT nonsense"
    dash["panels"].append(bad)
    failures = check_dashboard(dash, influx).failures
    assert [(f.dashboard, f.panel) for f in failures] == [(dash["title"], victim["title"]), (dash["title"], "syntax")]
    assert "returned no data" in failures[0].reason and "query error" in failures[1].reason
