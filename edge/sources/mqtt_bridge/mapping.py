"""Map payloads of devices that already speak MQTT into contract metrics (pure functions).

- Tasmota: ``tele/<topic>/SENSOR`` JSON, e.g. {"Time": "...", "BME280": {"Temperature": 21.7, ...},
  "TempUnit": "C"}; a field path is "BME280.Temperature".
- ESPHome: ``<prefix>/sensor/<name>/state`` with the value as plain text ("21.7"); a field is the topic.
- ChirpStack v4: ``application/<app id>/device/<dev eui>/event/up`` JSON with ``time`` (RFC 3339),
  ``deviceInfo``, ``rxInfo`` and the codec-decoded ``object``; a field path is "object.temperature"
  or "rxInfo.0.rssi".
"""

from __future__ import annotations

import json
import math
from typing import Any

from villagewatch.contract import parse_ts

FORMATS = ("tasmota", "esphome", "chirpstack")
# the contract's own bound for one message (a device payload larger than that is not a reading)
MAX_PAYLOAD = 64 * 1024


class MappingError(ValueError):
    """The payload does not have the shape the mapping expects (counted, never fatal)."""


def _path(body: Any, path: str) -> Any:
    node = body
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MappingError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError) as exc:  # OverflowError: an integer of hundreds of digits
        raise MappingError(f"{what} is not a number: {str(value)[:40]!r}") from exc
    if not math.isfinite(number):
        raise MappingError(f"{what} is {value!r}")
    return number


def map_json(payload: bytes, fields: dict[str, str]) -> tuple[int | None, dict[str, float]]:
    """Tasmota and ChirpStack: metric -> dotted path in the JSON body. Returns (device ts or None, metrics)."""
    if len(payload) > MAX_PAYLOAD:
        raise MappingError(f"payload of {len(payload)} bytes > {MAX_PAYLOAD}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MappingError(f"payload is not JSON: {exc}") from exc
    except RecursionError as exc:  # "[[[[…" nested deeper than the parser's stack
        raise MappingError("payload is nested too deeply") from exc
    if not isinstance(body, dict):
        raise MappingError("payload is not a JSON object")
    metrics = {}
    for metric, path in fields.items():
        value = _path(body, path)
        if value is not None:
            metrics[metric] = _number(value, path)
    ts = None
    if isinstance(body.get("time"), str):  # ChirpStack: when the gateway received the uplink (UTC)
        try:
            ts = parse_ts(body["time"])
        except (ValueError, OverflowError):
            ts = None
    # Tasmota's "Time" is device-local time without an offset: the gateway's clock is more reliable
    return ts, metrics


def map_esphome(topic: str, payload: bytes, fields: dict[str, str]) -> dict[str, float]:
    """ESPHome: metric -> state topic; the payload is the value as text ("nan" when unknown)."""
    if len(payload) > 64:
        raise MappingError(f"state of {len(payload)} bytes is not a number")
    out = {}
    for metric, state_topic in fields.items():
        if state_topic == topic:
            out[metric] = _number(payload.decode("utf-8", "replace").strip(), topic)
    return out
