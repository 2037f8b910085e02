"""Edge processing between a source and the spool (numpy): calibration, quality flags, aggregation.

Configured per station inside its ``source:`` mapping (keys ``calibration``, ``quality``,
``aggregate``; docs/edge.md). Nothing here drops a value silently: a suspicious value is sent with a
quality flag from ``contract.QUALITY_FLAGS``; a value outside the metric's physical range is not a
reading and is counted as a source error by the gateway.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from villagewatch import contract
from villagewatch.schema import Ctx, Key, ListOf, Map, Num, OneOf

PROCESSING_KEYS = ("calibration", "quality", "aggregate")
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
# Floors on the spike scale (sigma): never below RESOLUTION_STEPS sensor steps (so quantization of a
# smooth signal cannot make a spike), 0.1 % of the level, or an absolute 1e-6.
RESOLUTION_STEPS = 2.0
RELATIVE_FLOOR = 1e-3
ABSOLUTE_FLOOR = 1e-6
AGG_STATS = ("mean", "min", "max", "last")


def _date(value: Any, ctx: Ctx) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ctx.error(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def _point(value: Any, ctx: Ctx) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ctx.error("a calibration point is [raw, reference], e.g. [4.01, 4.00]")
    return float(Num()(value[0], ctx)), float(Num()(value[1], ctx))


def _metric_key(value: Any, ctx: Ctx) -> None:
    if value not in contract.METRICS:
        raise ctx.error(f"unknown metric {value!r}", "see the metric registry in docs/protocol.md")


CALIBRATION = Map([
    Key("points", ListOf(_point, min_len=2), doc="[[raw, reference], ...] from the calibration session"),
    Key("degree", Num(1, 3, integer=True), required=False, default=1),
    Key("date", _date, doc="day of the calibration"),
    Key("valid_days", Num(1, 3650, integer=True), required=False, default=180),
], name="calibration")

def _resolution(value: Any, ctx: Ctx) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ctx.error("resolution is a mapping metric: step, e.g. {ph: 0.01, level: 0.005}")
    out = {}
    for name, step in value.items():
        _metric_key(name, ctx)
        out[name] = float(Num(1e-9, 1e6)(step, ctx))
    return out


# A dry day reads rain 0 mm for hours and a calm night wind 0 m/s: flagging those as a stuck sensor
# would hide real readings (flagged readings are not evidence). A site can add its own.
STEADY_VALUES: dict[str, tuple[float, ...]] = {"rain": (0.0,), "wind": (0.0,)}


def _steady_values(value: Any, ctx: Ctx) -> dict[str, tuple[float, ...]]:
    if not isinstance(value, dict):
        raise ctx.error("steady_values is a mapping metric: [values], e.g. {rain: [0]}")
    out = dict(STEADY_VALUES)
    for name, values in value.items():
        _metric_key(name, ctx)
        items = values if isinstance(values, list) else [values]
        out[name] = tuple(float(Num()(v, ctx)) for v in items)
    return out


QUALITY = Map([
    Key("spike_window", Num(5, 101, integer=True), required=False, default=25),
    Key("spike_k", Num(2, 50), required=False, default=6.0, doc="robust z-score above which a value is a spike"),
    Key("shift_count", Num(2, 100, integer=True), required=False, default=3,
        doc="consecutive values beyond the old level, agreeing with each other, that make a level shift"),
    Key("resolution", _resolution, required=False, default=dict,
        doc="the sensor's step per metric; default 10^-decimals of the metric registry"),
    Key("flatline_count", Num(3, 100_000, integer=True), required=False, default=30,
        doc="identical consecutive values that mean a stuck sensor"),
    Key("steady_values", _steady_values, required=False, default=lambda: dict(STEADY_VALUES),
        doc="values a healthy sensor may hold for hours, never a flatline (rain 0 mm on a dry day)"),
], name="quality")

PROCESSING_SCHEMA = Map([
    Key("calibration", Map([], extra=CALIBRATION, extra_key=_metric_key, name="calibration per metric"),
        required=False, default=dict),
    Key("quality", QUALITY, required=False, default=lambda: QUALITY({}, Ctx("<defaults>"))),
    Key("aggregate", Map([Key("interval_s", Num(1, 86_400))], extra=OneOf(*AGG_STATS), extra_key=_metric_key,
                         name="aggregation"), required=False),
], name="processing")


@dataclass(frozen=True)
class Calibration:
    coefficients: np.ndarray  # numpy.polyfit order: highest power first
    expires: dt.date

    @classmethod
    def fit(cls, points: list[tuple[float, float]], degree: int, date: dt.date, valid_days: int) -> Calibration:
        raw, ref = np.array(points, dtype=float).T
        degree = min(degree, len(points) - 1)
        return cls(np.polyfit(raw, ref, degree), date + dt.timedelta(days=valid_days))

    def apply(self, value: float) -> float:
        return float(np.polyval(self.coefficients, value))

    def expired(self, ts_ms: int) -> bool:
        return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).date() > self.expires


@dataclass
class _Window:
    start_ms: int
    values: dict[str, list[float]] = field(default_factory=dict)
    flags: dict[str, set[str]] = field(default_factory=dict)


def _median_sorted(xs: list[float]) -> float:
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2


class StationProcessor:
    """State of one station's processing: history for spike/flatline, the open aggregation window."""

    def __init__(self, config: dict[str, Any]):
        self.calibrations = {m: Calibration.fit(c["points"], c["degree"], c["date"], c["valid_days"])
                             for m, c in (config.get("calibration") or {}).items()}
        q = config.get("quality") or QUALITY({}, Ctx("<defaults>"))
        self.spike_window, self.spike_k, self.flatline_count = q["spike_window"], q["spike_k"], q["flatline_count"]
        self.shift_count: int = q.get("shift_count", 3)
        self.resolution: dict[str, float] = dict(q.get("resolution") or {})
        self.steady_values: dict[str, tuple[float, ...]] = dict(q.get("steady_values") or STEADY_VALUES)
        self.spike_min_history = max(5, self.spike_window // 2)
        agg = config.get("aggregate")
        self.agg_interval_ms = int(agg["interval_s"] * 1000) if agg else 0
        self.agg_stats = {k: v for k, v in (agg or {}).items() if k != "interval_s"}
        self.history: dict[str, deque[float]] = {}
        self.pending: dict[str, list[float]] = {}  # values beyond the old level, not yet a level shift
        self.scale_floor: dict[str, float] = {}
        self.same: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.window: _Window | None = None

    def process(self, ts_ms: int, metrics: dict[str, float], source_flags: dict[str, list[str]] | None = None,
                ) -> list[tuple[int, dict[str, float], dict[str, list[str]]]]:
        """Calibrated values with flags (the source's first, e.g. ``suspect``); with aggregation, the
        closed windows (usually none or one)."""
        values: dict[str, float] = {}
        flags: dict[str, list[str]] = {}
        for name, raw in metrics.items():
            value = float(raw)
            fl: list[str] = list((source_flags or {}).get(name, ()))
            cal = self.calibrations.get(name)
            if cal is not None:
                value = cal.apply(value)
                if cal.expired(ts_ms):
                    fl.append("calibration_expired")
            if self._is_spike(name, value):
                fl.append("spike")
            if self._is_flatline(name, value):
                fl.append("flatline")
            values[name] = value
            if fl:
                flags[name] = fl
        if not self.agg_interval_ms:
            return [(ts_ms, values, flags)]
        return self._aggregate(ts_ms, values, flags)

    def _is_spike(self, name: str, value: float) -> bool:
        """Robust z-score of the step from the last accepted value, with two guards that
        keep it from hiding real data: a scale floor (quantized smooth data has MAD 0, and then any
        step of the last digit would be a "spike"), and level shifts (``shift_count`` consecutive
        values beyond the old level that agree with each other are the new level, not spikes)."""
        hist = self.history.get(name)
        if hist is None:
            hist = self.history[name] = deque(maxlen=self.spike_window)
        if len(hist) < self.spike_min_history:
            hist.append(value)
            return False
        # The reference is the last accepted value moved on by the typical step (median of the
        # history's increments), the scale the spread (MAD) of those increments. A window median as
        # reference lags a curve: near every crest of a smooth tide or diurnal cycle it made z > 6.
        # Pure Python on <= 101 floats: several times faster than numpy per reading at these sizes.
        increments = sorted(b - a for a, b in pairwise(hist))
        typical = _median_sorted(increments)
        mad = _median_sorted(sorted(abs(d - typical) for d in increments))
        predicted = hist[-1] + typical
        # the step the data shows (smallest change between accepted values) counts as a resolution
        # too: a sensor coarser than its metric's decimals must not make spikes of its last digit
        observed_step = min((abs(d) for d in increments if d), default=0.0)
        floor = max(self._scale_floor(name), RESOLUTION_STEPS * observed_step, RELATIVE_FLOOR * abs(predicted))
        # and never below the spread of the values themselves: 24 increments can look calmer than
        # the noise by chance, and then ordinary noise beside them would be a "spike"
        ordered = sorted(hist)
        level = _median_sorted(ordered)
        spread = _median_sorted(sorted(abs(x - level) for x in ordered))
        scale = max(MAD_TO_SIGMA * max(mad, spread), floor)
        deviation = value - predicted
        if abs(deviation) <= self.spike_k * scale:
            self.pending.pop(name, None)
            hist.append(value)
            return False
        pending = self.pending.setdefault(name, [])
        if pending:
            prev = pending[-1]
            # agreeing: same side of the old level, and clearly nearer the previous candidate than the
            # old level (so noise flagged beside the old level cannot carry a real outlier into it)
            if (prev - predicted) * deviation <= 0 or abs(value - prev) >= abs(deviation) / 2:
                pending.clear()
        pending.append(value)
        if len(pending) >= self.shift_count:
            # a level shift: the new level becomes the history; earlier flags stay as published
            hist.clear()
            hist.extend(pending)
            pending.clear()
            return False
        return True

    def _scale_floor(self, name: str) -> float:
        floor = self.scale_floor.get(name)
        if floor is None:
            step = self.resolution.get(name)
            if step is None:
                metric = contract.METRICS.get(name)
                step = 10.0 ** -metric.decimals if metric is not None else 0.0
            floor = self.scale_floor[name] = max(RESOLUTION_STEPS * step, ABSOLUTE_FLOOR)
        return floor

    def _is_flatline(self, name: str, value: float) -> bool:
        n = self.same.get(name, 0) + 1 if self.last.get(name) == value else 1
        self.same[name], self.last[name] = n, value
        return n >= self.flatline_count and value not in self.steady_values.get(name, ())

    def _aggregate(self, ts_ms: int, values: dict[str, float], flags: dict[str, list[str]]):
        start = ts_ms - ts_ms % self.agg_interval_ms
        out = []
        if self.window is not None and start != self.window.start_ms:
            out.append(self.flush())
        if self.window is None:
            self.window = _Window(start)
        for name, v in values.items():
            self.window.values.setdefault(name, []).append(v)
            self.window.flags.setdefault(name, set()).update(flags.get(name, ()))
        return [o for o in out if o is not None]

    def flush(self) -> tuple[int, dict[str, float], dict[str, list[str]]] | None:
        """Close the open aggregation window. Its reading carries the window's start as ts."""
        w, self.window = self.window, None
        if w is None or not w.values:
            return None
        values, flags = {}, {}
        for name, vs in w.values.items():
            arr = np.array(vs)
            stat = self.agg_stats.get(name, "mean")
            values[name] = float({"mean": np.mean, "min": np.min, "max": np.max, "last": lambda a: a[-1]}[stat](arr))
            flags[name] = sorted(w.flags[name] | {"aggregated"})
        return w.start_ms, values, flags
