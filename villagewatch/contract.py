"""Wire contract v1: topics, telemetry payload, metric registry.

This module is the single owner of everything that crosses the broker. Edge, ingest, alerts,
dashboards, reports and device tools import names from here instead of repeating strings.
The human-readable description lives in docs/protocol.md; a test checks the two agree.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from villagewatch import storage
from villagewatch.status import GatewayStatus, StationStatus  # noqa: F401 - typed status payloads

VERSION = "v1"
TOPIC_ROOT = f"vw/{VERSION}"
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
# matched with fullmatch: `$` alone also matches before a trailing newline ("ao-1\n" would pass)
ID_RE = re.compile(ID_PATTERN)
# seq is stored as an InfluxDB integer field: a signed 64-bit value
SEQ_MAX = 2**63 - 1

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FUTURE_MS = 5 * 60 * 1000
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z

# Reserved topic segments start with "_" so they can never clash with an id.
GATEWAY_SEGMENT = "_gw"
ALERTS_SEGMENT = "_alerts"
COMMANDS_SEGMENT = "_cmd"
FEEDBACK_SEGMENT = "_feedback"  # residents' feedback, published by the portal (docs/protocol.md)
# a feedback code as the portal issues it (portal/feedback.py): read over the phone, so no 0/O, 1/I
FEEDBACK_CODE_PATTERN = r"[A-HJ-NP-Z2-9]{8}"
FEEDBACK_CODE_RE = re.compile(FEEDBACK_CODE_PATTERN)

TELEMETRY_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/telemetry"
STATION_STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/status"
GATEWAY_STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/{GATEWAY_SEGMENT}/+/status"
ALERTS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/{ALERTS_SEGMENT}/+"
FEEDBACK_SUBSCRIPTION = f"{TOPIC_ROOT}/+/{FEEDBACK_SEGMENT}/+"

# InfluxDB storage schema: villagewatch/storage.py owns the names; these aliases stay for callers.
MEASUREMENT_TELEMETRY = storage.Telemetry.MEASUREMENT
MEASUREMENT_STATION_STATUS = storage.StationStatus.MEASUREMENT
MEASUREMENT_GATEWAY_STATUS = storage.GatewayStatus.MEASUREMENT
MEASUREMENT_ALERTS = storage.Alerts.MEASUREMENT
FIELD_SEQ = storage.Telemetry.SEQ
FIELD_FLAGS = storage.Telemetry.FLAGS

# A status published by the broker as the client's Last Will carries "reason": "lwt".
STATUS_REASON_LWT = "lwt"

QUALITY_FLAGS = ("spike", "flatline", "calibration_expired", "aggregated", "suspect", "clock_corrected", "clock_unsynced")


def valid_id(value: str) -> bool:
    return isinstance(value, str) and bool(ID_RE.fullmatch(value))


def _check_id(value: str, what: str) -> str:
    if not valid_id(value):
        raise ValueError(f"{what} {value!r} does not match {ID_PATTERN}")
    return value


def telemetry_topic(commune: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{_check_id(station, 'station')}/telemetry"


def station_status_topic(commune: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{_check_id(station, 'station')}/status"


def gateway_status_topic(commune: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{GATEWAY_SEGMENT}/{_check_id(gateway, 'gateway')}/status"


def alerts_topic(commune: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{ALERTS_SEGMENT}/{_check_id(station, 'station')}"


def feedback_topic(commune: str, code: str) -> str:
    """Where the portal announces a new resident feedback (QoS 1, not retained)."""
    if not isinstance(code, str) or not FEEDBACK_CODE_RE.fullmatch(code):
        raise ValueError(f"feedback code {code!r} does not match {FEEDBACK_CODE_PATTERN}")
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{FEEDBACK_SEGMENT}/{code}"


def station_command_topic(commune: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{_check_id(station, 'station')}/{COMMANDS_SEGMENT}"


def gateway_command_topic(commune: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(commune, 'commune')}/{GATEWAY_SEGMENT}/{_check_id(gateway, 'gateway')}/{COMMANDS_SEGMENT}"


# Over-the-air updates (docs/technician.md): a signed manifest, retained, under the device's command
# topic; the device reports its update status retained under its status topic.
OTA_SEGMENT = "ota"


def station_ota_command_topic(commune: str, station: str) -> str:
    return f"{station_command_topic(commune, station)}/{OTA_SEGMENT}"


def gateway_ota_command_topic(commune: str, gateway: str) -> str:
    return f"{gateway_command_topic(commune, gateway)}/{OTA_SEGMENT}"


def station_ota_status_topic(commune: str, station: str) -> str:
    return f"{station_status_topic(commune, station)}/{OTA_SEGMENT}"


def gateway_ota_status_topic(commune: str, gateway: str) -> str:
    return f"{gateway_status_topic(commune, gateway)}/{OTA_SEGMENT}"


OTA_STATUS_SUBSCRIPTIONS = (f"{STATION_STATUS_SUBSCRIPTION}/{OTA_SEGMENT}",
                            f"{GATEWAY_STATUS_SUBSCRIPTION}/{OTA_SEGMENT}")


def gateway_device_id(commune: str, gateway: str) -> str:
    """The broker account (and client id) of a gateway: ``{commune}._gw.{gateway}``."""
    return f"{_check_id(commune, 'commune')}.{GATEWAY_SEGMENT}.{_check_id(gateway, 'gateway')}"


def shared_subscription(group: str, topic: str) -> str:
    """MQTT v5 shared subscription: workers in one group split the messages of ``topic``."""
    return f"$share/{_check_id(group, 'share group')}/{topic}"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    kind: str  # "telemetry" | "station_status" | "gateway_status" | "alert"
    commune: str
    station: str | None = None
    gateway: str | None = None


class TopicError(ValueError):
    pass


def parse_topic(topic: str) -> TopicInfo:
    """Classify a topic of the contract; raise TopicError naming what is wrong."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "vw" or parts[1] != VERSION:
        raise TopicError(f"topic {topic!r} is not under {TOPIC_ROOT}/")
    commune = parts[2]
    if not valid_id(commune):
        raise TopicError(f"commune id {commune!r} in topic does not match {ID_PATTERN}")
    rest = parts[3:]
    if len(rest) == 2 and rest[1] in ("telemetry", "status"):
        if not valid_id(rest[0]):
            raise TopicError(f"station id {rest[0]!r} in topic does not match {ID_PATTERN}")
        kind = "telemetry" if rest[1] == "telemetry" else "station_status"
        return TopicInfo(kind, commune, station=rest[0])
    if len(rest) == 3 and rest[0] == GATEWAY_SEGMENT and rest[2] == "status":
        if not valid_id(rest[1]):
            raise TopicError(f"gateway id {rest[1]!r} in topic does not match {ID_PATTERN}")
        return TopicInfo("gateway_status", commune, gateway=rest[1])
    if len(rest) == 2 and rest[0] == ALERTS_SEGMENT and valid_id(rest[1]):
        return TopicInfo("alert", commune, station=rest[1])
    raise TopicError(f"topic {topic!r} matches no topic of the contract")


