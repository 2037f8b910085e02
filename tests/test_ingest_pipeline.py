"""Pipeline edge cases against a real InfluxDB: a bug while handling a message never loses it."""

from __future__ import annotations

import asyncio
import json
import time

from ingest import pipeline as pipeline_mod
from ingest.pipeline import Pipeline
from ingest.stores import DeadLetterStore, WriteSpool
from ingest.writer import InfluxV1Writer
from villagewatch import contract
from villagewatch.sites import DEFAULT_SITES_DIR, SiteIndex, load_site

SITE = load_site(DEFAULT_SITES_DIR / "tan-thuan-dong.yaml")


def test_internal_error_keeps_the_message_in_the_dead_letter_store(stack, tmp_path, monkeypatch):
    now = int(time.time() * 1000)
    topic = contract.telemetry_topic("xa", "s1")
    good = json.dumps({"ts": now - 1000, "seq": 1, "metrics": {"ph": 7.1}}).encode()
    boom = json.dumps({"ts": now - 2000, "seq": 2, "metrics": {"ph": 7.2}}).encode()
    real_line = pipeline_mod.lineproto.telemetry_line

    def buggy_line(reading, kind=None):
        if reading.seq == 2:
            raise RuntimeError("simulated bug in the serializer")
        return real_line(reading, kind)

    monkeypatch.setattr(pipeline_mod.lineproto, "telemetry_line", buggy_line)
    acked: list[int] = []

    async def scenario() -> None:
        writer = InfluxV1Writer(stack.influx_url, stack.influx_db)
        await writer.start()
        dead = DeadLetterStore(tmp_path / "dead.sqlite")
        p = Pipeline(writer, dead, WriteSpool(tmp_path / "spool.sqlite"), on_durable=acked.extend)
        p.start()
        p.submit(topic, good, token=1)
        p.submit(topic, boom, token=2)
        await p.close()
        await writer.close()
        rows = dead.list()
        assert [(r.reason, r.payload) for r in rows] == [(contract.R_INTERNAL, boom)]
        assert "simulated bug" in rows[0].detail

    asyncio.run(scenario())
    assert sorted(acked) == [1, 2]  # both acknowledged — one written, one durable as a dead letter
    assert stack.query_values("SELECT ph FROM telemetry") == [[now - 1000, 7.1]]


def test_last_will_status_is_stored_when_it_arrives(stack, tmp_path):
    connect_time = int(time.time() * 1000) - 3_600_000  # the gateway connected an hour ago
    lwt = json.dumps({"online": False, "ts": connect_time, "gw": "gw-1", "reason": contract.STATUS_REASON_LWT}).encode()
    online = json.dumps({"online": True, "ts": connect_time + 60_000, "queue": {"depth": 3}}).encode()
    topic = contract.gateway_status_topic(SITE.commune, "gw-ao-nuoi")

    async def scenario() -> None:
        writer = InfluxV1Writer(stack.influx_url, stack.influx_db)
        await writer.start()
        p = Pipeline(writer, DeadLetterStore(tmp_path / "d.sqlite"), WriteSpool(tmp_path / "s.sqlite"),
                     sites=SiteIndex({SITE.commune: SITE}))
        p.start()
        p.submit(topic, online)
        p.submit(topic, lwt)
        await p.close()
        await writer.close()

    before = int(time.time() * 1000)
    asyncio.run(scenario())
    rows = stack.query_values('SELECT last("online") FROM gateway_status WHERE gateway = \'gw-ao-nuoi\'')
    assert rows[0][1] is False, "the latest state must be the offline one"
    assert rows[0][0] >= before
    # its stations are marked offline at the same moment (the gateway cannot say it for them)
    body = stack.influx_query('SELECT last("online") FROM station_status GROUP BY "station"', db=stack.influx_db)
    offline = {s["tags"]["station"] for s in body["results"][0]["series"] if s["values"][0][1] is False}
    assert offline == {s.id for s in SITE.stations_of("gw-ao-nuoi")}


def test_spool_drainer_survives_an_error_and_keeps_draining(stack, tmp_path):
    """An unexpected failure inside the drainer (here: the disk refusing one delete) must not end it:
    a dead drainer would leave spooled readings on disk forever."""
    now = int(time.time() * 1000)
    spool = WriteSpool(tmp_path / "s.sqlite")
    spool.put(f"telemetry,commune=xa,station=s1 ph=7.3,seq=1i {now - 5000}".encode(), 1)
    spool.put(f"telemetry,commune=xa,station=s1 ph=7.4,seq=2i {now - 4000}".encode(), 1)
    real_remove = spool.remove
    failed = {"n": 0}

    def flaky_remove(batch_id):
        if failed["n"] == 0:
            failed["n"] += 1
            raise OSError("disk I/O error")
        return real_remove(batch_id)

    spool.remove = flaky_remove

    async def scenario() -> None:
        writer = InfluxV1Writer(stack.influx_url, stack.influx_db)
        await writer.start()
        p = Pipeline(writer, DeadLetterStore(tmp_path / "d.sqlite"), spool)
        p.start()
        deadline = asyncio.get_running_loop().time() + 60  # a loaded machine: costs time only on failure
        while spool.batches and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await p.close()
        await writer.close()

    asyncio.run(scenario())
    assert failed["n"] == 1 and spool.batches == 0
    assert stack.query_values("SELECT ph FROM telemetry") == [[now - 5000, 7.3], [now - 4000, 7.4]]


def test_a_line_the_database_refuses_dead_letters_only_its_message(stack, tmp_path):
    """A real InfluxDB 400 (field type conflict) for one line: its message is dead-lettered with
    its own topic and payload, every other reading of the batch is written and acknowledged."""
    now = int(time.time() * 1000)
    status_topic = contract.station_status_topic("xa", "s9")
    first = json.dumps({"ts": now - 5000, "online": True, "note": 1}).encode()
    conflicting = json.dumps({"ts": now - 4000, "online": True, "note": "chữ"}).encode()
    telemetry = [(contract.telemetry_topic("xa", f"s{i % 5}"),
                  json.dumps({"ts": now - 100_000 + i, "seq": i, "metrics": {"ph": 7.0}}).encode())
                 for i in range(200)]
    acked: list[int] = []

    async def scenario() -> DeadLetterStore:
        writer = InfluxV1Writer(stack.influx_url, stack.influx_db)
        await writer.start()
        dead = DeadLetterStore(tmp_path / "dead.sqlite")
        p = Pipeline(writer, dead, WriteSpool(tmp_path / "spool.sqlite"), on_durable=acked.extend)
        p.start()
        p.submit(status_topic, first, token=-1)
        await p.flush()  # "note" is now a float field
        for i, (topic, payload) in enumerate(telemetry):
            p.submit(topic, payload, token=i)
            if i == 120:
                p.submit(status_topic, conflicting, token=10_000)
        await p.close()
        await writer.close()
        return dead

    dead = asyncio.run(scenario())
    rows = dead.list()
    assert [(r.topic, r.payload, r.reason) for r in rows] == [(status_topic, conflicting, contract.R_DB_REJECTED)]
    assert sorted(acked) == [-1, *range(200), 10_000]
    assert int(stack.query_values('SELECT count("seq") FROM "telemetry"')[0][1]) == 200
