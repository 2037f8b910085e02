"""InfluxDB line protocol, written by hand.

Measured on these machines (../shared/reference/libraries.md): influxdb-client's
``Point.to_line_protocol()`` serialises ~160k points/s, a plain f-string serializer ~1.4M/s.
Ingest spends its CPU here, so we keep a small, tested serializer of our own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from villagewatch import contract, storage

_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_TAG_ESC = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", "\n": r"\n"})


def escape_measurement(name: str) -> str:
    return name.translate(_MEAS_ESC)


def escape_tag(value: str) -> str:
    return value.translate(_TAG_ESC)


def escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_field(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value} cannot be written")
        return repr(value)
    if isinstance(value, str):
        return escape_string_field(value)
    raise TypeError(f"unsupported field type {type(value).__name__}")


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object], ts_ms: int) -> str:
    """One point, timestamp in milliseconds (write with precision=ms). Empty tag values are skipped."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    field_part = ",".join(f"{escape_tag(k)}={format_field(v)}" for k, v in fields.items())
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {ts_ms}"


_TAG_PREFIX: dict[tuple[str, str, str | None], str] = {}


def _telemetry_prefix(commune: str, station: str, kind: str | None) -> str:
    key = (commune, station, kind)
    prefix = _TAG_PREFIX.get(key)
    if prefix is None:
        t = storage.Telemetry
        tags = {t.COMMUNE: commune, t.STATION: station}
        if kind:
            tags[t.KIND] = kind
        prefix = escape_measurement(t.MEASUREMENT) + "".join(
            f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()))
        if len(_TAG_PREFIX) > 200_000:  # bounded: a flood of bogus station ids must not grow memory
            _TAG_PREFIX.clear()
        _TAG_PREFIX[key] = prefix
    return prefix


def telemetry_line(reading: contract.Reading, kind: str | None = None) -> str:
    """The storage schema of docs/protocol.md: tags commune, station, kind; a float per metric.

    The same reading always yields the same series and timestamp, so a redelivery overwrites
    the point with identical values instead of adding one.
    """
    # Hot path (once per reading): tag prefix cached per station; metric names come from the
    # registry (ids that need no escaping) and values are finite floats (checked by the contract).
    fields = ",".join([f"{name}={value!r}" for name, value in reading.metrics.items()])
    fields += f",{storage.Telemetry.SEQ}={reading.seq}i"
    if reading.flags:
        flags = ";".join(f"{m}:{','.join(fl)}" for m, fl in sorted(reading.flags.items()) if fl)
        fields += f",{storage.Telemetry.FLAGS}={escape_string_field(flags)}"
    return f"{_telemetry_prefix(reading.commune, reading.station, kind)} {fields} {reading.ts_ms}"