# --------------------------------------------------------------------------- metric registry


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    lo: float  # valid physical range of the sensor, not a regulatory limit
    hi: float
    label_vi: str
    label_en: str
    decimals: int = 2

    def in_range(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def label(self, lang: str = "vi") -> str:
        return self.label_vi if lang == "vi" else self.label_en


def _m(name: str, unit: str, lo: float, hi: float, vi: str, en: str, decimals: int = 2) -> Metric:
    return Metric(name, unit, lo, hi, vi, en, decimals)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("ph", "", 0, 14, "pH", "pH"),
        _m("do", "mg/L", 0, 25, "Oxy hòa tan (DO)", "Dissolved oxygen (DO)"),
        _m("temp", "°C", -5, 60, "Nhiệt độ nước", "Water temperature", 1),
        _m("turbidity", "NTU", 0, 4000, "Độ đục", "Turbidity", 1),
        _m("ec", "µS/cm", 0, 200_000, "Độ dẫn điện (EC)", "Electrical conductivity (EC)", 0),
        _m("salinity", "‰", 0, 70, "Độ mặn", "Salinity"),
        _m("chlorine", "mg/L", 0, 20, "Clo dư tự do", "Free residual chlorine"),
        _m("nh4", "mg/L", 0, 500, "Amoni (NH4+ tính theo N)", "Ammonium (NH4+ as N)"),
        _m("cod", "mg/L", 0, 10_000, "COD", "COD", 1),
        _m("bod5", "mg/L", 0, 5_000, "BOD5", "BOD5", 1),
        _m("tss", "mg/L", 0, 10_000, "Tổng chất rắn lơ lửng (TSS)", "Total suspended solids (TSS)", 1),
        _m("pm25", "µg/m³", 0, 2_000, "Bụi mịn PM2.5", "PM2.5", 1),
        _m("pm10", "µg/m³", 0, 3_000, "Bụi PM10", "PM10", 1),
        _m("air_temp", "°C", -20, 60, "Nhiệt độ không khí", "Air temperature", 1),
        _m("humidity", "%", 0, 100, "Độ ẩm", "Relative humidity", 0),
        _m("rain", "mm", 0, 500, "Lượng mưa", "Rainfall", 1),
        _m("wind", "m/s", 0, 75, "Tốc độ gió", "Wind speed", 1),
        _m("noise", "dBA", 20, 140, "Tiếng ồn", "Noise", 1),
        _m("level", "m", -10, 30, "Mực nước", "Water level"),
        _m("fill", "%", 0, 100, "Mức đầy thùng rác", "Bin fill level", 0),
        _m("bin_temp", "°C", -20, 150, "Nhiệt độ thùng rác", "Bin temperature", 1),
        _m("battery", "V", 0, 60, "Điện áp pin", "Battery voltage"),
        _m("rssi", "dBm", -150, 0, "Cường độ tín hiệu", "Signal strength (RSSI)", 0),
    )
}


