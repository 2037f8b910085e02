"""The source interface: how a gateway gets readings from sensors.

A source *type* (one folder under edge/sources/) declares the schema of its per-station options
(the station's ``source:`` mapping in the site file, minus ``type`` and the processing keys) and a
``bus_key``: stations whose options give the same key share ONE instance — one RS-485 bus, one
serial port, one local broker has one owner.

An instance's ``run(sink)`` runs until cancelled. Polled sources (Modbus, simulated) implement
``poll(station, now_ms)`` and inherit a scheduler; push sources (serial lines, MQTT bridge) override
``run``. A source reports what the sensor produced with ``sink.reading`` and every failure with
``sink.error`` — a value the sensor did not produce (timeout, CRC error, framing error) is never a
reading.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from villagewatch.schema import Map
from villagewatch.sites import Site, Station


class SourceError(Exception):
    """The device or the link failed (not a bug): ``kind`` is a stable counter key."""

    def __init__(self, kind: str, detail: str, partial: dict[str, float] | None = None,
                 flags: dict[str, list[str]] | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail
        self.partial = partial  # what the device did deliver (e.g. one of two probes answered)
        self.flags = flags  # quality flags of the partial values


@dataclass
class Polled:
    """What a poll delivered: values, their quality flags (e.g. ``suspect``), and the problems seen
    while reading them that did not prevent a value (e.g. ``decode_order``)."""

    metrics: dict[str, float]
    flags: dict[str, list[str]] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)


class Sink(Protocol):
    def reading(self, station_id: str, ts_ms: int, metrics: dict[str, float],
                flags: dict[str, list[str]] | None = None) -> None: ...
    def error(self, source: Source, station_id: str | None, kind: str, detail: str) -> None: ...


@dataclass
class Bound:
    """A station bound to its source, with the validated options of that source type."""

    station: Station
    options: dict[str, Any]


@dataclass
class SourceContext:
    """Gateway-wide settings a source may need."""

    speed: float = 1.0  # divide polling intervals (demo: watch a day of a 60-s station faster)
    seed: int = 0
    data_dir: str = "."
    site: Site | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    clock: Any = None  # the gateway's time source (edge.clock); None: the system clock

    def now_ms(self) -> int:
        """Wall time for a reading's ts: the gateway's clock, so a test (or an operator offset) rules it."""
        return int((self.clock.wall() if self.clock is not None else time.time()) * 1000)


class Source(ABC):
    type_name: ClassVar[str]
    options_schema: ClassVar[Map]

    def __init__(self, key: str, bound: list[Bound], ctx: SourceContext):
        self.key = key
        self.bound = bound
        self.ctx = ctx
        self.errors: Counter[str] = Counter()
        self.readings = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.type_name}:{self.key}" if self.key else self.type_name

    @classmethod
    def bus_key(cls, options: dict[str, Any]) -> str:
        return ""

    @abstractmethod
    async def run(self, sink: Sink) -> None: ...

    async def close(self) -> None:
        """Release the device (port, connection). Called once after ``run`` is cancelled."""
        return None


class PolledSource(Source):
    """A source the gateway asks: each station is polled at its interval, one request at a time."""

    @abstractmethod
    async def poll(self, b: Bound, now_ms: int) -> dict[str, float] | Polled:
        """The station's metrics now; raise SourceError when the device did not deliver."""

    async def run(self, sink: Sink) -> None:
        # one loop for all stations of this instance: requests on one bus never overlap
        due = {b.station.id: 0.0 for b in self.bound}
        by_id = {b.station.id: b for b in self.bound}
        while True:
            now = time.monotonic()
            for sid, at in sorted(due.items(), key=lambda kv: kv[1]):
                if at > now:
                    continue
                b = by_id[sid]
                interval = b.station.interval_s / self.ctx.speed
                due[sid] = max(at + interval, now) if at else now + interval
                ts_ms = self.ctx.now_ms()
                try:
                    metrics = await self.poll(b, ts_ms)
                except SourceError as exc:
                    sink.error(self, sid, exc.kind, exc.detail)
                    if exc.partial:
                        sink.reading(sid, ts_ms, exc.partial, exc.flags)
                    continue
                if isinstance(metrics, Polled):
                    for exc in metrics.errors:
                        sink.error(self, sid, exc.kind, exc.detail)
                    if metrics.metrics:
                        sink.reading(sid, ts_ms, metrics.metrics, metrics.flags)
                elif metrics:
                    sink.reading(sid, ts_ms, metrics)
            await asyncio.sleep(max(0.0, min(due.values()) - time.monotonic()))
