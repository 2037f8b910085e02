"""Typed status payloads of the wire contract: what a gateway and a station say about themselves.

One source for the fields: the edge builds these structs, the ingest and the alerts decode them,
docs/protocol.md lists them (tests/test_storage_doc.py checks every field is there). Every field
but ``online`` and ``ts`` has a default, because a Last Will or a third-party station sends only
the two; fields this module does not know are kept by the ingest (see ``storage.status_fields``),
so a device can say more than the contract without losing it.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Status(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    pass


class SpoolSalvage(_Status):
    """What a gateway found when its spool file was damaged at start-up (docs/edge.md)."""

    damaged_file: str = ""
    error: str = ""
    salvaged: int = 0
    lost: int | None = None  # None: the damage hides how many readings were lost


class QueueStatus(_Status):
    """The gateway's durable spool: what waits to be published."""

    depth: int = 0
    bytes: int = 0
    budget_bytes: int = 0
    oldest_ts: int | None = None
    oldest_age_s: float = 0.0
    inflight: int = 0
    replaying: bool = False
    drops: int = 0  # readings dropped at the spool's byte budget since the spool was created
    drops_by_station: dict[str, int] = {}
    write_errors: int = 0
    last_write_error: str | None = None
    salvage: SpoolSalvage | None = None
    storage: str = "disk"  # disk | memory (the disk refused the spool file)
    storage_error: str | None = None
    pending_in_memory: int = 0
    memory_drops: int = 0


class ClockStatus(_Status):
    """Whether the gateway trusts its wall clock (edge/clock.py, docs/edge.md "Clock policy")."""

    state: str = "synced"  # synced | unsynced | stepped
    trusted: bool = True
    reason: str | None = None
    mode: str = "sane"  # sane | os
    os_synced: bool | None = None
    os_offset_s: float | None = None  # the kernel's estimate of the clock's error (NTP), when known
    offset_s: float | None = None  # operator offset
    steps: int = 0
    last_step_s: float | None = None
    held: int = 0  # readings held until the clock is trusted
    released: dict[str, int] = {}  # flag → readings released re-timed or estimated


class LinkStatus(_Status):
    """The gateway's MQTT link."""

    state: str = "disconnected"  # connected | disconnected
    broker: str = ""  # URL without password
    since_ts: int = 0
    connects: int = 0
    disconnects: int = 0
    last_error: str | None = None


class SourceStatus(_Status):
    """One source (Modbus bus, serial sensor, …) of the gateway."""

    type: str = ""
    stations: list[str] = []
    readings: int = 0
    errors: dict[str, int] = {}
    last_error: str | None = None


class GatewayStatus(_Status):
    """Retained on ``vw/v1/{commune}/_gw/{gateway}/status``."""

    online: bool
    ts: int
    gw: str | None = None
    reason: str | None = None  # lwt | stopped | …
    uptime_s: float | None = None
    clock: ClockStatus | None = None
    queue: QueueStatus | None = None
    published: int | None = None
    replayed: int | None = None
    link: LinkStatus | None = None
    sources: dict[str, SourceStatus] = {}
    cpu_temp_c: float | None = None
    disk_free_mb: int | None = None
    rss_mb: float | None = None
    load1: float | None = None


class StationStatus(_Status):
    """Retained on ``vw/v1/{commune}/{station}/status``; published by its gateway or the station."""

    online: bool
    ts: int
    gw: str | None = None
    reason: str | None = None  # lwt | gateway_offline | …
    last_reading_ts: int | None = None
    errors: dict[str, int] = {}


STATUS_STRUCTS: tuple[type[_Status], ...] = (
    GatewayStatus, StationStatus, ClockStatus, QueueStatus, LinkStatus, SourceStatus, SpoolSalvage)

_encoder = msgspec.json.Encoder()


def encode(status: GatewayStatus | StationStatus) -> bytes:
    return _encoder.encode(status)


def to_dict(status: _Status) -> dict[str, Any]:
    """Plain JSON-able dict (the gateway's status file on disk, tests)."""
    out: dict[str, Any] = msgspec.to_builtins(status)
    return out


def as_gateway(body: dict[str, Any]) -> GatewayStatus:
    """A decoded gateway status body (``contract.decode_status``) as the typed struct.

    Raises ValueError naming the field with the wrong type."""
    try:
        return msgspec.convert(body, GatewayStatus, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"gateway status: {exc}") from exc


def as_station(body: dict[str, Any]) -> StationStatus:
    try:
        return msgspec.convert(body, StationStatus, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"station status: {exc}") from exc
