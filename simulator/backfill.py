"""Fill a past period with simulated history, processed exactly as a gateway would process it.

The signals come from ``edge.sources.simulated.model`` (pure functions of seed, station and time,
with the simulator's sensor faults: spikes, flatlines, dropouts). Each station's readings then go,
in time order, through ``edge.processing.StationProcessor`` configured from the station's
``source:`` mapping in the site file — the calibration, spike/flatline flags and aggregation a real
gateway applies — and the gateway's physical-range check, before they are written to InfluxDB in
the storage schema of docs/protocol.md. So the history carries the quality flags a gateway sends,
and a report or alert replay over it sees what it would see in the field.

Deterministic: the same site, period and seed write the same points (same values, flags, times).
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from edge.processing import PROCESSING_KEYS, PROCESSING_SCHEMA, StationProcessor
from edge.sources.simulated.model import Faults, station_series
from villagewatch import contract
from villagewatch.errors import DeviceError, UserError
from villagewatch.lineproto import telemetry_line
from villagewatch.schema import Ctx
from villagewatch.sites import Site, Station


@dataclass(frozen=True)
class Period:
    """[start_ms, end_ms) from local dates: ``--to`` is the last day included."""

    first: dt.date
    last: dt.date
    start_ms: int
    end_ms: int

    @classmethod
    def parse(cls, first: str, last: str, timezone: str) -> Period:
        days = []
        for name, text in (("--from", first), ("--to", last)):
            try:
                days.append(dt.date.fromisoformat(text.strip()))
            except ValueError:
                raise UserError(f"{name} {text!r}: không phải ngày / not a date",
                                hint="viết YYYY-MM-DD / write YYYY-MM-DD, e.g. --from 2025-10-01 --to 2025-10-31") from None
        if days[1] < days[0]:
            raise UserError(f"--to {last} trước --from {first} / --to is before --from",
                            hint="--to is the last day included, e.g. --from 2025-10-01 --to 2025-10-31")
        tz = ZoneInfo(timezone)
        start = int(dt.datetime.combine(days[0], dt.time(), tz).timestamp() * 1000)
        end = int(dt.datetime.combine(days[1] + dt.timedelta(days=1), dt.time(), tz).timestamp() * 1000)
        return cls(days[0], days[1], start, end)


def processing_config(station: Station) -> dict:
    """The station's edge processing, validated as the gateway validates it (defaults included)."""
    raw = {k: v for k, v in (station.source or {}).items() if k in PROCESSING_KEYS}
    return PROCESSING_SCHEMA(raw, Ctx(f"station {station.id}", "source"))


def processed_readings(site: Site, station: Station, start_ms: int, end_ms: int, seed: int,
                       faults: Faults | None) -> Iterator[contract.Reading]:
    """One station's simulated readings after edge processing, in time order, with their flags."""
    ts, values, keep = station_series(station, start_ms, end_ms, seed, faults)
    processor = StationProcessor(processing_config(station))
    step_ms = int(station.interval_s * 1000)
    names = list(values)
    columns = [values[n].tolist() for n in names]
    keep_list = keep.tolist()
    for i, ts_ms in enumerate(ts.tolist()):
        if not keep_list[i]:
            continue  # a dropout: the node sent nothing
        raw = {n: col[i] for n, col in zip(names, columns, strict=True)}
        for out_ts, out_values, flags in processor.process(ts_ms, raw):
            reading = _as_reading(site, station, out_ts, out_values, flags, step_ms)
            if reading is not None:
                yield reading
    closed = processor.flush() if processor.agg_interval_ms else None
    if closed is not None:
        reading = _as_reading(site, station, *closed, step_ms)
        if reading is not None:
            yield reading


def _as_reading(site: Site, station: Station, ts_ms: int, values: dict[str, float],
                flags: dict[str, list[str]], step_ms: int) -> contract.Reading | None:
    # the gateway's own check (edge/gateway.py _queue): a value outside the metric's physical range
    # is a broken sensor, never a reading; values are rounded as the gateway rounds them
    good = {}
    for name, v in values.items():
        metric = contract.METRICS[name]
        if metric.in_range(v):
            good[name] = round(v, max(metric.decimals, 3))
    if not good:
        return None
    return contract.Reading(site.commune, station.id, ts_ms, ts_ms // step_ms, good, station.gateway,
                            {k: list(v) for k, v in flags.items() if k in good and v})


@dataclass
class InfluxWriter:
    """``/write`` in line protocol, precision ms (InfluxDB 1.x, 2.x v1 API, 3.x)."""

    url: str
    db: str
    user: str | None = None
    password: str | None = None
    token: str | None = None

    def write(self, lines: list[str]) -> None:
        params = {"db": self.db, "precision": "ms"}
        if self.user:
            params.update(u=self.user, p=self.password or "")
        req = urllib.request.Request(f"{self.url.rstrip('/')}/write?{urllib.parse.urlencode(params)}",
                                     data="\n".join(lines).encode(), method="POST")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            hint = ("create it, or point VW_INFLUX_DB at an existing database" if "database not found" in detail
                    else "check VW_INFLUX_USER / VW_INFLUX_PASSWORD / VW_INFLUX_TOKEN")
            raise DeviceError(f"InfluxDB {self.url} từ chối ghi / refused the write: {exc.code} {detail}",
                              hint=hint) from None
        except OSError as exc:
            raise DeviceError(f"không kết nối được InfluxDB / cannot reach InfluxDB at {self.url}: {exc}",
                              hint="is it running? `villagewatch stack up`, or set VW_INFLUX_URL") from None


def backfill(site: Site, period: Period, writer: InfluxWriter, seed: int = 0, faults: Faults | None = None,
             stations: list[str] | None = None, batch: int = 5000,
             progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Write the period's processed readings; returns readings written per station.

    ``progress(station_id, n)`` is called after each batch with the readings it held.
    """
    wanted = [s for s in site.stations.values() if stations is None or s.id in stations]
    written: dict[str, int] = {}
    for st in wanted:
        lines: list[str] = []
        written[st.id] = 0
        for reading in processed_readings(site, st, period.start_ms, period.end_ms, seed, faults):
            lines.append(telemetry_line(reading, st.kind))
            if len(lines) >= batch:
                writer.write(lines)
                written[st.id] += len(lines)
                if progress:
                    progress(st.id, len(lines))
                lines = []
        if lines:
            writer.write(lines)
            written[st.id] += len(lines)
            if progress:
                progress(st.id, len(lines))
    return written


def expected_readings(site: Site, period: Period, stations: list[str] | None = None) -> int:
    """Slots in the period over the chosen stations (an upper bound for the progress bar)."""
    return sum(int((period.end_ms - period.start_ms) / 1000 // s.interval_s)
               for s in site.stations.values() if stations is None or s.id in stations)
