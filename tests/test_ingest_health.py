"""Issue #11 §1: /healthz tells the truth — 503 with a reason when nothing can arrive, when writes
stall, or when the spool nears its budget; /metrics shows the same reasons.

The first tests build the service without starting it (no broker needed: a service that never
connected must say so); the last runs the real `villagewatch ingest` against real Mosquitto and
InfluxDB and stops InfluxDB under it.
"""

from __future__ import annotations

import json
import time

from conftest import eventually

from ingest import health
from ingest.service import IngestService
from villagewatch import contract
from villagewatch.config import load_settings
from villagewatch.publish import Publisher

COMMUNE = "tan-thuan-dong"


def inputs(**changes) -> health.HealthInputs:
    ok = dict(connected=True, subscribed=True, oldest_unacked_age_s=0.4, spool_oldest_age_s=0.0,
              spool_bytes=0, spool_max_bytes=1000, stalled_after_s=60.0)
    return health.HealthInputs(**{**ok, **changes})


def test_each_reason_and_only_it():
    assert health.reasons(inputs()) == []
    cases = {
        "broker_disconnected": dict(connected=False),
        "not_subscribed": dict(subscribed=False),
        "stalled": dict(oldest_unacked_age_s=60.5),
        "spool_near_budget": dict(spool_bytes=900),
    }
    for reason, change in cases.items():
        assert [r for r, _ in health.reasons(inputs(**change))] == [reason]
    # the spool's age counts as a stall too: spooled readings are acknowledged but not queryable
    found = health.reasons(inputs(spool_oldest_age_s=61, spool_bytes=899))
    assert [r for r, _ in found] == ["stalled"] and "disk spool" in found[0][1] and "61 s" in found[0][1]
    assert health.reasons(inputs(oldest_unacked_age_s=60.0)) == []  # at the threshold: not yet


def test_service_that_never_connected_and_a_full_spool_are_unhealthy(tmp_path):
    settings = load_settings(None, env={"VW_INGEST_SPOOL_MAX_BYTES": str(1024**2),
                                        "VW_INGEST_STALLED_AFTER_S": "0.2"}, data_dir=str(tmp_path))
    service = IngestService(settings)
    try:
        assert {r for r, _ in service._health()} == {"broker_disconnected", "not_subscribed"}
        service.spool.put(b"x" * (950 * 1024), 1)  # a real spool file, 95 % of its 1 MiB budget
        eventually(lambda: "stalled" in {r for r, _ in service._health()}, 10, "spool age over 0.2 s")
        assert {r for r, _ in service._health()} == {"broker_disconnected", "not_subscribed", "stalled",
                                                   "spool_near_budget"}
        text = service.metrics.render()
        for reason in health.REASONS:
            assert f'vw_ingest_unhealthy{{reason="{reason}"}} 1' in text
        assert "vw_ingest_healthy 0" in text and "vw_ingest_spool_max_bytes 1048576" in text
    finally:
        service.dead_letters.close()
        service.spool.close()


def count_points(stack) -> int:
    rows = stack.query_values('SELECT count("seq") FROM "telemetry"')
    return int(rows[0][1]) if rows else 0


def reasons_now(ingest) -> list[str]:
    body = ingest.health() or {}
    return [r["reason"] for r in body.get("reasons", [])]


def test_influxdb_stopped_makes_healthz_stalled_then_healthy_again_and_nothing_is_lost(stack, ingest_factory):
    stalled_after_s = 3
    ingest = ingest_factory({"VW_INGEST_STALLED_AFTER_S": str(stalled_after_s)})
    assert ingest.health()["healthy"] is True and reasons_now(ingest) == []
    now_ms = int(time.time() * 1000)
    readings = [contract.Reading(COMMUNE, f"tram-{i % 10}", now_ms - 600_000 + i, i, {"ph": 7.0}) for i in range(600)]
    with Publisher(stack.mqtt_url) as pub:
        pub.publish_all((r.topic, r.to_payload()) for r in readings[:200])
        pub.wait_acked()
        eventually(lambda: count_points(stack) == 200, 30, "first 200 points written")
        stack.stop_influx()
        stopped_at = time.monotonic()
        pub.publish_all((r.topic, r.to_payload()) for r in readings[200:])
        pub.wait_acked()
        eventually(lambda: reasons_now(ingest) == ["stalled"], 60, "healthz: stalled")
        # not before the threshold: the oldest unwritten reading was published after the stop
        assert time.monotonic() - stopped_at >= stalled_after_s
    body = ingest.health()
    assert body["healthy"] is False and body["database"] is False and "threshold 3 s" in body["reasons"][0]["detail"]
    import urllib.error
    import urllib.request
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{ingest.http_port}/healthz", timeout=30)
        raise AssertionError("healthz answered 200 while stalled")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503 and json.loads(exc.read())["reasons"][0]["reason"] == "stalled"
    text = ingest.metrics_text()
    assert 'vw_ingest_unhealthy{reason="stalled"} 1' in text and "vw_ingest_healthy 0" in text
    stack.start_influx(timeout=90)
    eventually(lambda: count_points(stack) == 600, 60, "all 600 points after InfluxDB returns")
    eventually(lambda: (ingest.health() or {}).get("healthy") is True, 30, "healthz: healthy again")
    assert reasons_now(ingest) == [] and count_points(stack) == 600
    assert 'vw_ingest_unhealthy{reason="stalled"} 0' in ingest.metrics_text()


def test_broker_stopped_makes_healthz_say_so_and_it_recovers(stack, ingest_factory):
    ingest = ingest_factory()
    stack.stop_broker()
    eventually(lambda: "broker_disconnected" in reasons_now(ingest), 30, "healthz: broker_disconnected")
    assert (ingest.health() or {}).get("healthy") is False
    assert 'vw_ingest_unhealthy{reason="broker_disconnected"} 1' in ingest.metrics_text()
    stack.start_broker(timeout=90)
    eventually(lambda: (ingest.health() or {}).get("healthy") is True, 60, "healthz: healthy after reconnect")
    # and it really receives again
    now_ms = int(time.time() * 1000)
    reading = contract.Reading(COMMUNE, "tram-0", now_ms - 1000, 1, {"ph": 7.2})
    with Publisher(stack.mqtt_url) as pub:
        pub.publish(reading.topic, reading.to_payload())
        pub.wait_acked()
    eventually(lambda: count_points(stack) == 1, 30, "a reading after the broker came back")
