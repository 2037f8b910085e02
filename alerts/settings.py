"""Alert service configuration (YAML, validated): channels, routing per commune and severity,
re-notify and escalation timing, inspector accounts. Example: docs/alerts.md, alerts/example.yaml.

Secrets are not written in the file: ``password_env``/``token_env`` name environment variables.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alerts.notify import CHANNELS
from alerts.notify.channel import COMMON_KEYS, Channel
from rules.rulepack import SEVERITIES, SEVERITY_RANK
from villagewatch.schema import (
    Any_,
    ConfigError,
    Ctx,
    Key,
    ListOf,
    Map,
    Num,
    OneOf,
    Str,
    Validator,
    load_yaml,
)

# one password scheme for the portal and the inspector page (re-exported for alerts' callers)
from villagewatch.signin import hash_password, verify_password  # noqa: F401


def channel_schema(channels: dict[str, Channel] | None = None) -> Validator:
    """The schema of one entry under ``channels:``, built from the channel registry
    (alerts/notify/__init__.py) when the file is read, so a registered channel needs nothing here.

    The keys are those of every registered type (a key of another type is accepted, as before the
    registry); each key is optional for the mapping, and a type's ``required`` keys are checked after
    the defaults are filled in: "channel of type webhook needs `url`", with the file and line.
    """
    registry = CHANNELS if channels is None else channels
    keys: dict[str, Key] = {}
    for channel in registry.values():
        for key in [*COMMON_KEYS, *channel.keys]:
            keys.setdefault(key.name, replace(key, required=False))
    mapping = Map([Key("type", OneOf(*registry)), *keys.values()], name="channel")

    def check(value: Any, ctx: Ctx) -> dict[str, Any]:
        data = mapping(value, ctx)
        for need in registry[data["type"]].needs:
            if data.get(need) in (None, ""):
                raise ctx.error(f"channel {ctx.path.rpartition('.')[2]!r} of type {data['type']} needs `{need}`",
                                _doc_of(registry[data["type"]], need))
        return data
    return check


def _doc_of(channel: Channel, key: str) -> str | None:
    return next((k.doc for k in channel.keys if k.name == key and k.doc), None)


_ROUTE = Map([
    Key("communes", ListOf(Str(), min_len=1), required=False, default=lambda: ["*"]),
    Key("min_severity", OneOf(*SEVERITIES), required=False, default="warning"),
    Key("notify", ListOf(Str(r"[a-z0-9_-]+(:.+)?", "channel[:target]"), min_len=1)),
    Key("escalate_to", ListOf(Str(r"[a-z0-9_-]+(:.+)?", "channel[:target]")), required=False, default=list),
], name="route")

_USER = Map([
    Key("username", Str(r"[a-z0-9_.-]{2,40}", "user name")),
    Key("name", Str(), required=False, default=""),
    Key("password_hash", Str(r"scrypt\$.+", "scrypt hash (villagewatch alerts hash-password)")),
    Key("communes", ListOf(Str(), min_len=1), doc='communes this user sees; ["*"] = all'),
    Key("role", OneOf("inspector", "operator"), required=False, default="operator"),
], name="user")

SCHEMA = Map([
    Key("public_url", Str(r"https?://.+", "http(s) URL"), required=False, default="http://127.0.0.1:8481"),
    Key("http_host", Str(), required=False, default="127.0.0.1"),
    Key("http_port", Num(1, 65535, integer=True), required=False, default=8481),
    Key("secret_env", Str(), required=False, default="VW_ALERTS_SECRET"),
    Key("renotify_s", Num(0), required=False, default=3600),
    Key("escalate_after_s", Num(0), required=False),
    Key("retries", Num(0, 20, integer=True), required=False, default=4),
    Key("retry_backoff_s", Num(0), required=False, default=2),
    Key("channels", Map([], extra=lambda value, ctx: channel_schema()(value, ctx), name="channels"),
        required=False, default=dict),
    Key("routes", ListOf(_ROUTE), required=False, default=list),
    Key("users", ListOf(_USER), required=False, default=list),
    Key("intake_window", Num(1, 65535, integer=True), required=False, default=2000,
        doc="MQTT messages held unacknowledged at most; beyond, the broker keeps them queued"),
    Key("stall_after_s", Num(1), required=False, default=120,
        doc="/healthz is unhealthy when the oldest unacknowledged message is older than this"),
    Key("rulepacks", Str(), required=False),
    Key("state_db", Str(), required=False),
    Key("extra", Any_(), required=False),
], name="alerts configuration")


@dataclass
class AlertsConfig:
    public_url: str = "http://127.0.0.1:8481"
    http_host: str = "127.0.0.1"
    http_port: int = 8481
    secret: bytes = b""
    renotify_s: float = 3600
    escalate_after_s: float | None = None
    retries: int = 4
    retry_backoff_s: float = 2
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    rulepacks: str | None = None
    state_db: str | None = None
    # Intake bound (docs/alerts.md "Intake"): at most this many MQTT messages unacknowledged in the
    # service; at the bound paho's thread waits and the broker keeps the rest in our session queue.
    intake_window: int = 2000
    stall_after_s: float = 120

    def targets(self, commune: str, severity: str, escalation: bool = False) -> list[tuple[str, str]]:
        """(channel, target) pairs for an alert of this commune and severity."""
        out: list[tuple[str, str]] = []
        for route in self.routes:
            if "*" not in route["communes"] and commune not in route["communes"]:
                continue
            if SEVERITY_RANK[severity] < SEVERITY_RANK[route["min_severity"]]:
                continue
            for item in route["escalate_to" if escalation else "notify"]:
                channel, _, target = item.partition(":")
                if (channel, target) not in out:
                    out.append((channel, target))
        return out


def load_alerts_config(path: str | Path | None, env: dict[str, str] | None = None) -> AlertsConfig:
    env = os.environ if env is None else env
    if not path:
        return AlertsConfig(secret=secrets.token_bytes(32))
    raw = load_yaml(path)
    ctx = Ctx(str(path), "", getattr(raw, "start_line", 1))
    data = SCHEMA(raw or {}, ctx)
    for i, route in enumerate(data["routes"]):
        for item in route["notify"] + route["escalate_to"]:
            channel = item.partition(":")[0]
            if channel not in data["channels"]:
                raise ConfigError(f"routes[{i}]: unknown channel {channel!r}", file=str(path),
                                  hint=f"channels: {', '.join(data['channels']) or '(none declared)'}")
    secret = env.get(data["secret_env"], "")
    users = {u["username"]: u for u in data["users"]}
    return AlertsConfig(
        data["public_url"].rstrip("/"), data["http_host"], data["http_port"],
        secret.encode() if secret else secrets.token_bytes(32),
        data["renotify_s"], data["escalate_after_s"], data["retries"], data["retry_backoff_s"],
        data["channels"], data["routes"], users, data["rulepacks"], data["state_db"],
        data["intake_window"], data["stall_after_s"])
