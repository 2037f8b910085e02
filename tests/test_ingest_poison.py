"""Issue #11 §1: poison messages hurt only themselves (real Mosquitto + InfluxDB, started per test)."""

from __future__ import annotations

import json
import time

from conftest import eventually

from ingest.stores import DeadLetterStore
from villagewatch import contract
from villagewatch.publish import Publisher

COMMUNE = "tan-thuan-dong"


def count_points(stack) -> int:
    rows = stack.query_values('SELECT count("seq") FROM "telemetry"')
    return int(rows[0][1]) if rows else 0


def poison_messages(now_ms: int) -> list[tuple[str, bytes]]:
    """Valid JSON that passes validation but holds lone UTF-16 surrogates (cannot be UTF-8 stored)."""
    out = []
    for i in range(3):
        body = {"ts": now_ms - 1000 - i, "seq": i, "metrics": {"ph": 7.0}, "flags": {"ph": ["\ud800"]}}
        out.append((contract.telemetry_topic(COMMUNE, f"tram-doc-{i}"), json.dumps(body).encode()))
    status = {"ts": now_ms - 10, "online": True, "fw": "\udfff"}
    out.append((contract.station_status_topic(COMMUNE, "tram-doc-9"), json.dumps(status).encode()))
    return out


def test_poison_interleaved_with_2000_valid_readings_lands_every_valid_one(stack, ingest_factory):
    ingest = ingest_factory()
    now_ms = int(time.time() * 1000)
    valid = [contract.Reading(COMMUNE, f"tram-tot-{i % 20}", now_ms - 3_600_000 + i * 1000, i, {"ph": 7.0 + (i % 10) / 10})
             for i in range(2000)]
    poison = poison_messages(now_ms)
    with Publisher(stack.mqtt_url) as pub:
        for i, r in enumerate(valid):
            pub.publish(r.topic, r.to_payload())
            if i % 500 == 250:  # spread across batches
                pub.publish(*poison[i // 500])
        pub.wait_acked()
    eventually(lambda: count_points(stack) >= 2000, 30, "all 2,000 valid readings in InfluxDB")
    assert count_points(stack) == 2000
    store_path = ingest.data_dir / "ingest" / "villagewatch-ingest" / "deadletter.sqlite"
    eventually(lambda: store_path.exists() and DeadLetterStore(store_path).count() >= len(poison), 30,
               "poison messages in the dead-letter store")
    store = DeadLetterStore(store_path)
    rows = store.list(limit=100)
    assert sorted((r.topic, r.payload) for r in rows) == sorted(poison)
    assert all(r.reason for r in rows)
    assert sorted(r.reason for r in rows if r.topic.endswith("/telemetry")) == [contract.R_BAD_UTF8] * 3
    # nothing is held: every message acknowledged, and health says so
    eventually(lambda: "vw_ingest_inflight_messages 0" in ingest.metrics_text(), 30, "nothing inflight")
    health = ingest.health()
    assert health is not None and health["subscribed"] and health["inflight"] == 0
    assert f'vw_ingest_rejected_total{{reason="{contract.R_BAD_UTF8}"}} 3' in ingest.metrics_text()
