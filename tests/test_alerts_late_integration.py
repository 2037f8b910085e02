"""Late data against the running alerts service (real Mosquitto and InfluxDB, ``stack`` fixture):
an excursion in a backlog older than the lateness bound becomes one alert row marked late with its
true start and end and one notification; delivering the same backlog again — to the running
service, and after a restart on the same state file — adds no row and no notification."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conftest import PondGateway, pond_only_sites, wait_for

from alerts.service import AlertService
from alerts.settings import AlertsConfig
from app.stack import free_port
from rules.engine import LATENESS_MS
from rules.rulepack import load_rule_packs
from villagewatch.config import load_settings

REPO = Path(__file__).resolve().parent.parent
STATION = "ao-ca-tra-a3"
MIN = 60_000
# notifications go to a port nobody listens on: they stay in the outbox, where they are counted
ROUTES = [{"communes": ["*"], "min_severity": "info", "notify": ["webhook:http://127.0.0.1:9/hook"]}]



@pytest.mark.integration
def test_late_backlog_gives_one_late_alert_one_notification_and_redelivery_adds_nothing(stack, tmp_path):
    sites = pond_only_sites(STATION)
    commune = next(iter(sites))
    gateway = PondGateway(stack.mqtt_url, sites, STATION, "test-late-gateway")
    publish = gateway.publish

    now = int(time.time() * 1000) // MIN * MIN
    old = now - LATENESS_MS - 2 * 3_600_000  # two hours beyond the bound: historical
    backlog = [(old + i * MIN, 1.8 if 3 <= i <= 6 else 5.2) for i in range(12)]
    start, end = backlog[3][0], backlog[7][0]

    def do_alerts(svc: AlertService) -> list[dict]:
        return [a for a in svc.store.history() if a["rule"] == "pond-do-low"]

    async def run_once(deliver_live_from: int) -> tuple[list[dict], list[dict]]:
        config = AlertsConfig(public_url="http://127.0.0.1:8999", http_port=free_port(), secret=b"k" * 32,
                              routes=ROUTES, retry_backoff_s=3600)
        svc = AlertService(load_settings(env={**stack.env(), "VW_DATA_DIR": str(tmp_path)}), config, sites, load_rule_packs(),
                           tmp_path / "alerts.sqlite", client_id="alerts-late-test")
        await svc.start()
        try:
            await asyncio.wait_for(svc.connected.wait(), 60)
            for k in range(3):  # live readings first (the edge's live-first replay), in range
                publish(deliver_live_from + k * 1000, 5.3)
            for n in range(2):  # the backlog, then the same backlog again (a redelivery)
                for ts, do in backlog:
                    publish(ts, do)
                # one message after the backlog, on the same topic: once it is evaluated, so is the backlog
                marker = deliver_live_from + 10_000 + n * 1000
                publish(marker, 5.3)
                await wait_for(lambda m=marker: svc.engine.last_seen.get((commune, STATION)) == m, 15,
                               "backlog evaluated")
            return do_alerts(svc), [n for a in do_alerts(svc) for n in svc.store.notifications(a["id"])]
        finally:
            await svc.stop()

    try:
        alerts, notes = asyncio.run(run_once(now - 2 * MIN))
        assert len(alerts) == 1, alerts
        a = alerts[0]
        assert (a["late"], a["state"], a["started_ms"], a["resolved_ms"]) == (1, "resolved", start, end)
        assert [n["event"] for n in notes] == ["historical"]
        # a restart on the same state file (the engine forgets everything) and the backlog once more
        alerts, notes = asyncio.run(run_once(now - MIN))
        assert [(x["id"], x["started_ms"], x["resolved_ms"]) for x in alerts] == [(a["id"], start, end)]
        assert [n["event"] for n in notes] == ["historical"]
    finally:
        gateway.close()