# --------------------------------------------------------------------------- payloads


class _TelemetryWire(msgspec.Struct, forbid_unknown_fields=False):
    ts: int | str | None = None
    seq: int | None = None
    metrics: dict[str, Any] | None = None
    gw: str | None = None
    flags: dict[str, list[str]] | None = None


_decoder = msgspec.json.Decoder(_TelemetryWire)
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Reading:
    """One station's readings at one instant, as carried by a telemetry message."""

    commune: str
    station: str
    ts_ms: int
    seq: int
    metrics: dict[str, float]
    gw: str | None = None
    flags: dict[str, list[str]] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return telemetry_topic(self.commune, self.station)

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {"ts": self.ts_ms, "seq": self.seq, "metrics": self.metrics}
        if self.gw:
            body["gw"] = self.gw
        if self.flags:
            body["flags"] = self.flags
        return _encoder.encode(body)


# Rejection reasons (docs/protocol.md lists them with their meaning). Stable strings: the
# dead-letter store and /metrics use them as keys.
R_TOO_LARGE = "payload_too_large"
R_BAD_UTF8 = "bad_utf8"
R_BAD_JSON = "bad_json"
R_BAD_TYPE = "bad_type"
R_NON_FINITE = "non_finite"
R_UNKNOWN_METRIC = "unknown_metric"
R_OUT_OF_RANGE = "out_of_range"
R_TS_MISSING = "ts_missing"
R_TS_FUTURE = "ts_future"
R_TS_TOO_OLD = "ts_too_old"
R_BAD_TOPIC = "bad_topic"
R_NO_METRICS = "no_metrics"
R_DB_REJECTED = "db_rejected"
R_BAD_STATUS = "bad_status"
R_INTERNAL = "internal_error"

REJECTION_REASONS = (
    R_TOO_LARGE, R_BAD_UTF8, R_BAD_JSON, R_BAD_TYPE, R_NON_FINITE, R_UNKNOWN_METRIC,
    R_OUT_OF_RANGE, R_TS_MISSING, R_TS_FUTURE, R_TS_TOO_OLD, R_BAD_TOPIC, R_NO_METRICS,
    R_DB_REJECTED, R_BAD_STATUS, R_INTERNAL,
)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str
    metric: str | None = None


@dataclass(slots=True)
class Decoded:
    """Result of decoding one telemetry message: the good part and the reasons for the rest."""

    reading: Reading | None
    rejections: list[Rejection]


