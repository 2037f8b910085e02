"""VN_AQI per Decision 1459/QĐ-TCMT (2019-11-12): pure functions.

Public API
----------
``sub_index(pollutant, concentration) -> float | None``
    Linear interpolation inside the breakpoint band (µg/m³):
    I = (I_{i+1} − I_i) / (BP_{i+1} − BP_i) · (C − BP_i) + I_i. Concentrations at or above the last
    breakpoint give 500. ``pollutant`` is one of ``POLLUTANTS`` (``o3_1h``, ``o3_8h``, ``co``,
    ``so2``, ``no2``, ``pm10``, ``pm25``). Returns None for a missing/negative value, or for O3 8 h
    above its last breakpoint (400 µg/m³: the decision then uses the 1-hour value only).
``nowcast(hourly) -> float | None``
    NowCast of PM over the last 12 hourly means, ``hourly[0]`` the most recent hour, None for a
    missing hour: w* = C_min / C_max, w = ½ if w* ≤ ½ else w*; NowCast = Σ wⁱ⁻¹·cᵢ / Σ wⁱ⁻¹ over the
    hours present. Needs at least 2 of the latest 3 hours, else None.
``hourly_aqi(gases_1h, pm_hourly) -> AqiResult``
    Gases by their 1-hour means; PM by NowCast of their hourly series (most recent first).
``daily_aqi(pm_24h, gases_1h_max, o3_8h_max) -> AqiResult``
    PM by the 24-hour mean; SO2, NO2, CO by the day's largest 1-hour mean; O3 the larger of the
    1-hour and 8-hour sub-indices (1-hour only if the 8-hour mean is above 400).
``band(aqi) -> Band``  (label vi/en, RGB colour, range) and ``BANDS``.
``hourly_means(ts_ms, values, end_hour_ms, hours=12)`` clock-hour means, most recent first.
``day_mean(ts_ms, values, day_end_ms, min_hours=18) -> float | None``
    The decision's 24-hour mean (§2.2.2 a): the arithmetic mean of the day's 1-hour means (hours
    ending 01:00 … 24:00 local time), None when fewer than ``min_hours`` hours hold data.

The overall AQI is the largest sub-index, rounded half up to an integer. The decision requires a
PM sub-index to publish an AQI: without PM2.5 or PM10 the overall value is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

INDEX_LEVELS = np.array([0, 50, 100, 150, 200, 300, 400, 500], dtype=float)

# Table of Decision 1459 (µg/m³). O3 8 h stops at I = 300 (400 µg/m³).
BREAKPOINTS: dict[str, np.ndarray] = {
    "o3_1h": np.array([0, 160, 200, 300, 400, 800, 1000, 1200], dtype=float),
    "o3_8h": np.array([0, 100, 120, 170, 210, 400], dtype=float),
    "co": np.array([0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000], dtype=float),
    "so2": np.array([0, 125, 350, 550, 800, 1600, 2100, 2630], dtype=float),
    "no2": np.array([0, 100, 200, 700, 1200, 2350, 3100, 3850], dtype=float),
    "pm10": np.array([0, 50, 150, 250, 350, 420, 500, 600], dtype=float),
    "pm25": np.array([0, 25, 50, 80, 150, 250, 350, 500], dtype=float),
}
POLLUTANTS = tuple(BREAKPOINTS)
PM = ("pm25", "pm10")


@dataclass(frozen=True)
class Band:
    lo: int
    hi: int
    label_vi: str
    label_en: str
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


BANDS = (
    Band(0, 50, "Tốt", "Good", (0, 228, 0)),
    Band(51, 100, "Trung bình", "Moderate", (255, 255, 0)),
    Band(101, 150, "Kém", "Poor", (255, 126, 0)),
    Band(151, 200, "Xấu", "Bad", (255, 0, 0)),
    Band(201, 300, "Rất xấu", "Very bad", (143, 63, 151)),
    Band(301, 500, "Nguy hại", "Hazardous", (126, 0, 35)),
)


@dataclass(frozen=True)
class AqiResult:
    aqi: int | None
    sub_indices: dict[str, int]
    dominant: str | None

    @property
    def band(self) -> Band | None:
        return band(self.aqi) if self.aqi is not None else None


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def sub_index(pollutant: str, concentration: float | None) -> float | None:
    if concentration is None or not math.isfinite(concentration) or concentration < 0:
        return None
    bp = BREAKPOINTS[pollutant]
    levels = INDEX_LEVELS[: len(bp)]
    if concentration >= bp[-1]:
        if pollutant == "o3_8h":
            return None if concentration > bp[-1] else float(levels[-1])
        return 500.0
    i = int(np.searchsorted(bp, concentration, side="right")) - 1
    return float((levels[i + 1] - levels[i]) / (bp[i + 1] - bp[i]) * (concentration - bp[i]) + levels[i])


def nowcast(hourly: Sequence[float | None]) -> float | None:
    values = list(hourly[:12])
    latest3 = [v for v in values[:3] if v is not None]
    if len(latest3) < 2:
        return None
    present = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    cs = np.array([c for _, c in present])
    c_max = cs.max()
    if c_max <= 0:
        return 0.0
    w_star = cs.min() / c_max
    w = 0.5 if w_star <= 0.5 else w_star
    weights = np.array([w ** i for i, _ in present])
    return float((weights * cs).sum() / weights.sum())


def _combine(subs: dict[str, float | None]) -> AqiResult:
    rounded = {k: round_half_up(v) for k, v in subs.items() if v is not None}
    if not any(k in rounded for k in PM):
        return AqiResult(None, rounded, None)
    dominant = max(rounded, key=lambda k: rounded[k])
    return AqiResult(rounded[dominant], rounded, dominant)


def hourly_aqi(gases_1h: Mapping[str, float | None] | None = None,
               pm_hourly: Mapping[str, Sequence[float | None]] | None = None) -> AqiResult:
    """``gases_1h``: keys among o3_1h, co, so2, no2 (this hour's means). ``pm_hourly``: pm25/pm10 →
    hourly means, most recent first (up to 12)."""
    subs: dict[str, float | None] = {}
    for name, c in (gases_1h or {}).items():
        if name in PM or name == "o3_8h":
            raise ValueError(f"{name} is not a 1-hour gas for the hourly AQI")
        subs[name] = sub_index(name, c)
    for name, series in (pm_hourly or {}).items():
        if name not in PM:
            raise ValueError(f"{name} is not particulate matter")
        subs[name] = sub_index(name, nowcast(series))
    return _combine(subs)


def daily_aqi(pm_24h: Mapping[str, float | None] | None = None,
              gases_1h_max: Mapping[str, float | None] | None = None,
              o3_8h_max: float | None = None) -> AqiResult:
    subs: dict[str, float | None] = {}
    for name, c in (pm_24h or {}).items():
        if name not in PM:
            raise ValueError(f"{name} is not particulate matter")
        subs[name] = sub_index(name, c)
    for name, c in (gases_1h_max or {}).items():
        subs[name] = sub_index(name, c)
    if o3_8h_max is not None:
        o3_8 = sub_index("o3_8h", o3_8h_max)
        o3_1 = subs.pop("o3_1h", None)
        candidates = [v for v in (o3_1, o3_8) if v is not None]
        subs["o3"] = max(candidates) if candidates else None
    return _combine(subs)


def band(aqi: float) -> Band:
    value = round_half_up(aqi)
    for b in BANDS:
        if value <= b.hi:
            return b
    return BANDS[-1]


def hourly_means(ts_ms: np.ndarray, values: np.ndarray, end_hour_ms: int, hours: int = 12) -> list[float | None]:
    """Clock-hour means ending at ``end_hour_ms`` (exclusive), most recent first, None if empty."""
    out: list[float | None] = []
    for h in range(hours):
        hi = end_hour_ms - h * 3_600_000
        mask = (ts_ms >= hi - 3_600_000) & (ts_ms < hi)
        out.append(float(values[mask].mean()) if mask.any() else None)
    return out


def day_mean(ts_ms: np.ndarray, values: np.ndarray, day_end_ms: int, min_hours: int = 18) -> float | None:
    """24-hour mean of the local day ending at ``day_end_ms`` from its 1-hour means (Decision 1459
    §2.2.2 a: "trung bình cộng các giá trị quan trắc trung bình 1 giờ trong 1 ngày"), so an hour with
    more readings does not weigh more. The decision sets no completeness rule; ``min_hours`` (our
    choice, 75 % of the day like the other 24-hour rules) keeps a half-empty day from counting."""
    hours = [h for h in hourly_means(ts_ms, values, day_end_ms, 24) if h is not None]
    if not hours or len(hours) < min_hours:
        return None
    return float(np.mean(hours))
