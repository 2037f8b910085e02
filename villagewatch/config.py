"""Service configuration: a YAML file (``--config``) plus environment overrides.

The environment variable names are a product interface (issue #2): VW_MQTT_URL, VW_INFLUX_URL,
VW_INFLUX_DB, VW_INFLUX_USER, VW_INFLUX_PASSWORD, VW_INFLUX_TOKEN, VW_INFLUX_ORG, VW_INFLUX_BUCKET,
VW_HTTP_PORT, VW_SITES. Extend, never rename.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from villagewatch.schema import Any_, ConfigError, Ctx, Key, Map, Num, OneOf, Str, load_yaml
from villagewatch.sites import DEFAULT_SITES_DIR


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, what: str = "MQTT URL") -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"{what} {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ConfigError(f"{what} {url!r} has no host")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ConfigError(f"{what} {url!r} has an invalid port") from exc
        return cls(parts.hostname, port, parts.scheme == "mqtts",
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    def redacted(self) -> str:
        auth = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "villagewatch"
    influx_user: str | None = None
    influx_password: str | None = None
    influx_token: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_api: str = "v1"  # "v1": /write + InfluxQL (1.x, 2.x compat, 3.x); "v2": influxdb-client
    http_port: int = 8480
    http_host: str = "127.0.0.1"
    sites: str = str(DEFAULT_SITES_DIR)
    data_dir: str = "var"
    # ingest
    ingest_client_id: str = "villagewatch-ingest"
    ingest_share_group: str | None = None
    # unacknowledged messages at most: room for the concurrent commits (3 × batch) plus one filling
    ingest_inflight: int = 20_000
    batch_max_points: int = 5000
    batch_max_age_s: float = 0.5
    memory_max_points: int = 200_000
    # byte budget of the dead-letter store (rejected messages); oldest evicted at the bound
    deadletter_max_bytes: int = 256 * 1024**2
    # /healthz says "stalled" when a message received this long ago is still not in InfluxDB
    ingest_stalled_after_s: float = 60.0
    # byte budget of the ingest's write spool (batches kept while InfluxDB is down)
    ingest_spool_max_bytes: int = 2 * 1024**3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mqtt(self) -> MqttUrl:
        return MqttUrl.parse(self.mqtt_url, "VW_MQTT_URL")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


ENV_VARS: dict[str, str] = {
    "VW_MQTT_URL": "mqtt_url",
    "VW_INFLUX_URL": "influx_url",
    "VW_INFLUX_DB": "influx_db",
    "VW_INFLUX_USER": "influx_user",
    "VW_INFLUX_PASSWORD": "influx_password",
    "VW_INFLUX_TOKEN": "influx_token",
    "VW_INFLUX_ORG": "influx_org",
    "VW_INFLUX_BUCKET": "influx_bucket",
    "VW_HTTP_PORT": "http_port",
    "VW_SITES": "sites",
    "VW_DATA_DIR": "data_dir",
    "VW_INFLUX_API": "influx_api",
    "VW_MQTT_CA_FILE": "mqtt_ca_file",
    "VW_MQTT_CERT_FILE": "mqtt_cert_file",  # client certificate (PEM) for brokers that require one
    "VW_MQTT_KEY_FILE": "mqtt_key_file",
    "VW_DEADLETTER_MAX_BYTES": "deadletter_max_bytes",
    "VW_INGEST_STALLED_AFTER_S": "ingest_stalled_after_s",
    "VW_INGEST_SPOOL_MAX_BYTES": "ingest_spool_max_bytes",
}

_FILE_SCHEMA = Map([
    Key(f.name, Any_(), required=False) for f in fields(Settings) if f.name != "extra"
], extra=Any_(), extra_key=None, name="configuration")


def _coerce(name: str, value: Any, source: str) -> Any:
    """Type-check one setting; errors name the variable or key at fault."""
    ctx = Ctx(source, name)
    target = {f.name: f for f in fields(Settings)}[name]
    kind = str(target.type)
    try:
        if name == "mqtt_url":
            MqttUrl.parse(str(value), source)
            return str(value)
        if name == "influx_url":
            parts = urlsplit(str(value))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ctx.error(f"{value!r} must be an http:// or https:// URL")
            return str(value).rstrip("/")
        if name == "influx_api":
            return OneOf("v1", "v2")(value, ctx)
        if name in ("influx_db", "ingest_client_id") and not str(value):
            raise ctx.error("must not be empty")
        if kind == "int":
            if isinstance(value, str):
                value = value.strip()
                if not value.lstrip("-").isdigit():
                    raise ctx.error(f"{value!r} is not a whole number")
                value = int(value)
            lowest = {"http_port": 0, "deadletter_max_bytes": 64 * 1024, "ingest_spool_max_bytes": 1024**2}.get(name, 1)
            return int(Num(lowest, 65_535 if name == "http_port" else None,
                           integer=True)(value, ctx))
        if kind == "float":
            return float(Num(0)(float(value) if isinstance(value, str) else value, ctx))
        return None if value is None else Str()(str(value), ctx)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ctx.error(f"bad value {value!r}: {exc}") from exc


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """File values, then environment variables, then explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if config_file:
        raw = load_yaml(config_file)
        data = _FILE_SCHEMA(raw or {}, Ctx(str(config_file)))
        known = {f.name for f in fields(Settings)}
        for key, value in data.items():
            if value is None:
                continue
            if key in known:
                values[key] = _coerce(key, value, f"{config_file}: key {key}")
            else:
                extra[key] = value
    for var, name in ENV_VARS.items():
        if var in env and env[var] != "":
            values[name] = _coerce(name, env[var], f"environment variable {var}")
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value, f"option --{name.replace('_', '-')}")
    settings = Settings(**values)
    return replace(settings, extra=extra) if extra else settings
