"""Publish many contract messages at QoS 1 and wait for every PUBACK (tests, loadgen, benchmarks).

`mosquitto_pub -l -q 1` exits before delivering large inputs (../shared/reference/libraries.md),
so anything that must *count* deliveries publishes through this instead.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable

from villagewatch.mqtt import MqttOptions, paho_client


class Publisher:
    """A paho client with a bounded window of unacknowledged QoS 1 messages."""

    def __init__(self, mqtt_url: str, client_id: str | None = None, max_inflight: int = 1000):
        opts = MqttOptions.from_url(mqtt_url, client_id or f"vw-pub-{uuid.uuid4().hex[:8]}")
        url = opts.broker
        self.client = paho_client(opts)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._window = threading.Semaphore(max_inflight)
        self._lock = threading.Lock()
        self.acked = 0
        self.sent = 0
        self._connected = threading.Event()
        self.client.on_publish = self._on_publish
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.connect(url.host, url.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise TimeoutError(f"broker {url.redacted()} did not accept the connection")

    def _on_publish(self, client: object, userdata: object, mid: int, reason_code: object,
                    properties: object) -> None:
        with self._lock:
            self.acked += 1
        self._window.release()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if qos:
            self._window.acquire()
        self.client.publish(topic, payload, qos=qos, retain=retain)
        self.sent += 1
        if not qos:
            with self._lock:
                self.acked += 1

    def publish_all(self, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        n = 0
        for topic, payload in messages:
            self.publish(topic, payload, qos)
            n += 1
        return n

    def wait_acked(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.acked} of {self.sent} messages acknowledged by the broker")
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
