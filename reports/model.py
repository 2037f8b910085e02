"""What a monthly report contains, independent of how it is written (PDF, CSV, HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from reports.compute import Episode
from reports.limits import Limit, PackVersion
from reports.period import Month
from reports.queries import Buckets
from villagewatch.sites import Site, Station


@dataclass
class Row:
    """One station × parameter × limit (``limit`` None: the parameter has no limit, availability only)."""

    station: Station
    metric: str
    limit: Limit | None
    readings: int
    expected: int
    completeness_pct: float | None
    judged: int = 0  # readings or averaging windows that could be judged
    within_pct: float | None = None
    episodes: list[Episode] = field(default_factory=list)
    outside_s: float = 0.0  # time outside the limit: violating readings or windows × their length
    excluded: int = 0  # readings flagged as sensor faults: not evidence, counted and shown
    days: list[str] = field(default_factory=list)  # reports.judge outcome per local day
    verdict: str = "na"  # the month: reports.judge OK / FAIL / NODATA / NA
    peak: float | None = None  # worst valid value (or window mean) beyond the limit
    rolling_fail_days: int | None = None  # 24 h limits: days the engine's rolling mean broke it

    def count(self, outcome: str) -> int:
        return sum(1 for d in self.days if d == outcome)


@dataclass
class AqiDay:
    day: date
    aqi: int | None  # None: not enough data that day
    pm25: float | None
    pm10: float | None


@dataclass
class FloodSummary:
    station: Station
    levels: list[Limit]  # alarm levels, lowest first
    days_at_or_above: list[int]
    max_level: float | None
    max_day: date | None
    daily_max: np.ndarray  # highest level held for hold_s, per local day
    hold_s: int = 0
    excluded: int = 0


@dataclass
class WasteSummary:
    station: Station
    threshold_pct: float
    episodes: list[Episode]
    readings_above: int
    readings: int
    excluded: int = 0

    @property
    def hours_above(self) -> float:
        return self.readings_above * self.station.interval_s / 3600

    @property
    def longest_h(self) -> float:
        return max((e.duration_s for e in self.episodes), default=0.0) / 3600

    @property
    def pct_time_above(self) -> float | None:
        return None if not self.readings else 100.0 * self.readings_above / self.readings


@dataclass
class Report:
    site: Site
    month: Month
    generated_at: datetime
    rows: list[Row]
    completeness: dict[str, np.ndarray]  # station -> % per local day
    station_totals: dict[str, tuple[int, int]]  # station -> (readings received, readings expected)
    aqi: dict[str, list[AqiDay]]
    flood: list[FloodSummary]
    waste: list[WasteSummary]
    versions: list[PackVersion]
    profile: dict[str, Buckets]  # station -> hourly mean/min/max per field, for the plots
    settings: dict
    queries: int = 0
    end_ms: int = 0  # end of the data considered (month end, or "now" for the running month)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # station -> metric -> faulty readings

    @property
    def empty(self) -> bool:
        """Not one reading in the month: nothing can be judged, and page 1 says so."""
        return not any(r for r, _ in self.station_totals.values())

    def excluded_total(self) -> int:
        return sum(sum(m.values()) for m in self.excluded.values())

    def rows_of(self, station_id: str) -> list[Row]:
        return [r for r in self.rows if r.station.id == station_id]

    def limited_rows(self) -> list[Row]:
        return [r for r in self.rows if r.limit is not None]
