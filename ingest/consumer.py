"""The ingest's MQTT client: a persistent MQTT v5 session that acknowledges only what is durable.

Library choice, measured on these machines (../shared/reference/libraries.md and bench/ingest.py):
gmqtt receives QoS 1 at ~63–75k msg/s natively in asyncio; paho-mqtt 2.2 with its own loop thread
~39k, and handing paho's messages to asyncio one by one halves that. gmqtt also gives the ack
control we need: with ``optimistic_acknowledgement=False`` it sends the PUBACK only when our
``on_message`` coroutine returns, i.e. after the pipeline says the message is durable.
paho-mqtt stays the client of the edge gateway and the tools (threads are fine there).

Redelivery after a reconnect keeps the packet id (MQTT session state), so a PUBACK sent for a
message of the previous connection still names that same message: late acks are harmless.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import gmqtt

from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from villagewatch import contract
from villagewatch.config import Settings

log = logging.getLogger("villagewatch.ingest.mqtt")

SESSION_NEVER_EXPIRES = 0xFFFFFFFF


def subscriptions(share_group: str | None) -> list[str]:
    topics = [contract.TELEMETRY_SUBSCRIPTION, contract.STATION_STATUS_SUBSCRIPTION,
              contract.GATEWAY_STATUS_SUBSCRIPTION]
    return [contract.shared_subscription(share_group, t) for t in topics] if share_group else topics


class MqttConsumer:
    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: IngestMetrics):
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        self.url = settings.mqtt
        self.client = gmqtt.Client(
            settings.ingest_client_id,
            clean_session=False,  # MQTT v5 clean start off: the broker keeps our queue while we are down
            optimistic_acknowledgement=False,
            session_expiry_interval=SESSION_NEVER_EXPIRES,
            receive_maximum=settings.ingest_inflight,  # backpressure: at most this many unacked
        )
        if self.url.username:
            self.client.set_auth_credentials(self.url.username, self.url.password)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = False

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.url.tls:
            return False
        ctx = ssl.create_default_context(cafile=self.settings.mqtt_ca_file)
        if self.settings.mqtt_cert_file:
            ctx.load_cert_chain(self.settings.mqtt_cert_file, self.settings.mqtt_key_file)
        return ctx

    async def start(self, stop: asyncio.Event) -> None:
        """Connect (retrying until the broker answers or ``stop`` is set) and subscribe."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self.client.connect(self.url.host, self.url.port, ssl=self._ssl(), keepalive=30)
                break
            except (TimeoutError, OSError, gmqtt.MQTTConnectError) as exc:
                log.warning("broker %s not reachable (%s); retrying in %.1f s", self.url.redacted(), exc, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)
        if stop.is_set():
            return
        self.client.subscribe([gmqtt.Subscription(t, qos=1) for t in subscriptions(self.settings.ingest_share_group)])
        log.info("subscribed on %s as %s", self.url.redacted(), self.settings.ingest_client_id)

    async def _on_message(self, client: gmqtt.Client, topic: str, payload: bytes, qos: int, properties: dict) -> int:
        await self.pipeline.submit(topic, payload)
        if qos:
            self.metrics.acked += 1
        return 0  # PUBACK reason: success — sent by gmqtt when this coroutine returns

    def _on_subscribe(self, client: gmqtt.Client, mid: int, qos: list, properties: dict) -> None:
        self.subscribed = True

    def _on_connect(self, client: gmqtt.Client, flags: int, rc: int, properties: dict) -> None:
        self.metrics.mqtt_connected = True

    def _on_disconnect(self, client: gmqtt.Client, packet: bytes, exc: Exception | None = None) -> None:
        self.metrics.mqtt_connected = False
        log.warning("disconnected from the broker; gmqtt reconnects by itself and resumes the session")

    @property
    def connected(self) -> bool:
        try:
            return bool(self.client.is_connected)
        except AttributeError:
            return False

    async def stop(self) -> None:
        if self.client._connection is not None:  # noqa: SLF001 - gmqtt has no public "ever connected"
            try:
                await asyncio.wait_for(self.client.disconnect(session_expiry_interval=SESSION_NEVER_EXPIRES), 5)
            except (TimeoutError, OSError, AttributeError):
                pass
