"""Issue #11 §1: the dead-letter store is bounded — one row per message, a byte budget, oldest evicted.

The unit tests use the real SQLite store; the flood test runs the real ingest against real
Mosquitto and InfluxDB.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import eventually
from test_ingest_poison import count_points

from ingest.stores import DeadLetterStore
from villagewatch import contract
from villagewatch.config import load_settings
from villagewatch.publish import Publisher

COMMUNE = "tan-thuan-dong"


def store_disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_budget_evicts_oldest_first_and_counts_evictions(tmp_path):
    budget = 256 * 1024
    store = DeadLetterStore(tmp_path / "d.sqlite", max_bytes=budget)
    payload = b"x" * 10_000
    for i in range(100):
        store.add_many([(i, f"t/{i}", payload, contract.R_BAD_JSON, f"row {i}")])
        assert store.bytes <= budget
    kept = store.list(limit=1000)
    assert len(kept) == store.rows == store.count() < 100
    # the newest are kept, in order, and every missing one is counted as evicted
    assert [r.received_ms for r in reversed(kept)] == list(range(100 - len(kept), 100))
    assert store.evicted == 100 - len(kept) > 0
    store.close()
    reopened = DeadLetterStore(tmp_path / "d.sqlite", max_bytes=budget)
    assert (reopened.rows, reopened.bytes, reopened.evicted) == (len(kept), store.bytes, store.evicted)
    # freed pages are reused: the file stays near the budget however much passes through it
    for i in range(100, 400):
        reopened.add_many([(i, f"t/{i}", payload, contract.R_BAD_JSON, "again")])
    assert store_disk_bytes(tmp_path / "d.sqlite") < 2 * budget + 64 * 1024


def test_one_batch_bigger_than_the_budget_keeps_its_newest(tmp_path):
    store = DeadLetterStore(tmp_path / "d.sqlite", max_bytes=100 * 1024)
    store.add_many([(i, "t", b"y" * 20_000, contract.R_BAD_JSON, "") for i in range(20)])
    kept = [r.received_ms for r in store.list(limit=100)]
    assert kept == sorted(kept, reverse=True) and kept[0] == 19 and store.bytes <= 100 * 1024
    assert store.evicted == 20 - len(kept)


def test_oversized_payload_is_stored_truncated_with_its_size(tmp_path):
    store = DeadLetterStore(tmp_path / "d.sqlite")
    big = b"z" * (contract.MAX_PAYLOAD_BYTES * 4)
    store.add_many([(1, "t", big, contract.R_TOO_LARGE, "too big")])
    (row,) = store.list()
    assert row.size == len(big) and len(row.payload) == contract.MAX_PAYLOAD_BYTES and row.truncated
    assert row.payload == big[:contract.MAX_PAYLOAD_BYTES]


def test_reason_filter_matches_any_of_a_rows_reasons(tmp_path):
    store = DeadLetterStore(tmp_path / "d.sqlite")
    both = f"{contract.R_UNKNOWN_METRIC},{contract.R_NON_FINITE}"
    store.add_many([(1, "t", b"{}", both, ""), (2, "t", b"{}", contract.R_BAD_JSON, "")])
    assert store.count(contract.R_NON_FINITE) == 1 and store.count(contract.R_BAD_JSON) == 1
    assert store.list(reason=contract.R_UNKNOWN_METRIC)[0].reasons == both.split(",")
    assert store.counts_by_reason() == {contract.R_UNKNOWN_METRIC: 1, contract.R_NON_FINITE: 1, contract.R_BAD_JSON: 1}


def test_budget_setting_from_environment_and_file(tmp_path):
    assert load_settings(env={}).deadletter_max_bytes == 256 * 1024**2
    assert load_settings(env={"VW_DEADLETTER_MAX_BYTES": "1048576"}).deadletter_max_bytes == 1048576
    cfg = tmp_path / "c.yaml"
    cfg.write_text("deadletter_max_bytes: 2097152\n")
    assert load_settings(cfg, env={}).deadletter_max_bytes == 2097152


def unknown_metric_flood(n: int, now_ms: int) -> list[tuple[str, bytes]]:
    """~64 KiB messages, each with thousands of metric names the registry does not know."""
    out = []
    for i in range(n):
        metrics = {f"m{j:05d}": 1 for j in range(5_500)}
        body = json.dumps({"ts": now_ms - 5_000, "seq": i, "metrics": metrics}, separators=(",", ":")).encode()
        assert len(body) <= contract.MAX_PAYLOAD_BYTES
        out.append((contract.telemetry_topic(COMMUNE, f"tram-lu-{i % 5}"), body))
    return out


def test_unknown_metric_flood_stays_under_budget_and_valid_readings_land(stack, ingest_factory):
    budget = 1024 * 1024
    ingest = ingest_factory(extra_env={"VW_DEADLETTER_MAX_BYTES": str(budget)})
    now_ms = int(time.time() * 1000)
    flood = unknown_metric_flood(60, now_ms)  # ~4 MB of payload, 330,000 rejected metrics
    valid = [contract.Reading(COMMUNE, f"tram-tot-{i % 10}", now_ms - 600_000 + i * 1000, i, {"ph": 7.0})
             for i in range(300)]
    with Publisher(stack.mqtt_url) as pub:
        for i, r in enumerate(valid):
            pub.publish(r.topic, r.to_payload())
            if i % 5 == 0:
                pub.publish(*flood[i // 5])
        pub.wait_acked()
    eventually(lambda: count_points(stack) >= 300, 30, "all 300 valid readings in InfluxDB")
    assert count_points(stack) == 300
    eventually(lambda: "vw_ingest_inflight_messages 0" in ingest.metrics_text(), 30, "nothing inflight")
    store_path = ingest.data_dir / "ingest" / "villagewatch-ingest" / "deadletter.sqlite"
    store = DeadLetterStore(store_path, max_bytes=budget)
    rows = store.list(limit=1000)
    # one row per message, never one per metric; the newest kept, the rest evicted and counted
    assert 0 < len(rows) < len(flood) and store.bytes <= budget
    assert all(r.reason == contract.R_UNKNOWN_METRIC and "more" in r.detail for r in rows)
    assert {r.payload for r in rows} <= {p for _, p in flood}
    text = ingest.metrics_text()
    assert f"vw_ingest_deadletter_evicted_total {len(flood) - len(rows)}" in text
    assert store_disk_bytes(store_path) < 3 * budget
