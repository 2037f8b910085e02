"""``villagewatch alerts``: the alert service, separate from ingest (an alert fault never stops data
ingestion). It subscribes to the same topics as ingest, feeds the pure engine, records transitions in
SQLite, publishes each on ``vw/v1/{commune}/_alerts/{station}``, writes it to the InfluxDB
measurement ``alerts`` (Grafana annotations), queues notifications, and serves the inspector page.

Intake (docs/alerts.md "Intake"): a persistent MQTT session (clean session off) with manual
acknowledgement. A QoS 1 message is acknowledged only after its reading has
been evaluated and the resulting transitions committed to SQLite; a crash before that leaves it
with the broker, which delivers it again (the store is idempotent for redelivered readings). The
intake is bounded by backpressure, never by dropping: at most ``intake_window`` messages are held
unacknowledged here; beyond that paho's network thread waits (alerts/intake.py) and the broker keeps
the rest queued in our session. Every connect checks "session present": without it the broker has
lost our subscriptions and queue — we subscribe again, log it, and count it in ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import web as aioweb

from alerts.intake import Delivery, Intake
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
from villagewatch.mqtt import MQTT_V311, MqttOptions, paho_client
from villagewatch.signin import AuthStore, auth_db_path
from villagewatch.sites import Site

log = logging.getLogger("villagewatch.alerts")

DEFAULT_CLIENT_ID = "villagewatch-alerts"
# Readings evaluated between two yields to the event loop (inspector page, ticker, notifications).
EVALUATION_CHUNK = 500
# The store's meta flag: this state file has had a broker session (a later connect without one
# means the session — and any queue it held — was lost, even across a restart of this service).
META_SESSION = "mqtt_session_established"
# The store's meta row: id of the last event whose InfluxDB point was written.
META_POINTS = "influx_points_written_upto_event"


def now_ms() -> int:
    return int(time.time() * 1000)


class AlertService:
    def __init__(self, settings: Settings, config: AlertsConfig, sites: dict[str, Site], ruleset: RuleSet,
                 state_db: str | Path, client_id: str = DEFAULT_CLIENT_ID):
        self.settings, self.config, self.sites, self.ruleset = settings, config, sites, ruleset
        self.store = AlertStore(state_db)
        # corrections (revised, retracted) are applied by the store (docs/alerts.md "Late data")
        self.engine = Engine(ruleset, sites, open_keys=self.store.open_keys(), emit_corrections=True)
        self.dispatcher = Dispatcher(self.store, config)
        self.client_id = client_id
        self.intake: Intake | None = None
        self.influx_lines: deque[str] = deque(maxlen=100_000)  # bounded: oldest dropped, logged
        self.influx = InfluxClient(InfluxTarget.from_settings(settings))  # v1 or v2, pooled session
        self.tasks: list[asyncio.Task] = []
        self.runner: aioweb.AppRunner | None = None
        self.mqtt: mqtt.Client | None = None
        self.connected = asyncio.Event()
        self.last_tick_ms = 0  # clock time of the latest completed tick (rules, reminders, escalations)
        # intake state, read by /healthz (written by paho's thread and the event loop)
        self.mqtt_connected = False
        self.subscribed = False
        self.sessions_lost = 0
        self.connection = 0  # bumped on every disconnect/reconnect: an ack is valid only on its connection
        self._ack_lock = threading.Lock()
        self.evaluated = 0  # messages evaluated (readings fed to the engine, statuses applied)
        self.acked = 0
        self.evaluation_errors = 0  # messages whose evaluation raised (a bug): logged, acknowledged
        self.store_retries = 0  # SQLite failures while persisting transitions (retried, not acked meanwhile)
        self._unrecorded_ticks: list[Transition] = []
        # whether the broker held a session for us last time (start() reads it from the store); set
        # here too so an on_connect that races start() never meets a missing attribute
        self._had_session = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.intake = Intake(self.loop, self.config.intake_window)
        self._had_session = self.store.get_meta(META_SESSION) == "1"
        await self.influx.start()
        try:
            await self.warm_up()
            self.rewrite_unwritten_points()
            self._start_mqtt()
            # accounts and sessions shared with the portal: <data_dir>/auth.sqlite, as the portal opens it
            app = create_app(self.store, self.config, self.sites, on_change=self.publish_alert,
                             auth=AuthStore(auth_db_path(self.settings.data_dir)))
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/metrics", self._metrics)
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
        if self.intake is not None:
            self.intake.close()  # a network thread waiting for room returns; its message stays unacked
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
        # MQTT 3.1.1 on purpose: paho parses MQTT v5 properties on every PUBLISH, which made the
        # intake ~4x slower here (docs/performance.md "Alerts"); 3.1.1 has all we need — a
        # persistent session (clean session off; kept by the broker up to its
        # persistent_client_expiration) and the session-present flag. Its missing Receive
        # Maximum is no loss: the waiting network thread is what bounds us (alerts/intake.py).
        opts = MqttOptions.from_settings(self.settings, self.client_id)  # CA, client certificate, auth
        url = opts.broker
        c = paho_client(opts, protocol=MQTT_V311, clean_session=False, manual_ack=True)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_pre_connect = self._on_pre_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.connect_async(url.host, url.port, keepalive=30)
        c.loop_start()
        self.mqtt = c

    def _new_connection(self) -> None:
        with self._ack_lock:
            self.connection += 1

    def _on_pre_connect(self, client, userdata) -> None:
        self._new_connection()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._new_connection()
        self.mqtt_connected = False
        self.subscribed = False
        log.warning("disconnected from the broker (%s); unacknowledged messages stay in our session", reason_code)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        self.mqtt_connected = True
        if not flags.session_present:
            if self._had_session:
                # the broker lost our session (a clean-start login with our client id, a broker
                # restarted without persistence, expiry): its queue is gone, subscriptions too
                self.sessions_lost += 1
                log.warning("broker has no session for %s: subscribing again (lost sessions: %d)",
                            self.client_id, self.sessions_lost)
            else:
                log.info("no broker session yet for %s: creating it", self.client_id)
        # Subscribe on every connect, even with a session present: cheap, and a session created by
        # someone else with our id holds no subscriptions. (The broker then sends retained gateway
        # statuses again: each is that gateway's current state, so feeding it again is harmless.)
        client.subscribe([(contract.TELEMETRY_SUBSCRIPTION, 1), (contract.STATION_STATUS_SUBSCRIPTION, 1),
                          (contract.GATEWAY_STATUS_SUBSCRIPTION, 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("broker refused the subscriptions: %s (check the ACL of %s)",
                      [str(rc) for rc in reason_codes], self.client_id)
            return
        self.subscribed = True
        if not self._had_session:
            self._had_session = True
            # the store belongs to the event loop's thread
            self.loop.call_soon_threadsafe(self.store.set_meta, META_SESSION, "1")
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_message(self, client, userdata, msg) -> None:
        """paho's network thread. Blocks while the intake is full (backpressure, see alerts/intake.py)."""
        try:
            delivery = Delivery(msg.topic, msg.payload, msg.mid, msg.qos, self.connection)
        except UnicodeDecodeError:  # a topic that is not UTF-8: no reading of ours, acknowledge it
            self._ack_now(msg.mid, msg.qos)
            return
        try:
            self.intake.put(delivery)
        except Exception:  # noqa: BLE001 - never let an exception kill paho's thread
            log.exception("alerts: intake")

    def _ack_now(self, mid: int, qos: int) -> None:
        if qos and self.mqtt is not None:
            self.mqtt.ack(mid, qos)

    def _ack(self, d: Delivery) -> None:
        """PUBACK once the message is evaluated and persisted. Only on the connection that delivered
        it: after a reconnect the broker delivers it again (session present, same packet id) or has
        lost it (session gone) — an old packet id on a new connection could name another message."""
        if not d.qos or self.mqtt is None:
            return
        with self._ack_lock:
            if d.connection != self.connection:
                return
            self.mqtt.ack(d.mid, d.qos)
        self.acked += 1

    async def _consume(self) -> None:
        while True:
            batch = await self.intake.take()
            for i in range(0, len(batch), EVALUATION_CHUNK):
                chunk = batch[i:i + EVALUATION_CHUNK]
                for d in chunk:
                    await self._evaluate(d)
                    self._ack(d)
                self.intake.done(len(chunk))
                await asyncio.sleep(0)

    async def _evaluate(self, d: Delivery) -> None:
        try:
            transitions = self.evaluate(d.topic, d.payload)
        except Exception:  # noqa: BLE001 - a bug on one message must not stop the service
            self.evaluation_errors += 1
            log.exception("alerts: message on %s", d.topic)
            return
        self.evaluated += 1
        delay = 0.5
        while True:
            try:
                self.process(transitions)
                return
            except sqlite3.Error as exc:
                # the state file cannot take the transitions (disk full, locked, I/O): keep the
                # message unacknowledged and retry — the intake fills and the broker holds the rest
                self.store_retries += 1
                log.error("alerts: cannot record %d transition(s) (%s); retrying in %.1f s",
                          len(transitions), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def evaluate(self, topic: str, payload: bytes) -> list[Transition]:
        """The transitions one MQTT message causes (nothing recorded yet)."""
        try:
            info = contract.parse_topic(topic)
        except contract.TopicError:
            return []
        if info.kind == "telemetry":
            decoded = contract.decode_telemetry(info.commune, info.station, payload, now_ms())
            if decoded.reading is not None:
                return self.engine.feed(decoded.reading)
        elif info.kind == "gateway_status":
            try:
                status = contract.decode_status(payload)
            except ValueError as exc:
                log.info("bad gateway status on %s: %s", topic, exc)
                return []
            return self.engine.gateway_status(info.commune, info.gateway, status["online"], now_ms())
        return []

    def handle_message(self, topic: str, payload: bytes) -> None:
        """Evaluate one message and record its transitions (synchronously; tests, tools)."""
        self.process(self.evaluate(topic, payload))

    async def _ticker(self) -> None:
        while True:
            try:
                now = now_ms()
                # clock-driven transitions (silence, gateway offline, daily AQI) are produced once:
                # kept until recorded, so a failing store delays them instead of losing them
                self._unrecorded_ticks.extend(self.engine.tick(now))
                while self._unrecorded_ticks:
                    self.process(self._unrecorded_ticks[:1])
                    del self._unrecorded_ticks[0]
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

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        intake = self.intake
        oldest = round(intake.oldest_age_s(), 3) if intake else 0.0
        rule_errors = getattr(self.engine, "rule_errors", None)  # the engine's count, once it has one
        if isinstance(rule_errors, dict):
            rule_errors = sum(rule_errors.values())
        problems = []
        if not self.mqtt_connected:
            problems.append("not connected to the broker")
        elif not self.subscribed:
            problems.append("not subscribed")
        if oldest > self.config.stall_after_s:
            problems.append(f"oldest unacknowledged message waits {oldest:.0f} s (evaluation stalled)")
        return {
            "healthy": not problems, "problems": problems, "client_id": self.client_id,
            "connected": self.mqtt_connected, "subscribed": self.subscribed, "sessions_lost": self.sessions_lost,
            "queue_depth": intake.depth if intake else 0,
            "intake_window": self.config.intake_window,
            "oldest_unacked_age_s": oldest,
            "intake_waits": intake.waits if intake else 0,
            "evaluated": self.evaluated, "acked": self.acked,
            "evaluation_errors": self.evaluation_errors, "store_retries": self.store_retries,
            "rule_errors": rule_errors,
            "last_tick_age_s": round(max(0, now_ms() - self.last_tick_ms) / 1000, 3) if self.last_tick_ms else None,
        }

    async def _healthz(self, request: aioweb.Request) -> aioweb.Response:
        h = self.health()
        return aioweb.json_response(h, status=200 if h["healthy"] else 503)

    async def _metrics(self, request: aioweb.Request) -> aioweb.Response:
        h = self.health()
        lines = []
        for name, key, kind in (
                ("vw_alerts_connected", "connected", "gauge"), ("vw_alerts_subscribed", "subscribed", "gauge"),
                ("vw_alerts_sessions_lost_total", "sessions_lost", "counter"),
                ("vw_alerts_queue_depth", "queue_depth", "gauge"),
                ("vw_alerts_oldest_unacked_age_seconds", "oldest_unacked_age_s", "gauge"),
                ("vw_alerts_intake_waits_total", "intake_waits", "counter"),
                ("vw_alerts_evaluated_total", "evaluated", "counter"), ("vw_alerts_acked_total", "acked", "counter"),
                ("vw_alerts_evaluation_errors_total", "evaluation_errors", "counter"),
                ("vw_alerts_store_retries_total", "store_retries", "counter"),
                ("vw_alerts_rule_errors_total", "rule_errors", "counter")):
            value = h[key]
            if value is None:
                continue
            lines += [f"# TYPE {name} {kind}", f"{name} {float(value):g}"]
        return aioweb.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    # ------------------------------------------------------------------ transitions
    def process(self, transitions: list[Transition]) -> None:
        """Record the transitions of one engine call (one message or tick) in one go: a firing and
        its resolve from the same call are one historical episode (alerts/store.py ``apply_all``)."""
        if not transitions:
            return
        published = self.store.apply_all(transitions, lambda tr: self.config.targets(tr.commune, tr.rule.severity),
                                         now_ms())
        for alert, state in published:
            log.info("alert %s %s%s: %s", alert["id"], state, " (late)" if alert["late"] else "", alert["message_vi"])
            self.publish_alert(alert, state)

    def publish_alert(self, alert: dict[str, Any], state: str | None = None) -> None:
        """MQTT message and InfluxDB point for one lifecycle state of an alert (default: its current one)."""
        state = state or alert["state"]
        ts = {"firing": alert["fired_ms"], "acknowledged": alert["acked_ms"],
              "resolved": alert["resolved_ms"], "retracted": alert["retracted_ms"]}.get(state) or now_ms()
        body = {
            "id": alert["id"], "rule": alert["rule"], "metric": alert["metric"], "value": alert["value"],
            "limit": alert["limit"], "severity": alert["severity"], "state": state, "ts": ts,
            "regulation": alert["regulation"], "table": alert["table"], "column": alert["column"],
            "unverified": bool(alert["unverified"]), "late": bool(alert["late"]),
            "started_ms": alert["started_ms"], "message_vi": alert["message_vi"],
            "message_en": alert["message_en"], "commune": alert["commune"], "station": alert["station"],
            "by": alert["acked_by"] if state == "acknowledged" else alert["resolved_by"] if state == "resolved" else None,
            "note": alert["ack_note"] if state == "acknowledged" else alert["resolve_note"] if state == "resolved" else None,
            "url": f"{self.config.public_url}/alert/{alert['id']}",
        }
        if self.mqtt is not None:
            self.mqtt.publish(contract.alerts_topic(alert["commune"], alert["station"]),
                              contract.encode_json(body), qos=1)
        self._queue_point(alert, state, int(ts))

    def _queue_point(self, alert: dict[str, Any], state: str, ts_ms: int) -> None:
        if len(self.influx_lines) == self.influx_lines.maxlen:
            log.warning("InfluxDB unreachable for long: oldest alert point dropped (still in SQLite)")
        note = alert["ack_note"] if state == "acknowledged" else alert["resolve_note"] if state == "resolved" else None
        if state == "retracted":
            # dashboards count an alert open until its last state is 'resolved' (dashboards/queries.py
            # ALERT_OPEN): a withdrawn alert is closed there, its withdrawal said in the note
            state, note = "resolved", "rút lại: dữ liệu đến muộn cho thấy cảnh báo không xảy ra / retracted (late data)"
        self.influx_lines.append(alert_line(
            commune=alert["commune"], station=alert["station"], rule=alert["rule"], severity=alert["severity"],
            state=state, ts_ms=ts_ms, value=alert["value"], limit=alert["limit"], metric=alert["metric"] or "",
            message_vi=alert["message_vi"], message_en=alert["message_en"], regulation=alert["regulation"],
            alert_id=int(alert["id"]), note=note))

    def rewrite_unwritten_points(self) -> int:
        """Queue again the InfluxDB points of state changes recorded after the last successful write.

        A crash between the SQLite commit of a transition and the InfluxDB write (batched every
        0.2 s) would otherwise lose its Grafana annotation. The store keeps the id of the last
        event whose point reached InfluxDB; writing a point twice changes nothing (same series and
        timestamp: InfluxDB overwrites)."""
        mark = self.store.get_meta(META_POINTS)
        if mark is None:  # a state file from before this mark: start counting now
            self.store.set_meta(META_POINTS, str(self.store.last_event_id()))
            return 0
        n = 0
        for event, alert in self.store.events_after(int(mark), limit=self.influx_lines.maxlen):
            if event["state"] == "revised":
                continue  # a correction of times, published with the alert's state, not a state of its own
            self._queue_point(alert, event["state"], int(event["ts_ms"]))
            n += 1
        if n:
            log.info("alerts: %d alert point(s) not confirmed written before the last stop, queued again", n)
        return n

    # ------------------------------------------------------------------ InfluxDB
    async def _flush_influx(self) -> bool:
        if not self.influx_lines:
            return True
        batch = list(self.influx_lines)
        # every event committed so far has its line in this batch or an earlier one (transitions
        # are committed and queued in one step of the event loop)
        upto = self.store.last_event_id()
        try:
            await self.influx.write("\n".join(batch).encode())
        except Exception as exc:  # noqa: BLE001 - kept and retried
            log.warning("alerts: InfluxDB write failed, %d point(s) kept: %s", len(batch), exc)
            return False
        for _ in batch:
            self.influx_lines.popleft()
        self.store.set_meta(META_POINTS, str(upto))
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
