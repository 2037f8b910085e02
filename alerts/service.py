"""``villagewatch alerts``: the alert service, separate from ingest (an alert fault never stops data
ingestion). It subscribes to the same topics as ingest, feeds the pure engine, records transitions in
SQLite, publishes each on ``vw/v1/{commune}/_alerts/{station}``, writes it to the InfluxDB
measurement ``alerts`` (Grafana annotations), queues notifications, and serves the inspector page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import web as aioweb

from alerts.notify import Dispatcher
from alerts.points import alert_line
from alerts.settings import AlertsConfig
from alerts.store import AlertStore
from alerts.web import create_app
from rules.engine import Engine, Transition
from rules.rulepack import RuleSet
from villagewatch import contract, storage
from villagewatch.config import Settings
from villagewatch.influx import InfluxClient, InfluxTarget
from villagewatch.mqtt import MqttOptions, paho_client
from villagewatch.sites import Site

log = logging.getLogger("villagewatch.alerts")


def now_ms() -> int:
    return int(time.time() * 1000)


class AlertService:
    def __init__(self, settings: Settings, config: AlertsConfig, sites: dict[str, Site], ruleset: RuleSet,
                 state_db: str | Path, client_id: str = "villagewatch-alerts"):
        self.settings, self.config, self.sites, self.ruleset = settings, config, sites, ruleset
        self.store = AlertStore(state_db)
        self.engine = Engine(ruleset, sites, open_keys=self.store.open_keys())
        self.dispatcher = Dispatcher(self.store, config)
        self.client_id = client_id
        self.queue: asyncio.Queue | None = None
        self.influx_lines: deque[str] = deque(maxlen=100_000)  # bounded: oldest dropped, logged
        self.influx = InfluxClient(InfluxTarget.from_settings(settings))  # v1 or v2, pooled session
        self.tasks: list[asyncio.Task] = []
        self.runner: aioweb.AppRunner | None = None
        self.mqtt: mqtt.Client | None = None
        self.connected = asyncio.Event()
        self.last_tick_ms = 0  # clock time of the latest completed tick (rules, reminders, escalations)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue(maxsize=50_000)
        await self.influx.start()
        try:
            await self.warm_up()
            self._start_mqtt()
            app = create_app(self.store, self.config, self.sites, on_change=self.publish_alert)
            self.runner = aioweb.AppRunner(app)
            await self.runner.setup()
            await aioweb.TCPSite(self.runner, self.config.http_host, self.config.http_port).start()
        except BaseException:  # a bad setting or a taken port: leave nothing open behind the message
            await self.stop()
            raise
        for coro in (self._consume(), self._ticker(), self.dispatcher.run(), self._influx_writer()):
            self.tasks.append(asyncio.create_task(coro))
        log.info("alerts service: %d open alert(s) restored; inspector page %s", len(self.store.open_keys()),
                 self.config.public_url)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for t in list(self.dispatcher.inflight.values()):
            t.cancel()
        if self.mqtt is not None:
            self.mqtt.disconnect()
            self.mqtt.loop_stop()
        if self.runner is not None:
            await self.runner.cleanup()
        await self._flush_influx()
        await self.influx.close()
        self.store.close()

    # ------------------------------------------------------------------ MQTT
    def _start_mqtt(self) -> None:
        opts = MqttOptions.from_settings(self.settings, self.client_id)  # CA, client certificate, auth
        url = opts.broker
        c = paho_client(opts, clean_session=False)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect_async(url.host, url.port, keepalive=30)
        c.loop_start()
        self.mqtt = c

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        client.subscribe([(contract.TELEMETRY_SUBSCRIPTION, 1), (contract.STATION_STATUS_SUBSCRIPTION, 1),
                          (contract.GATEWAY_STATUS_SUBSCRIPTION, 1)])
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (msg.topic, msg.payload))
        except RuntimeError:
            pass  # loop closed during shutdown

    async def _consume(self) -> None:
        while True:
            topic, payload = await self.queue.get()
            try:
                self.handle_message(topic, payload)
            except Exception:  # noqa: BLE001 - one bad message must not stop the service
                log.exception("alerts: message on %s", topic)

    def handle_message(self, topic: str, payload: bytes) -> None:
        try:
            info = contract.parse_topic(topic)
        except contract.TopicError:
            return
        if info.kind == "telemetry":
            decoded = contract.decode_telemetry(info.commune, info.station, payload, now_ms())
            if decoded.reading is not None:
                self.process(self.engine.feed(decoded.reading))
        elif info.kind == "gateway_status":
            try:
                status = contract.decode_status(payload)
            except ValueError as exc:
                log.info("bad gateway status on %s: %s", topic, exc)
                return
            self.process(self.engine.gateway_status(info.commune, info.gateway, status["online"], now_ms()))

    async def _ticker(self) -> None:
        while True:
            try:
                now = now_ms()
                self.process(self.engine.tick(now))
                for alert, kind in self.store.due(now, self.config.renotify_s, self.config.escalate_after_s):
                    self.store.enqueue(alert["id"], kind, self.reminder_targets(alert, kind), now)
                self.last_tick_ms = now
            except Exception:  # noqa: BLE001
                log.exception("alerts: tick")
            await asyncio.sleep(0.25)

    def reminder_targets(self, alert: dict[str, Any], kind: str) -> list[tuple[str, str]]:
        """Who gets a reminder or the escalation: the first list, plus the escalation list once the
        alert has been escalated (the escalation itself included)."""
        targets = self.config.targets(alert["commune"], alert["severity"])
        if kind == "escalation" or alert["escalated_ms"] is not None:
            targets += [t for t in self.config.targets(alert["commune"], alert["severity"], escalation=True)
                        if t not in targets]
        return targets

    # ------------------------------------------------------------------ transitions
    def process(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            targets = self.config.targets(tr.commune, tr.rule.severity)
            alert = self.store.apply(tr, targets, now_ms())
            if alert is not None:
                log.info("alert %s %s: %s", alert["id"], alert["state"], alert["message_vi"])
                self.publish_alert(alert)

    def publish_alert(self, alert: dict[str, Any]) -> None:
        """MQTT message and InfluxDB point for one lifecycle state of an alert."""
        state = alert["state"]
        ts = {"firing": alert["fired_ms"], "acknowledged": alert["acked_ms"],
              "resolved": alert["resolved_ms"]}.get(state) or now_ms()
        body = {
            "id": alert["id"], "rule": alert["rule"], "metric": alert["metric"], "value": alert["value"],
            "limit": alert["limit"], "severity": alert["severity"], "state": state, "ts": ts,
            "regulation": alert["regulation"], "table": alert["table"], "column": alert["column"],
            "unverified": bool(alert["unverified"]), "message_vi": alert["message_vi"],
            "message_en": alert["message_en"], "commune": alert["commune"], "station": alert["station"],
            "by": alert["acked_by"] if state == "acknowledged" else alert["resolved_by"] if state == "resolved" else None,
            "note": alert["ack_note"] if state == "acknowledged" else alert["resolve_note"] if state == "resolved" else None,
            "url": f"{self.config.public_url}/alert/{alert['id']}",
        }
        if self.mqtt is not None:
            self.mqtt.publish(contract.alerts_topic(alert["commune"], alert["station"]),
                              contract.encode_json(body), qos=1)
        if len(self.influx_lines) == self.influx_lines.maxlen:
            log.warning("InfluxDB unreachable for long: oldest alert point dropped (still in SQLite)")
        self.influx_lines.append(alert_line(
            commune=alert["commune"], station=alert["station"], rule=alert["rule"], severity=alert["severity"],
            state=state, ts_ms=int(ts), value=alert["value"], limit=alert["limit"], metric=alert["metric"] or "",
            message_vi=alert["message_vi"], message_en=alert["message_en"], regulation=alert["regulation"],
            alert_id=int(alert["id"]), note=body["note"]))

    # ------------------------------------------------------------------ InfluxDB
    async def _flush_influx(self) -> bool:
        if not self.influx_lines:
            return True
        batch = list(self.influx_lines)
        try:
            await self.influx.write("\n".join(batch).encode())
        except Exception as exc:  # noqa: BLE001 - kept and retried
            log.warning("alerts: InfluxDB write failed, %d point(s) kept: %s", len(batch), exc)
            return False
        for _ in batch:
            self.influx_lines.popleft()
        return True

    async def _influx_writer(self) -> None:
        while True:
            ok = await self._flush_influx()
            await asyncio.sleep(0.2 if ok else 2.0)

    async def warm_up(self) -> None:
        """Rebuild the engine's windows (longest 24 h) from InfluxDB, without firing on history."""
        hours = 25
        t = storage.Telemetry
        q = f'SELECT * FROM "{t.MEASUREMENT}" WHERE time > now() - {hours}h GROUP BY "{t.COMMUNE}", "{t.STATION}"'
        try:
            found = await self.influx.query(q, timeout_s=60)
        except Exception as exc:  # noqa: BLE001 - start without history rather than not at all
            log.warning("alerts: could not read history from InfluxDB (%s); windows start empty", exc)
            return
        n = 0
        for series in found:
            tags, cols = series.tags, series.columns
            for row in series.values:
                metrics = {c: float(v) for c, v in zip(cols, row, strict=True)
                           if c in contract.METRICS and isinstance(v, (int, float))}
                if metrics:
                    self.engine.remember(contract.Reading(tags.get(t.COMMUNE, ""), tags.get(t.STATION, ""),
                                                          int(row[0]), 0, metrics))
                    n += 1
        log.info("alerts: %d stored reading(s) loaded into the rule windows", n)
