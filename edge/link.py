"""The gateway's MQTT link: paho-mqtt in its own network thread, QoS 1, LWT, failover, TLS.

paho runs ``loop_start()`` (its own thread) and reconnects by itself; after a reconnect it re-sends
the QoS 1 messages still waiting for PUBACK. The gateway's event loop only calls ``publish`` and
reads ``acks`` (mids whose PUBACK arrived), so the spool is touched by one thread only.

Failover: after ``failover_after`` failed attempts on a broker, the next URL of the list is tried
(round robin). All brokers share one TLS setting (CA file, client certificate).
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from edge.console import Console, connect_failed, reason
from villagewatch.config import MqttUrl
from villagewatch.errors import ConfigUserError
from villagewatch.mqtt import MqttOptions, paho_client

log = logging.getLogger("edge.link")


class Link:
    def __init__(self, brokers: list[MqttUrl], client_id: str, will_topic: str, will_payload: bytes,
                 window: int = 500, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, reconnect_max_s: int = 5, failover_after: int = 3,
                 keepalive: int = 30, console: Console | None = None):
        if not brokers:
            raise ValueError("at least one broker URL is needed")
        try:
            self.options = MqttOptions(tuple(brokers), client_id, ca_file, cert_file, key_file)
        except ConfigUserError as exc:
            raise ValueError(str(exc)) from exc
        self.brokers = brokers
        self.current = 0
        self.failover_after = failover_after
        self.keepalive = keepalive
        self.acks: collections.deque[int] = collections.deque()
        self.connected = threading.Event()
        self.generation = 0  # +1 on every successful connect: the gateway resets its lanes on change
        self.connects = 0
        self.disconnects = 0
        self.failed_attempts = 0
        self.failed_connects = 0  # connection attempts that failed (status, tests)
        self.state_since = time.time()
        self.last_error: str | None = None
        self.on_connected: list = []  # callables run in paho's thread right after CONNACK
        self.console = console or Console()
        self.reconnect_min_s, self.reconnect_max_s = 1, reconnect_max_s
        self._failure: BaseException | None = None

        c = paho_client(self.options, clean_session=True)  # TLS, client certificate, credentials
        c.max_inflight_messages_set(window)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, reconnect_max_s)
        c.will_set(will_topic, will_payload, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_publish = self._on_publish
        self.client = c
        # paho does not hand the reason of a failed connection to on_connect_fail: keep it here
        real_reconnect = c.reconnect

        def reconnect():
            self._failure = None
            try:
                return real_reconnect()
            except OSError as exc:
                self._failure = exc
                raise

        c.reconnect = reconnect

    @property
    def broker(self) -> MqttUrl:
        return self.brokers[self.current]

    def start(self) -> None:
        b = self.broker
        self.console.say(f"connecting:{b.redacted()}", f"đang kết nối {b.redacted()} / connecting to {b.redacted()}",
                         logging.INFO)
        self.client.connect_async(b.host, b.port, self.keepalive)
        self.client.loop_start()

    def stop(self, final: tuple[str, bytes] | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (topic, payload; retained) if connected, then disconnect cleanly."""
        if final and self.connected.is_set():
            info = self.client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        return self.client.publish(topic, payload, qos=1, retain=retain).mid

    # ------------------------------------------------------------------ paho callbacks (paho thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused: {reason_code}"
            url = self.broker.redacted()
            self.console.say(f"refused:{url}:{reason_code}",
                             f"máy chủ {url} từ chối kết nối: {reason_code} (kiểm tra tên/mật khẩu) / "
                             f"broker {url} refused the connection: {reason_code} (check user/password)")
            return
        self.failed_attempts = 0
        self.connects += 1
        self.generation += 1
        self.state_since = time.time()
        for fn in self.on_connected:
            fn()
        self.connected.set()
        url = self.broker.redacted()
        self.console.say(f"connected:{url}", f"đã kết nối {url} / connected to {url}", logging.INFO)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            self.disconnects += 1
            self.state_since = time.time()
            self.last_error = f"disconnected: {reason_code}"
            url = self.broker.redacted()
            self.console.say(f"lost:{url}", f"mất kết nối {url} ({reason_code}); bản ghi vẫn được giữ trong bộ đệm / "
                                            f"link to {url} lost ({reason_code}); readings stay in the spool")
        self.connected.clear()
        self._maybe_failover()

    def _on_connect_fail(self, client, userdata) -> None:
        url = self.broker.redacted()
        why = reason(self._failure) if self._failure is not None else "unknown reason"
        self.last_error = f"cannot reach {url}: {why}"
        self.failed_connects += 1
        self.console.say(f"connect:{url}:{why}", connect_failed(url, why, self.next_retry_s()))
        self._maybe_failover()

    def next_retry_s(self) -> float:
        """paho's next wait (it doubles from min to max after each failure, reset on CONNACK)."""
        d = self.client._reconnect_delay  # noqa: SLF001 - paho keeps it private
        return self.reconnect_min_s if d is None else min(d * 2, self.reconnect_max_s)

    def _maybe_failover(self) -> None:
        self.failed_attempts += 1
        if len(self.brokers) < 2 or self.failed_attempts < self.failover_after:
            return
        self.failed_attempts = 0
        self.current = (self.current + 1) % len(self.brokers)
        b = self.broker
        # paho's host/port/username setters refuse while its loop is (re)connecting, which is exactly
        # when a failover happens; its next reconnect() reads these attributes (paho 2.x).
        # tests/test_edge_tls_failover.py checks the switch against real brokers.
        c = self.client
        c._host, c._port = b.host, b.port  # noqa: SLF001
        c._username = b.username.encode() if b.username else None  # noqa: SLF001
        c._password = b.password.encode() if b.password else None  # noqa: SLF001
        self.console.say(f"failover:{b.redacted()}", f"chuyển sang máy chủ dự phòng {b.redacted()} / "
                                                     f"failing over to broker {b.redacted()}")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acks.append(mid)
