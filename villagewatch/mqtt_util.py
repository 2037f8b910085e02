"""One way to open a paho connection from a VW_MQTT_URL-style URL (credentials may be in the URL)."""

from __future__ import annotations

import ssl
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from villagewatch.config import MqttUrl
from villagewatch.mqtt import MqttOptions, paho_client


def _str(path: str | Path | None) -> str | None:
    return str(path) if path else None


class MqttConnectError(RuntimeError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def connect(url: str, *, username: str | None = None, password: str | None = None, ca_file: str | Path | None = None,
            cert_file: str | Path | None = None, key_file: str | Path | None = None, client_id: str = "",
            timeout: float = 15, will: tuple[str, bytes] | None = None) -> mqtt.Client:
    """Connected client with its network loop running; raises MqttConnectError on refusal/timeout."""
    target = MqttUrl.parse(url)
    user = username or target.username
    if user:  # credentials given apart from the URL win over the URL's
        target = replace(target, username=user, password=password if password is not None else target.password)
    client = paho_client(MqttOptions.from_url(target, client_id, ca_file=_str(ca_file), cert_file=_str(cert_file),
                                              key_file=_str(key_file)))
    if will:
        client.will_set(will[0], will[1], qos=1, retain=True)
    connected = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(c: object, u: object, flags: object, rc: Any, props: object) -> None:
        outcome["rc"] = rc
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConnectError(f"cannot reach the broker at {target.redacted()}: {exc}",
                               "check VW_MQTT_URL, the network and that the broker runs") from exc
    client.loop_start()
    if not connected.wait(timeout) or outcome["rc"].is_failure:
        client.loop_stop()
        reason = outcome.get("rc", "no answer")
        raise MqttConnectError(f"broker {target.redacted()} refused the connection: {reason}",
                               "check the username/password in VW_MQTT_URL (an ops account: "
                               "villagewatch device service-account --role ops)")
    return client
