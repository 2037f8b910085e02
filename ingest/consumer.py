"""The ingest's MQTT client: a persistent MQTT v5 session that acknowledges only what is durable.

Library choice, measured on these machines (../shared/reference/libraries.md and bench/ingest.py):
gmqtt receives QoS 1 at ~63–75k msg/s natively in asyncio; paho-mqtt 2.2 with its own loop thread
~39k, and handing paho's messages to asyncio one by one halves that. gmqtt also gives the ack
control we need: with ``optimistic_acknowledgement=False`` it never acknowledges by itself.

Its public manual-ack path runs one asyncio Task per message (our ``on_message`` coroutine, PUBACK
when it returns); profiling showed that Task alone costs more than a tenth of the ingest's CPU. So
QoS 1 messages are taken one level lower: we replace the handler's ``_handle_qos_1_publish_packet``
(gmqtt pinned to exactly ``GMQTT_VERSION`` in pyproject.toml) with a synchronous intake that
remembers the packet id, and send the PUBACKs of a whole batch when the pipeline reports it durable.
If a gmqtt release renamed that method, the assignment would silently do nothing and gmqtt's own
path would acknowledge before the write: so ``check_gmqtt_hooks`` runs before the client is built
and the service refuses to start unless every private name we use is there with the expected
parameters and gmqtt's publish handler still calls the one we replace (tests/test_ingest_pipeline.py).
tests/test_ingest_*.py (SIGKILL, database outage, backpressure) guard the behaviour.
paho-mqtt stays the client of the edge gateway and the tools (threads are fine there).

Backpressure. The MQTT v5 Receive Maximum we announce (``ingest_inflight``) should bound the
unacknowledged messages the broker sends us. Measured here, Mosquitto 2.0.11 (Debian 12) does not
hold that bound once acknowledgements flow — each PUBACK releases up to a whole window of queued
messages (tests/test_ingest_scale.py shows 3,700 in flight with a window of 300). So the ingest
enforces the window itself: when that many messages are unacknowledged it stops reading the socket
(TCP flow control makes the broker keep the rest in the session queue) and resumes at half.

Redelivery after a reconnect keeps the packet id (MQTT session state), so a PUBACK sent for a
message of the previous connection still names that same message: late acks are harmless.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl

import gmqtt
from gmqtt.mqtt.handler import MqttPackageHandler

from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from villagewatch import contract
from villagewatch.aio import wait_event
from villagewatch.config import Settings
from villagewatch.errors import UserError
from villagewatch.mqtt import MqttOptions, gmqtt_ssl

log = logging.getLogger("villagewatch.ingest.mqtt")

SESSION_NEVER_EXPIRES = 0xFFFFFFFF

# The gmqtt release the private hooks below were written and tested against (pyproject.toml pins it).
GMQTT_VERSION = "0.8.0"
# Private methods of gmqtt's packet handler we replace or call, with the parameters we rely on.
HOOKED_METHODS: dict[str, tuple[str, ...]] = {
    "_handle_qos_1_publish_packet": ("self", "mid", "packet", "print_topic", "properties"),  # replaced
    "_send_puback": ("self", "mid", "reason_code"),  # called with a batch's packet ids
}
# ... and the call that makes the replacement effective: gmqtt's publish handler must call it
HOOK_CALLER = ("_handle_publish_packet", "self._handle_qos_1_publish_packet(")


class GmqttIncompatible(UserError):
    """The installed gmqtt is not the one the ingest's QoS 1 intake hooks into."""


