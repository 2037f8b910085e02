"""Benchmark helpers: a count-only MQTT subscriber and a naive baseline ingest."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import urllib.parse
import urllib.request

from simulator.loadgen import _utf8, _varlen
from villagewatch.config import MqttUrl


class CountingSubscriber(asyncio.Protocol):
    """MQTT 3.1.1 subscriber at QoS 1 that only counts and acknowledges: the broker's ceiling."""

    def __init__(self) -> None:
        self.count = 0
        self._buf = bytearray()
        self._suback = asyncio.get_running_loop().create_future()
        self._connack = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def start(cls, url: str, topic: str, client_id: str = "vw-bench-counter") -> CountingSubscriber:
        u = MqttUrl.parse(url)
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, u.host, u.port)
        var = _utf8(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 600)
        body = var + _utf8(client_id.encode())
        proto.transport.write(b"\x10" + _varlen(len(body)) + body)
        await asyncio.wait_for(proto._connack, 10)
        sub = struct.pack("!H", 1) + _utf8(topic.encode()) + b"\x01"
        proto.transport.write(b"\x82" + _varlen(len(sub)) + sub)
        await asyncio.wait_for(proto._suback, 10)
        return proto

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        i, n = 0, len(buf)
        acks = []
        while True:
            if n - i < 2:
                break
            head = buf[i]
            # remaining length (varint)
            mult, length, j = 1, 0, i + 1
            while j < n:
                b = buf[j]
                length += (b & 0x7F) * mult
                mult *= 128
                j += 1
                if not b & 0x80:
                    break
            else:
                break
            if n - j < length:
                break
            kind = head >> 4
            if kind == 3:  # PUBLISH
                tlen = (buf[j] << 8) | buf[j + 1]
                if (head >> 1) & 3:
                    mid = buf[j + 2 + tlen:j + 4 + tlen]
                    acks.append(b"\x40\x02" + bytes(mid))
                self.count += 1
            elif kind == 2:
                self._connack.set_result(True)
            elif kind == 9:
                self._suback.set_result(True)
            i = j + length
        del buf[:i]
        if acks:
            self.transport.write(b"".join(acks))

    def close(self) -> None:
        self.transport.close()


class NaiveIngest:
    """The baseline the issue names: a paho callback writing each message to InfluxDB as it arrives."""

    def __init__(self, mqtt_url: str, influx_url: str, db: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from villagewatch import contract, lineproto
        self.written = 0
        self.url = f"{influx_url}/write?" + urllib.parse.urlencode({"db": db, "precision": "ms"})
        u = MqttUrl.parse(mqtt_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="vw-bench-naive")

        def on_message(client, userdata, msg) -> None:
            info = contract.parse_topic(msg.topic)
            d = contract.decode_telemetry(info.commune, info.station, msg.payload, int(time.time() * 1000))
            if d.reading is None:
                return
            body = lineproto.telemetry_line(d.reading).encode()
            with urllib.request.urlopen(urllib.request.Request(self.url, data=body, method="POST"), timeout=30):
                pass
            self.written += 1

        self._ready = threading.Event()
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(contract.TELEMETRY_SUBSCRIPTION, qos=1)
        self.client.connect(u.host, u.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("naive ingest did not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
