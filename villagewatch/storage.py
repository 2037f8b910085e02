"""The storage schema: every InfluxDB measurement, tag and field name, in one place.

Writers (ingest, alerts, the ingest's self-metrics) and readers (dashboards, reports, portal,
alerts' history) import these names, so the two sides cannot drift apart. docs/protocol.md
("Storage schema") lists them; tests/test_storage_doc.py checks that it lists every one.

Also here: how a status payload becomes fields (``status_fields``), because that rule decides
the field names the dashboards read (``queue_depth``, ``queue_drops``, …).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

PRECISION: Final = "ms"  # every point is written with millisecond timestamps


class Telemetry:
    MEASUREMENT: Final = "telemetry"
    # tags
    COMMUNE: Final = "commune"
    STATION: Final = "station"
    KIND: Final = "kind"  # from the site file only (stable), never from the payload
    # fields: one float per metric of the registry (contract.METRICS), plus
    SEQ: Final = "seq"  # integer
    FLAGS: Final = "flags"  # string `metric:flag,flag;…`, only when present


class StationStatus:
    MEASUREMENT: Final = "station_status"
    COMMUNE: Final = "commune"
    STATION: Final = "station"
    # fields: the flattened status payload (status_fields); the ones readers use by name:
    ONLINE: Final = "online"
    REASON: Final = "reason"


class GatewayStatus:
    MEASUREMENT: Final = "gateway_status"
    COMMUNE: Final = "commune"
    GATEWAY: Final = "gateway"
    ONLINE: Final = "online"
    REASON: Final = "reason"
    UPTIME_S: Final = "uptime_s"
    QUEUE_DEPTH: Final = "queue_depth"
    QUEUE_DROPS: Final = "queue_drops"
    QUEUE_OLDEST_AGE_S: Final = "queue_oldest_age_s"
    LINK_STATE: Final = "link_state"


class Alerts:
    """One point per alert lifecycle transition (alerts/points.py)."""

    MEASUREMENT: Final = "alerts"
    COMMUNE: Final = "commune"
    STATION: Final = "station"
    RULE: Final = "rule"
    SEVERITY: Final = "severity"
    # fields; `state` is a field, not a tag: dashboards select last("state") per alert
    STATE: Final = "state"
    ALERT_ID: Final = "alert_id"
    METRIC: Final = "metric"
    VALUE: Final = "value"
    LIMIT: Final = "limit"
    MESSAGE_VI: Final = "message_vi"
    MESSAGE_EN: Final = "message_en"
    REGULATION: Final = "regulation"
    NOTE: Final = "note"


class IngestStats:
    """The ingest service's own counters, every 10 s (the devices dashboard reads them)."""

    MEASUREMENT: Final = "ingest_stats"
    INSTANCE: Final = "instance"
    RECEIVED: Final = "received"
    WRITTEN: Final = "written"
    REJECTED: Final = "rejected"
    SPOOL_BATCHES: Final = "spool_batches"
    INFLIGHT: Final = "inflight"


SCHEMA: Final = (Telemetry, StationStatus, GatewayStatus, Alerts, IngestStats)


def names(cls: type) -> dict[str, str]:
    """The constants of one schema class: attribute → stored name."""
    return {k: v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


# --------------------------------------------------------------------------- status → fields
# A status payload is stored as one point. Nested objects are flattened with `_` at every level
# (queue.drops → queue_drops, sources.rtu.errors.timeout → sources_rtu_errors_timeout), so nothing
# a gateway says is dropped; keys that are not ids are skipped (they cannot be queried safely).
# Numbers are stored as floats (a field's type must never change between points), booleans as
# booleans, strings (≤ 256 characters) as strings; a list as one string of its items joined by
# ","; below MAX_STATUS_DEPTH levels the rest of the object is kept as a JSON string. null is
# the absence of a field. At most MAX_STATUS_FIELDS fields per point: the number of the others is
# stored in STATUS_FIELDS_OVER_LIMIT, so a cut is visible.
MAX_STATUS_DEPTH: Final = 4
MAX_STATUS_FIELDS: Final = 256
MAX_STRING_FIELD: Final = 256
STATUS_FIELDS_OVER_LIMIT: Final = "vw_fields_over_limit"
_KEY_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _key_ok(key: object) -> bool:
    return isinstance(key, str) and bool(_KEY_RE.fullmatch(key.lower().replace(".", "_")[:64] or "x"))


def status_fields(body: Mapping[str, Any]) -> dict[str, object]:
    """The fields of a decoded status payload (``ts`` is the point's time, not a field)."""
    fields: dict[str, object] = {}
    over = _flatten(fields, "", {k: v for k, v in body.items() if k != "ts"}, 1)
    if over:
        fields[STATUS_FIELDS_OVER_LIMIT] = float(over)
    return fields


def _flatten(fields: dict[str, object], prefix: str, obj: Mapping[str, Any], depth: int) -> int:
    over = 0
    for key, value in obj.items():
        if not _key_ok(key):
            continue
        name = prefix + key
        if isinstance(value, Mapping):
            if depth < MAX_STATUS_DEPTH:
                over += _flatten(fields, name + "_", value, depth + 1)
                continue
            value = json.dumps(value, ensure_ascii=False, default=str)
        stored = _field_value(value)
        if stored is None:
            continue
        if len(fields) >= MAX_STATUS_FIELDS:
            over += 1
        else:
            fields[name] = stored
    return over


def _field_value(value: object) -> object | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double: not a measurement of ours
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return value[:MAX_STRING_FIELD]
    if isinstance(value, list):
        return ",".join(v if isinstance(v, str) else json.dumps(v, default=str) for v in value)[:MAX_STRING_FIELD]
    return None
