"""MQTT bridge: subscribe to devices on a local broker, map their payloads into the wire contract."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import paho.mqtt.client as mqtt

from edge.sources.base import Source
from edge.sources.mqtt_bridge.mapping import FORMATS, MappingError, map_esphome, map_json
from villagewatch.config import MqttUrl
from villagewatch.mqtt import MqttOptions, paho_client
from villagewatch.schema import Key, Map, OneOf, Str


class MqttBridgeSource(Source):
    type_name: ClassVar[str] = "mqtt_bridge"
    options_schema: ClassVar[Map] = Map([
        Key("broker", Str(r"mqtts?://.+", "mqtt:// URL"), required=False, default="mqtt://127.0.0.1:1883",
            doc="the broker the devices publish to (often the gateway's own)"),
        Key("format", OneOf(*FORMATS)),
        Key("topic", Str(what="MQTT topic"), required=False, default="",
            doc="tasmota/chirpstack: the device's topic; esphome: unused (fields are topics)"),
        Key("fields", Map([], extra=Str(what="field path or topic"), name="metric -> field"),
            doc="metric: field path (tasmota/chirpstack) or state topic (esphome)"),
        Key("ca_file", Str(what="file path"), required=False, default="",
            doc="mqtts://: the CA of the local broker (default: the system's CAs)"),
        Key("cert_file", Str(what="file path"), required=False, default="",
            doc="mqtts://: client certificate, when the local broker asks for one"),
        Key("key_file", Str(what="file path"), required=False, default="", doc="the key of cert_file"),
    ], name="mqtt_bridge source options")

    @classmethod
    def bus_key(cls, options: dict[str, Any]) -> str:
        return options["broker"]

    def __init__(self, key, bound, ctx):
        super().__init__(key, bound, ctx)
        self.url = MqttUrl.parse(key, "mqtt_bridge broker")
        self.routes: dict[str, list] = {}
        for b in bound:
            o = b.options
            topics = list(o["fields"].values()) if o["format"] == "esphome" else [o["topic"]]
            for t in topics:
                self.routes.setdefault(t, []).append(b)
        self.client: mqtt.Client | None = None

    async def run(self, sink) -> None:
        loop = asyncio.get_running_loop()

        def on_message(client, userdata, msg) -> None:
            loop.call_soon_threadsafe(self._handle, sink, msg.topic, msg.payload, self.ctx.now_ms())

        first = self.bound[0].options if self.bound else {}  # one bus: its first station's TLS files
        c = paho_client(MqttOptions((self.url,), f"vw-bridge-{id(self):x}", first.get("ca_file") or None,
                                    first.get("cert_file") or None, first.get("key_file") or None))
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(t, 1) for t in self.routes]) if not rc.is_failure else None
        c.on_message = on_message
        c.reconnect_delay_set(1, 10)
        c.connect_async(self.url.host, self.url.port)
        c.loop_start()
        self.client = c
        await asyncio.Event().wait()

    def _handle(self, sink, topic: str, payload: bytes, now_ms: int) -> None:
        for b in self.routes.get(topic, ()):
            o = b.options
            try:
                if o["format"] == "esphome":
                    ts, metrics = None, map_esphome(topic, payload, o["fields"])
                else:
                    ts, metrics = map_json(payload, o["fields"])
            except MappingError as exc:
                sink.error(self, b.station.id, "bad_payload", str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug here must not kill paho's network thread
                # (an exception escaping on_message stops the loop: every later message is lost)
                sink.error(self, b.station.id, "internal_error", f"{type(exc).__name__}: {exc}"[:200])
                continue
            if metrics:
                sink.reading(b.station.id, ts or now_ms, metrics)

    async def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