def check_gmqtt_hooks(handler_cls: type = MqttPackageHandler, version: str | None = None) -> None:
    """Refuse to run on a gmqtt whose private intake differs from the one we replace.

    Without this a renamed method would leave our replacement unused: gmqtt would acknowledge each
    QoS 1 message on receipt, before it is durable, and a crash would lose it — with no error.
    """
    version = gmqtt.__version__ if version is None else version
    hint = (f"install the pinned release: .venv/bin/pip install 'gmqtt=={GMQTT_VERSION}' "
            "(pyproject.toml); a new gmqtt needs ingest/consumer.py reviewed first")
    problems = []
    if version != GMQTT_VERSION:
        problems.append(f"gmqtt {version} is installed, the ingest is built for {GMQTT_VERSION}")
    for name, params in HOOKED_METHODS.items():
        method = getattr(handler_cls, name, None)
        if not callable(method):
            problems.append(f"gmqtt has no {handler_cls.__name__}.{name}")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != params:
            problems.append(f"{handler_cls.__name__}.{name}{found} does not take the parameters {params}")
    caller_name, call = HOOK_CALLER
    caller = getattr(handler_cls, caller_name, None)
    try:
        calls_it = callable(caller) and call in inspect.getsource(caller)
    except (OSError, TypeError):  # no source shipped: cannot prove the call is still made
        calls_it = False
    if not calls_it:
        problems.append(f"{handler_cls.__name__}.{caller_name} no longer calls {call.rstrip('(')}")
    if problems:
        raise GmqttIncompatible(
            "the ingest cannot hold QoS 1 acknowledgements until messages are durable with this "
            "gmqtt: " + "; ".join(problems), hint)


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
        check_gmqtt_hooks()  # before anything else: refuse to start rather than ack early
        self.client = gmqtt.Client(
            settings.ingest_client_id,
            clean_session=False,  # MQTT v5 clean start off: the broker keeps our queue while we are down
            optimistic_acknowledgement=False,
            session_expiry_interval=SESSION_NEVER_EXPIRES,
            receive_maximum=settings.ingest_inflight,  # backpressure: at most this many unacked
        )
        if self.url.username:
            self.client.set_auth_credentials(self.url.username, self.url.password)
        self.client.on_message = self._on_message  # QoS 0 only (nothing to acknowledge)
        handler = self.client._package_handler  # noqa: SLF001 - see the module docstring
        handler._handle_qos_1_publish_packet = self._on_qos1  # noqa: SLF001
        self._send_puback = handler._send_puback  # noqa: SLF001
        pipeline.on_durable = self._ack
        self.window = settings.ingest_inflight
        self._paused_transport = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = False
        self._subscribed_once = False

    def _ssl(self) -> ssl.SSLContext | bool:
        return gmqtt_ssl(MqttOptions.from_settings(self.settings, self.settings.ingest_client_id))

    async def start(self, stop: asyncio.Event) -> None:
        """Connect (retrying until the broker answers or ``stop`` is set) and subscribe."""
        delay = 0.5
        while not stop.is_set():
            try:
                await self.client.connect(self.url.host, self.url.port, ssl=self._ssl(), keepalive=30)
                break
            except (TimeoutError, OSError, gmqtt.MQTTConnectError) as exc:
                log.warning("broker %s not reachable (%s); retrying in %.1f s", self.url.redacted(), exc, delay)
                await wait_event(stop, delay)  # not wait_for: it can swallow a cancel (villagewatch/aio.py)
                delay = min(delay * 2, 10.0)
        if stop.is_set():
            return
        self._subscribe()
        self._subscribed_once = True
        log.info("subscribed on %s as %s", self.url.redacted(), self.settings.ingest_client_id)

    def _subscribe(self) -> None:
        self.client.subscribe([gmqtt.Subscription(t, qos=1) for t in subscriptions(self.settings.ingest_share_group)])

    def _on_message(self, client: gmqtt.Client, topic: str, payload: bytes, qos: int, properties: dict) -> None:
        self.pipeline.submit(topic, payload)

    def _on_qos1(self, mid: int, payload: bytes, topic: str, properties: dict) -> None:
        self.pipeline.submit(topic, payload, mid)
        if self.metrics.inflight >= self.window:
            self._pause_reading()

    def _pause_reading(self) -> None:
        # Checked on every message while the window is full: asyncio's StreamReader (inside gmqtt)
        # resumes the transport by itself when its own buffer drains, undoing an earlier pause.
        transport = getattr(self.client._connection, "_transport", None)  # noqa: SLF001
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()
            self._paused_transport = transport
            self.metrics.read_pauses += 1
            # nothing more arrives until acks flow: commit what we hold now rather than at its age
            self.pipeline.cut()

    def _resume_reading(self) -> None:
        transport, self._paused_transport = self._paused_transport, None
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _ack(self, mids: list[int]) -> None:
        """PUBACK for messages now durable. A lost connection drops these acks: the broker then
        redelivers the messages (same packet ids), and they land on the same points."""
        try:
            for mid in mids:
                self._send_puback(mid)
        except (AttributeError, OSError, RuntimeError) as exc:
            log.info("could not acknowledge %d messages (%s); the broker will redeliver them", len(mids), exc)
        if self._paused_transport is not None and self.metrics.inflight <= self.window // 2:
            self._resume_reading()

    def _on_subscribe(self, client: gmqtt.Client, mid: int, qos: list, properties: dict) -> None:
        self.subscribed = True

    def _on_connect(self, client: gmqtt.Client, flags: int, rc: int, properties: dict) -> None:
        self.metrics.mqtt_connected = True
        self._paused_transport = None  # a new connection starts reading
        session_present = bool(flags & 0x01)  # CONNACK acknowledge flags, bit 0
        if self._subscribed_once and not session_present:
            # the broker lost our session (wiped by a clean-start login with our id, or restarted
            # without persistence): no subscriptions, no queue; subscribe again or receive nothing
            self.subscribed = False
            self.metrics.sessions_lost += 1
            log.warning("broker %s has no session for %s: subscribing again (lost sessions: %d)",
                        self.url.redacted(), self.settings.ingest_client_id, self.metrics.sessions_lost)
            self._subscribe()

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
