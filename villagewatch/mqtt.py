"""The one MQTT client factory: every part opens its broker connection here.

From a URL (``mqtt://`` or ``mqtts://``, credentials may be in it) plus the settings — CA file,
client certificate and key, a failover list, the client id of the service — it builds a paho
client (edge link, MQTT bridge source, alerts, OTA agent, firmware tools, portal, publisher) or
the TLS argument of gmqtt's ``connect`` (ingest). So TLS is the same everywhere: the CA file is
honoured by every part and a client certificate is sent by every part that has one
(tests/test_mqtt_factory.py proves it on a Mosquitto that requires both).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from villagewatch.config import MqttUrl
from villagewatch.errors import ConfigUserError as ConfigError

MQTT_V311 = paho.MQTTv311
MQTT_V5 = paho.MQTTv5


class _MqttSettings(Protocol):
    mqtt_url: str
    mqtt_ca_file: str | None
    mqtt_cert_file: str | None
    mqtt_key_file: str | None


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """How one service reaches its broker(s). ``brokers[0]`` first; the rest are the failover list."""

    brokers: tuple[MqttUrl, ...]
    client_id: str = ""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if not self.brokers:
            raise ConfigError("at least one broker URL is needed")
        if len({b.tls for b in self.brokers}) > 1:
            # one paho client has one TLS setting for all its connections
            raise ConfigError("the brokers of a failover list must all be mqtt:// or all mqtts:// "
                              f"({', '.join(b.redacted() for b in self.brokers)})")
        if self.key_file and not self.cert_file:
            raise ConfigError("a client key without a client certificate",
                              hint="set the certificate file too (VW_MQTT_CERT_FILE / cert_file)")

    @classmethod
    def from_url(cls, url: str | MqttUrl | Sequence[str | MqttUrl], client_id: str = "", *,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 what: str = "MQTT URL") -> MqttOptions:
        urls = [url] if isinstance(url, (str, MqttUrl)) else list(url)
        brokers = tuple(u if isinstance(u, MqttUrl) else MqttUrl.parse(u, what) for u in urls)
        return cls(brokers, client_id, _path(ca_file), _path(cert_file), _path(key_file))

    @classmethod
    def from_settings(cls, settings: _MqttSettings, client_id: str) -> MqttOptions:
        """VW_MQTT_URL, VW_MQTT_CA_FILE, VW_MQTT_CERT_FILE, VW_MQTT_KEY_FILE, and the service's id."""
        return cls.from_url(settings.mqtt_url, client_id, ca_file=settings.mqtt_ca_file,
                            cert_file=settings.mqtt_cert_file, key_file=settings.mqtt_key_file,
                            what="VW_MQTT_URL")

    @property
    def broker(self) -> MqttUrl:
        return self.brokers[0]

    @property
    def tls(self) -> bool:
        """The scheme decides, for every part alike: ``mqtts://`` is TLS, ``mqtt://`` is not (a CA
        file set for plain MQTT is unused rather than silently turning TLS on)."""
        return self.broker.tls


def _path(value: object) -> str | None:
    return str(value) if value else None


def tls_context(opts: MqttOptions) -> ssl.SSLContext | None:
    """The TLS context of ``opts`` (None for plain ``mqtt://``).

    A missing or unreadable file is a ConfigError naming it, not a traceback at connect time."""
    if not opts.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=opts.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use the MQTT CA file {opts.ca_file!r}: {exc}",
                          hint="VW_MQTT_CA_FILE / ca_file must be a PEM file of the broker's CA") from exc
    if opts.cert_file:
        try:
            ctx.load_cert_chain(opts.cert_file, opts.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the MQTT client certificate {opts.cert_file!r} "
                              f"(key {opts.key_file!r}): {exc}",
                              hint="VW_MQTT_CERT_FILE / VW_MQTT_KEY_FILE: PEM files issued by the CA") from exc
    return ctx


def paho_client(opts: MqttOptions, *, clean_session: bool = True,
                protocol: MQTTProtocolVersion = MQTT_V311, manual_ack: bool = False,
                broker: int = 0) -> paho.Client:
    """A configured, not yet connected paho client (callback API v2); connect to ``opts.brokers[broker]``.

    MQTT v5 has no ``clean_session`` (clean start is a connect option); ``manual_ack`` leaves the
    PUBACK of QoS 1 messages to the caller (acknowledge once durable)."""
    if protocol == MQTT_V5:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=opts.client_id, protocol=protocol,
                             manual_ack=manual_ack)
    else:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=opts.client_id, clean_session=clean_session,
                             protocol=protocol, manual_ack=manual_ack)
    target = opts.brokers[broker]
    if target.username:
        client.username_pw_set(target.username, target.password)
    ctx = tls_context(opts)
    if ctx is not None:
        client.tls_set_context(ctx)
    return client


def gmqtt_ssl(opts: MqttOptions) -> ssl.SSLContext | bool:
    """The ``ssl`` argument of ``gmqtt.Client.connect`` (False for plain MQTT)."""
    ctx = tls_context(opts)
    return ctx if ctx is not None else False