# Nesting the contract needs (the top-level object is level 1): telemetry 3 (flags → metric → list),
# status 4 (gateway status → sources → source → errors). One level more is allowed for additive
# fields; anything deeper is `bad_json` (docs/protocol.md, "Strict rules").
MAX_DEPTH_TELEMETRY = 4
MAX_DEPTH_STATUS = 5
# RFC 3339 `date-time` (section 5.6), ASCII digits only: `T`/`Z` in either case, an offset required,
# 1–9 fraction digits (nanoseconds: more than any clock sends).
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                      r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class StatusError(ValueError):
    """A status payload broke the contract; ``reason`` is one of REJECTION_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def parse_ts(value: Any) -> int:
    """``ts`` as integer ms since the epoch: integer ms, or an RFC 3339 date-time with an offset.

    Only RFC 3339: Python's ``fromisoformat`` also takes ISO 8601 forms (week dates, no seconds,
    basic format, a space) that other readers of the same payload would not. Digits past the
    millisecond are truncated (storage keeps ms).
    """
    if isinstance(value, bool):
        raise ValueError("ts must be integer milliseconds or an RFC 3339 string, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _RFC3339.fullmatch(value) is None:
            raise ValueError(f"ts {value!r} is not an RFC 3339 date-time with an offset "
                             "(e.g. 2026-05-28T20:26:39.5+07:00)")
        if value[17:19] == "60":
            raise ValueError(f"ts {value!r} is a leap second: device clocks (NTP) never send one, "
                             "and it has no single instant in milliseconds since the epoch")
        # the shape is RFC 3339 (checked above); the C parser does the calendar (no 31 February,
        # hour < 24, offset < 24 h) and keeps 6 fraction digits, truncated to ms below
        if value[10] == "t" or value[-1] in "Zz":
            value = f"{value[:10]}T{value[11:-1]}+00:00" if value[-1] in "Zz" else f"{value[:10]}T{value[11:]}"
        try:
            instant = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"ts {value!r} is not a real date and time: {exc}") from exc
        return (instant - _EPOCH) // _ONE_MS
    raise ValueError(f"ts must be integer milliseconds or an RFC 3339 string, got {type(value).__name__}")


def decode_telemetry(commune: str, station: str, payload: bytes, now_ms: int) -> Decoded:
    """Validate one telemetry payload. Never raises on bad input: reasons come back as data."""
    try:
        return _decode_telemetry(commune, station, payload, now_ms)
    except RecursionError:
        # the contract nests three levels at most; thousands of `[` are an attack, not a bug of ours
        return Decoded(None, [Rejection(R_BAD_JSON, "JSON nested too deeply for the contract")])


def _decode_telemetry(commune: str, station: str, payload: bytes, now_ms: int) -> Decoded:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Decoded(None, [Rejection(R_TOO_LARGE, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")])
    # Hot path: msgspec decodes straight into the struct (rejecting invalid UTF-8, lone surrogates,
    # NaN, and over ~1,000 levels with RecursionError), and `_nothing_unseen` proves from a byte
    # count that the raw JSON holds no duplicate key and no field the struct skipped. Anything else
    # takes the exact path: the stdlib parser with a duplicate-key hook, a depth and string walk.
    try:
        wire: _TelemetryWire | Rejection = _decoder.decode(payload)
        exact = not _nothing_unseen(payload, wire)  # type: ignore[arg-type]
    except (msgspec.DecodeError, msgspec.ValidationError):
        exact = True
    if exact:
        wire = _exact_telemetry(payload)
    if isinstance(wire, Rejection):
        return Decoded(None, [wire])
    if wire.ts is None:
        return Decoded(None, [Rejection(R_TS_MISSING, "field `ts` is missing")])
    try:
        ts_ms = parse_ts(wire.ts)
    except ValueError as exc:
        return Decoded(None, [Rejection(R_BAD_TYPE, str(exc))])
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return Decoded(None, [Rejection(R_TS_FUTURE, f"ts {ts_ms} is {(ts_ms - now_ms) / 1000:.0f} s in the future")])
    if ts_ms < MIN_TS_MS:
        return Decoded(None, [Rejection(R_TS_TOO_OLD, f"ts {ts_ms} is before 2000-01-01")])
    if wire.seq is None or not 0 <= wire.seq <= SEQ_MAX:
        return Decoded(None, [Rejection(R_BAD_TYPE, f"field `seq` must be an integer in 0 … {SEQ_MAX}")])
    if not wire.metrics:
        return Decoded(None, [Rejection(R_NO_METRICS, "field `metrics` is missing or empty")])
    if wire.gw is not None and not valid_id(wire.gw):
        return Decoded(None, [Rejection(R_BAD_TYPE, f"field `gw` {wire.gw!r} is not a valid id")])
    good: dict[str, float] = {}
    rejections: list[Rejection] = []
    for name, value in wire.metrics.items():
        metric = METRICS.get(name)
        kind = type(value)
        # the common case in one test: NaN and ±Infinity fail the range comparison (finite bounds)
        if metric is not None and (kind is float or kind is int) and metric.lo <= value <= metric.hi:
            good[name] = float(value)
        elif (kind is list or kind is dict) and 2 + _depth(value) > MAX_DEPTH_TELEMETRY:
            # the byte count of the hot path does not see containers without keys: checked here
            return Decoded(None, [Rejection(R_BAD_JSON, f"metric {name!r} nests deeper than the "
                                            f"contract's {MAX_DEPTH_TELEMETRY} levels")])
        elif metric is None:
            rejections.append(Rejection(R_UNKNOWN_METRIC, f"metric {name!r} is not in the registry", name))
        elif kind is not float and kind is not int:  # not bool: a bool is no reading
            rejections.append(Rejection(R_BAD_TYPE, f"metric {name!r} must be a number, got {kind.__name__}", name))
        elif kind is float and not math.isfinite(value):
            rejections.append(Rejection(R_NON_FINITE, f"metric {name!r} is {value}", name))
        else:  # exact for integers of any size, too
            rejections.append(Rejection(
                R_OUT_OF_RANGE, f"metric {name!r} = {value} outside {metric.lo}..{metric.hi} {metric.unit}", name))
    flags: dict[str, list[str]] = {}
    if wire.flags:
        for name, names in wire.flags.items():
            if name not in good:
                continue  # flags of a metric not stored are not stored either
            if all(map(valid_id, names)):
                flags[name] = names
            else:
                # flags are stored as `metric:flag,flag;…`: a free string could forge another
                # metric's flags, and a reading must not be stored without the flags it came with
                del good[name]
                rejections.append(Rejection(R_BAD_TYPE, f"metric {name!r} has a flag that is not a flag "
                                            f"name ({ID_PATTERN}): {names!r}"[:300], name))
    if not good:
        return Decoded(None, rejections)
    return Decoded(Reading(commune, station, ts_ms, wire.seq, good, wire.gw, flags), rejections)


def _nothing_unseen(payload: bytes, wire: _TelemetryWire) -> bool:
    """True when every key of ``payload`` is one the struct decode kept: no duplicate, no unknown.

    Without a ``\\u`` escape, a string's raw bytes hold exactly the ``:`` of its decoded value, so
    the raw ``:`` count is (members of every object) + (``:`` inside strings). Counting only what
    the struct kept (its members, the ``:`` of a ``ts`` string) can reach the raw count only when
    nothing was dropped: a duplicate key (the first value is dropped), an unknown or null field, a
    ``:`` anywhere else. Equal counts prove there is no duplicate key; a miss only means the exact
    path. Nesting needs no count here: every kept field is typed flat except metric values, which
    the caller checks. A few hundred ns per message (docs/performance.md).
    """
    if b"\\u" in payload:
        return False
    metrics, flags, ts = wire.metrics, wire.flags, wire.ts
    members = ((ts is not None) + (wire.seq is not None) + (metrics is not None) + (wire.gw is not None)
               + (flags is not None))
    if metrics:
        members += len(metrics)
    if flags:
        members += len(flags)
    if type(ts) is str:
        members += ts.count(":")
    return payload.count(b":") == members


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return body


def _exact_json(payload: bytes, max_depth: int, allow_non_finite: bool) -> Any:
    """Parse with every contract rule on the raw JSON; a Rejection instead of raising.

    Rules: UTF-8; JSON; no duplicate key in any object (which value wins differs between
    parsers, so a reader downstream could see another reading than the one stored); at most
    ``max_depth`` levels; every string (keys too) encodable as UTF-8, so no lone surrogate.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(R_BAD_UTF8, f"invalid UTF-8 at byte {exc.start}")
    try:
        body = json.loads(text, object_pairs_hook=_object_without_duplicates,
                          parse_constant=None if allow_non_finite else _refuse_constant)
    except _DuplicateKey as exc:
        return Rejection(R_BAD_JSON, f"duplicate key {exc.args[0]!r} in a JSON object")
    except RecursionError:
        return Rejection(R_BAD_JSON, "JSON nested too deeply for the contract")
    except ValueError as exc:
        return Rejection(R_BAD_JSON, f"not valid JSON ({exc})")
    unencodable: str | None = None  # reported after the whole walk: too deep is `bad_json` first
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                return Rejection(R_BAD_JSON, f"JSON nested deeper than the contract's {max_depth} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if unencodable is None and type(key) is str and not _encodable(key):
                    unencodable = key
                stack.append((value, depth + 1))
        elif unencodable is None and type(node) is str and not _encodable(node):
            unencodable = node
    if unencodable is not None:
        return Rejection(R_BAD_UTF8, f"string {unencodable[:100]!r} holds a lone UTF-16 surrogate "
                         "(not encodable as UTF-8)")
    return body


def _depth(node: Any) -> int:
    """Levels of a decoded JSON value (a scalar is 0). Only for values already parsed (bounded)."""
    if isinstance(node, dict):
        return 1 + max(map(_depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(_depth, node), default=0)
    return 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strict_generic(payload: bytes, max_depth: int) -> Any:
    """msgspec's generic decode, proven free of duplicate keys by the byte count over the whole
    tree; a Rejection when too deep; None when that cannot be proven (the stdlib path decides).

    For payloads the struct decode could not vouch for (unknown fields): ~3× cheaper than the
    stdlib parser with a Python hook per object.
    """
    if b"\\u" in payload:
        return None
    try:
        body = msgspec.json.decode(payload)  # strict: no NaN, no lone surrogate, UTF-8
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    members = colons = 0
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            if depth > max_depth:
                return Rejection(R_BAD_JSON, f"JSON nested deeper than the contract's {max_depth} levels")
            members += len(node)
            for key, value in node.items():
                colons += key.count(":")
                stack.append((value, depth + 1))
        elif kind is list:
            if depth > max_depth:
                return Rejection(R_BAD_JSON, f"JSON nested deeper than the contract's {max_depth} levels")
            stack.extend([(value, depth + 1) for value in node])
        elif kind is str:
            colons += node.count(":")
    return body if payload.count(b":") == members + colons else None


def _exact_telemetry(payload: bytes) -> _TelemetryWire | Rejection:
    body = _strict_generic(payload, MAX_DEPTH_TELEMETRY)
    if body is None:
        # NaN and ±Infinity are not JSON, but firmware (and Python's json) emits them: parsed here
        # so the rejection names the metric that is non-finite, and the message's other metrics land
        body = _exact_json(payload, MAX_DEPTH_TELEMETRY, allow_non_finite=True)
    if isinstance(body, Rejection):
        return body
    try:
        return msgspec.convert(body, _TelemetryWire)
    except msgspec.ValidationError as exc:
        return Rejection(R_BAD_TYPE, str(exc))


def decode_status(payload: bytes) -> dict[str, Any]:
    """Decode a station or gateway status payload; raises StatusError with a reason and detail."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise StatusError(R_TOO_LARGE, f"status payload of {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    # statuses are rare (one per device per minute or on change): always the exact path
    body = _exact_json(payload, MAX_DEPTH_STATUS, allow_non_finite=False)
    if isinstance(body, Rejection):
        raise StatusError(body.reason, f"status: {body.detail}")
    if not isinstance(body, dict):
        raise StatusError(R_BAD_STATUS, "status must be a JSON object")
    if not isinstance(body.get("online"), bool):
        raise StatusError(R_BAD_STATUS, "status field `online` must be true or false")
    if "ts" not in body:
        raise StatusError(R_BAD_STATUS, "status field `ts` is missing")
    try:
        body["ts"] = parse_ts(body["ts"])
    except ValueError as exc:
        raise StatusError(R_BAD_STATUS, str(exc)) from exc
    return body


def encode_json(body: Any) -> bytes:
    return _encoder.encode(body)
