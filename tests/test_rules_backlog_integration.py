"""Issue 11 §3 against real parts: an excursion hidden in an edge backlog, drained at 5 readings/s
while live readings flow, reaches the running alerts service (real Mosquitto and InfluxDB) as
exactly one alert with its own start, firing and end times."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import PondGateway, pond_only_sites, wait_for

from alerts.service import AlertService
from alerts.settings import AlertsConfig
from app.stack import free_port
from rules.rulepack import load_rule_packs
from villagewatch import contract
from villagewatch.config import load_settings

REPO = Path(__file__).resolve().parent.parent
STATION = "ao-ca-tra-a3"
MIN = 60_000



@pytest.mark.integration
def test_excursion_in_a_backlog_drained_while_live_readings_flow_gives_one_alert(stack, tmp_path):
    sites = pond_only_sites(STATION)
    commune = next(iter(sites))
    port = int(stack.mqtt_url.rsplit(":", 1)[1])

    seen: list[dict] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-backlog-watcher")
    watcher.on_message = lambda c, u, m: seen.append(json.loads(m.payload))
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.on_connect = lambda c, *a: c.subscribe(contract.ALERTS_SUBSCRIPTION, qos=1)
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    assert subscribed.wait(30)
    gateway = PondGateway(stack.mqtt_url, sites, STATION, "test-backlog-gateway")
    publish = gateway.publish

    async def scenario():
        config = AlertsConfig(public_url="http://127.0.0.1:8999", http_port=free_port(), secret=b"k" * 32)
        svc = AlertService(load_settings(env={**stack.env(), "VW_DATA_DIR": str(tmp_path)}), config, sites, load_rule_packs(),
                           tmp_path / "alerts.sqlite", client_id="alerts-backlog-test")
        await svc.start()
        try:
            await asyncio.wait_for(svc.connected.wait(), 60)
            now = int(time.time() * 1000)
            # the outage: 30 one-minute readings spooled at the edge; DO below 3 mg/L for 150 s
            # (readings at minutes 12, 13, 14 low; 14 + 2.5 min is after the next reading at 15)
            outage_start = now - 35 * MIN
            backlog = [(outage_start + i * MIN, 1.8 if 12 <= i <= 14 else 5.2) for i in range(30)]
            start, fired, end = backlog[12][0], backlog[14][0], backlog[15][0]
            # live-first: the gateway reconnects and sends live readings at once ...
            live_ts = now - 5 * MIN
            for k in range(3):
                publish(live_ts + k * 1000, 5.3)
            # ... then drains the spool oldest-first at 5 readings/s while live readings keep coming
            for i, (ts, do) in enumerate(backlog):
                publish(ts, do)
                if i % 5 == 4:
                    publish(int(time.time() * 1000), 5.3)
                await asyncio.sleep(0.2)  # the edge's drain rate (pacing, not synchronisation)
            last = int(time.time() * 1000)
            publish(last, 5.3)
            await wait_for(lambda: svc.engine.last_seen.get((commune, STATION)) == last, 15, "all readings evaluated")
            await wait_for(lambda: [m["state"] for m in seen] == ["firing", "resolved"], 10, "alert messages")
            ticks = time.monotonic()
            await wait_for(lambda: time.monotonic() - ticks > 1.0, 5, "a few more engine ticks")

            alerts = svc.store.history()
            assert len(alerts) == 1, alerts
            a = alerts[0]
            assert (a["rule"], a["state"]) == ("pond-do-low", "resolved")
            assert (a["started_ms"], a["fired_ms"], a["resolved_ms"]) == (start, fired, end)
            assert [m["state"] for m in seen] == ["firing", "resolved"]  # once each, no flapping
            assert seen[0]["ts"] == fired and seen[1]["ts"] == end
            assert svc.engine.rule_errors == {}
        finally:
            await svc.stop()

    try:
        asyncio.run(scenario())
    finally:
        watcher.loop_stop()
        gateway.close()
