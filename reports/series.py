"""One station's readings of the month as numpy arrays, with the quality flags the gateway sent.

Judging needs the readings themselves: a reading flagged as a sensor fault (``spike``, ``flatline``,
``suspect``, ``calibration_expired``; docs/protocol.md) is not evidence of anything, so it must be
left out of means, peaks, exceedances and episodes — and InfluxQL cannot filter on a field that is
absent from most points (``flags`` is written only when present; a ``!~`` condition drops every
point without it). The report therefore reads the station's metrics and ``flags`` (a few 10⁴ rows a
month per station, in chunks) and does the arithmetic in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reports.influx import InfluxError, InfluxReader, quote_ident, quote_tag
from villagewatch.contract import FIELD_FLAGS, MEASUREMENT_TELEMETRY

# Quality flags that make a reading a sensor fault (not evidence). "aggregated" is not a fault.
FAULT_FLAGS = ("spike", "flatline", "suspect", "calibration_expired")
CHUNK_MS = 6 * 86_400_000  # 8 640 minute readings: under InfluxDB 1.x's default 10 000 rows


def parse_flags(text: str | None) -> dict[str, set[str]]:
    """``"ph:spike,aggregated;do:flatline"`` → ``{"ph": {"spike", "aggregated"}, "do": {"flatline"}}``."""
    out: dict[str, set[str]] = {}
    for part in (text or "").split(";"):
        metric, sep, flags = part.partition(":")
        if sep and metric:
            out.setdefault(metric.strip(), set()).update(f.strip() for f in flags.split(",") if f.strip())
    return out


@dataclass
class StationData:
    ts: np.ndarray  # int64 ms, sorted
    values: dict[str, np.ndarray]  # NaN where the reading has no value for the metric
    faulty: dict[str, np.ndarray] = field(default_factory=dict)  # bool: flagged as a sensor fault

    def present(self, metric: str) -> np.ndarray:
        v = self.values.get(metric)
        return np.zeros(self.ts.size, dtype=bool) if v is None else ~np.isnan(v)

    def valid_mask(self, metric: str) -> np.ndarray:
        return self.present(metric) & ~self.faulty.get(metric, np.zeros(self.ts.size, dtype=bool))

    def valid(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Readings of the metric that are evidence: present and not flagged as a fault."""
        m = self.valid_mask(metric)
        return self.ts[m], self.values[metric][m] if metric in self.values else np.zeros(0)

    def excluded(self, metric: str) -> int:
        return int((self.present(metric) & self.faulty.get(metric, np.zeros(self.ts.size, dtype=bool))).sum())


def station_data(reader: InfluxReader, commune: str, station: str, metrics: list[str], start_ms: int,
                 end_ms: int) -> StationData:
    cols = [quote_ident(m) for m in metrics] + [quote_ident(FIELD_FLAGS)]
    ts: list[int] = []
    values: dict[str, list] = {m: [] for m in metrics}
    flags: list[str | None] = []
    # InfluxDB caps the rows of one answer (max-row-limit, 10 000 by default in 1.x) and marks it
    # "partial": a chunk that comes back partial is split in two and read again, so nothing is lost
    pending = [(lo, min(end_ms, lo + CHUNK_MS)) for lo in range(start_ms, end_ms, CHUNK_MS)]
    while pending:
        lo, hi = pending.pop(0)
        q = (f"SELECT {', '.join(cols)} FROM {quote_ident(MEASUREMENT_TELEMETRY)} WHERE commune = "
             f"{quote_tag(commune)} AND station = {quote_tag(station)} AND time >= {lo}ms AND time < {hi}ms")
        result = reader.query(q)
        if any(s.partial for s in result):
            if hi - lo <= 1000:
                raise InfluxError("InfluxDB returned a partial result for one second of data: raise max-row-limit")
            mid = (lo + hi) // 2
            pending[:0] = [(lo, mid), (mid, hi)]
            continue
        for series in result:
            idx = {c: i for i, c in enumerate(series.columns)}
            for row in series.values:
                ts.append(row[0])
                for m in metrics:
                    v = row[idx[m]] if m in idx else None
                    values[m].append(np.nan if v is None else v)
                flags.append(row[idx[FIELD_FLAGS]] if FIELD_FLAGS in idx else None)
    t = np.asarray(ts, dtype=np.int64)
    data = StationData(t, {m: np.asarray(v, dtype=float) for m, v in values.items()})
    faulty = {m: np.zeros(t.size, dtype=bool) for m in metrics}
    for i, text in enumerate(flags):
        if text:
            for m, fl in parse_flags(text).items():
                if m in faulty and fl.intersection(FAULT_FLAGS):
                    faulty[m][i] = True
    data.faulty = faulty
    return data
