"""Issue #11 §4: property test of the pipeline — every message is written exactly or dead-lettered
with a reason, and none is held forever, whatever the writer does.

The writer is a fake, on purpose: this is a unit test of the pipeline's logic (batching, retry,
spool, bisection of refused lines, acknowledgements) under writer behaviours a real InfluxDB cannot
be made to produce on demand — fail the next N writes then recover, refuse exactly these lines.
The stores are the real SQLite ones (in a temporary folder). Real-database runs of the same paths:
tests/test_ingest_pipeline.py, test_ingest_health.py, test_ingest_poison.py.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.pipeline import Pipeline
from ingest.stores import DeadLetterStore, WriteSpool
from ingest.writer import WriteError
from villagewatch import contract, lineproto

COMMUNE = "xa"
REFUSED_STATION = "refused"  # the fake database refuses every line of this station (HTTP 400)


class FakeWriter:
    """Down (connection refused, ping fails) for ``down_for_s`` from its first write, then up.

    A body holding a line of REFUSED_STATION is refused whole with a 400 and nothing of it is
    stored (InfluxDB 1.x would store the other lines; the pipeline must not rely on either).
    """

    def __init__(self, down_for_s: float):
        self.down_for_s = down_for_s
        self.first_write: float | None = None
        self.lines: list[bytes] = []

    def _down(self) -> bool:
        if self.first_write is None:
            self.first_write = time.monotonic()
        return time.monotonic() - self.first_write < self.down_for_s

    async def write(self, body: bytes) -> None:
        await asyncio.sleep(0)
        if self._down():
            raise WriteError("connection refused (fake)", True)
        lines = body.split(b"\n")
        if any(f"station={REFUSED_STATION}".encode() in line for line in lines):
            raise WriteError("400 field type conflict (fake)", False, 400)
        self.lines.extend(lines)

    async def ping(self) -> bool:
        return not self._down()


NOW_MS = int(time.time() * 1000)


@st.composite
def message(draw, index: int):
    """(topic, payload, expectation): 'write' with its line(s), or 'dead' with reasons."""
    kind = draw(st.sampled_from(["valid"] * 6 + ["partial", "refused", "bad_json", "surrogate", "duplicate",
                                                   "bad_ts", "deep", "bad_topic", "status", "bad_status"]))
    station = f"s{draw(st.integers(0, 4))}"
    ts = NOW_MS - 3_600_000 + index
    metrics = {"ph": draw(st.floats(0, 14)), "do": draw(st.floats(0, 25))}
    body = {"ts": ts, "seq": index, "metrics": metrics}
    topic = contract.telemetry_topic(COMMUNE, station)

    def line(st_id: str, good: dict) -> bytes:
        return lineproto.telemetry_line(contract.Reading(COMMUNE, st_id, ts, index, good)).encode()

    if kind == "valid":
        return topic, json.dumps(body).encode(), ("write", [line(station, metrics)], [])
    if kind == "partial":
        payload = json.dumps({**body, "metrics": {**metrics, "rain": -1.0, "xyz": 1}}).encode()
        return topic, payload, ("write", [line(station, metrics)], [contract.R_OUT_OF_RANGE, contract.R_UNKNOWN_METRIC])
    if kind == "refused":
        topic = contract.telemetry_topic(COMMUNE, REFUSED_STATION)
        return topic, json.dumps(body).encode(), ("dead", [contract.R_DB_REJECTED], line(REFUSED_STATION, metrics))
    if kind == "status":
        topic = contract.station_status_topic(COMMUNE, station)
        payload = json.dumps({"online": True, "ts": ts, "rssi": -70}).encode()
        expected = f"station_status,commune={COMMUNE},station={station} online=true,rssi=-70.0 {ts}".encode()
        return topic, payload, ("write", [expected], [])
    payload, reason = {
        "bad_json": (b'{"ts": 1, "seq"', contract.R_BAD_JSON),
        "surrogate": (json.dumps({**body, "flags": {"ph": ["\ud800"]}}).encode(), contract.R_BAD_UTF8),
        "duplicate": (json.dumps(body).encode()[:-1] + b', "seq": 7}', contract.R_BAD_JSON),
        "bad_ts": (json.dumps({**body, "ts": "2026-05-28 20:26:39+07:00"}).encode(), contract.R_BAD_TYPE),
        "deep": (json.dumps({**body, "x": [[[[[1]]]]]}).encode(), contract.R_BAD_JSON),
        "bad_topic": (json.dumps(body).encode(), contract.R_BAD_TOPIC),
        "bad_status": (b'{"online": "yes", "ts": 1}', contract.R_BAD_STATUS),
    }[kind]
    if kind == "bad_topic":
        topic = f"vw/v1/{COMMUNE}/BAD STATION/telemetry"
    if kind == "bad_status":
        topic = contract.station_status_topic(COMMUNE, station)
    return topic, payload, ("dead", [reason], None)


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 60))
    messages = [draw(message(i)) for i in range(n)]
    # the database down for this long from the first write (longer than 3 attempts: spooled)
    return messages, draw(st.sampled_from([0.0, 0.0, 0.15, 0.8])), draw(st.integers(1, 25))


async def run(messages, down_for_s: float, batch_max_points: int, folder: Path):
    writer = FakeWriter(down_for_s)
    dead = DeadLetterStore(folder / "dead.sqlite")
    spool = WriteSpool(folder / "spool.sqlite")
    acked: list[int] = []
    p = Pipeline(writer, dead, spool, batch_max_points=batch_max_points, batch_max_age_s=0.05,
                 on_durable=acked.extend)
    p.start()
    for i, (topic, payload, _) in enumerate(messages):
        p.submit(topic, payload, token=i)
        if i % 7 == 0:
            await asyncio.sleep(0)  # let batches age and commit while messages still arrive
    # never held forever: every message is acknowledged, and the spool is empty, within a deadline
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while (len(acked) < len(messages) or spool.batches) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    held = p.oldest_unacked_age_s()
    await p.close()
    rows = dead.list(limit=10_000)
    dead.close()
    spool_left = spool.batches
    spool.close()
    return writer, rows, acked, held, spool_left, p.metrics


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_every_message_is_written_exactly_or_dead_lettered_and_none_is_held(case):
    messages, down_for_s, batch_max_points = case
    with tempfile.TemporaryDirectory() as folder:
        writer, rows, acked, held, spool_left, metrics = asyncio.run(
            run(messages, down_for_s, batch_max_points, Path(folder)))
    assert sorted(acked) == list(range(len(messages))), "each message acknowledged exactly once"
    assert spool_left == 0 and held == 0 and metrics.inflight == 0
    written = set(writer.lines)
    expected_lines = {ln for _, _, exp in messages if exp[0] == "write" for ln in exp[1]}
    assert written == expected_lines, "exactly the good readings are written, nothing else"
    by_message = {}
    for row in rows:
        by_message.setdefault((row.topic, row.payload), []).append(row)
    for topic, payload, exp in messages:
        reasons = exp[1] if exp[0] == "dead" else exp[2]
        if not reasons:
            assert (topic, payload) not in by_message
            continue
        # a refused line of a spooled batch is kept as the line (its message is no longer known)
        found = by_message.get((topic, payload)) or by_message.get(("influxdb:/write", exp[2] if exp[0] == "dead" else b""))
        assert found, f"{payload!r} neither written nor dead-lettered"
        assert sorted(found[0].reasons) == sorted(reasons) and found[0].detail
    # every row belongs to a generated message: nothing invented, one row per rejected message
    dead_expected = sum(1 for _, _, exp in messages if (exp[1] if exp[0] == "dead" else exp[2]))
    assert len(rows) == dead_expected
