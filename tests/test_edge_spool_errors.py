"""A gateway whose spool cannot be written for a while (disk full, I/O error) keeps its readings in
memory and writes them when the disk accepts again: nothing lost, no seq gap. Real Mosquitto; the
disk error is injected into the spool (a full disk cannot be made safely on a shared machine)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from conftest import eventually
from test_edge_gateway import Collector, write_site

from edge.gateway import Gateway, GatewayOptions
from villagewatch.config import MqttUrl
from villagewatch.sites import load_site


def test_spool_write_errors_keep_readings_in_memory_until_the_disk_recovers(stack, tmp_path: Path):
    site = load_site(write_site(tmp_path / "site.yaml", 3))
    opts = GatewayOptions(brokers=[MqttUrl.parse(stack.mqtt_url)], data_dir=tmp_path / "edge", speed=10,
                          status_interval_s=0.5)
    gw = Gateway(site, "gw-test", opts)
    real_append = gw.spool.append
    failures = {"left": 8}

    def flaky_append(readings):
        if failures["left"] > 0 and readings:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return real_append(readings)

    gw.spool.append = flaky_append
    collector = Collector(stack.mosquitto.port, "spool-errors-collector")

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        # readings are produced while the disk refuses (8 failed writes, retried each second)
        deadline = asyncio.get_running_loop().time() + 60
        while (failures["left"] > 0 or gw.pending) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert failures["left"] == 0 and not gw.pending, "the spool never recovered"
        assert gw.spool_errors == 8 and gw.memory_drops == 0
        produced = sum(s.readings for s in gw.sources)
        stop.set()
        await task
        return produced

    produced = asyncio.run(scenario())
    try:
        eventually(lambda: collector.total() >= produced, 30, "every reading published")
        for sid in site.stations:
            seqs = collector.seqs(sid)
            assert sorted(set(seqs)) == list(range(max(seqs) + 1)), f"{sid}: seq gap {seqs}"
        assert collector.total() >= produced
    finally:
        collector.client.loop_stop()
