"""Pure numpy computations of the report; the database has already aggregated what it can.

Every function here takes arrays and returns numbers, so the unit tests can check them against
hand-made series, and the integration test can check the whole report against raw points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episode:
    """One uninterrupted stretch outside a limit. ``end_ms`` is exclusive."""

    start_ms: int
    end_ms: int
    peak: float

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


def violates(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """True where a value is outside [lo, hi]; NaN (no data) never violates."""
    values = np.asarray(values, dtype=float)
    bad = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        if lo is not None:
            bad |= values < lo
        if hi is not None:
            bad |= values > hi
    return bad


def worst(values: np.ndarray, lo: float | None, hi: float | None) -> float:
    """The peak of a stretch: the furthest value beyond the limit that was crossed."""
    values = np.asarray(values, dtype=float)
    if hi is not None and np.nanmax(values) > hi:
        return float(np.nanmax(values))
    if lo is not None and np.nanmin(values) < lo:
        return float(np.nanmin(values))
    return float(np.nanmax(values))


def episodes_from_points(ts_ms: np.ndarray, values: np.ndarray, interval_s: float, lo: float | None,
                         hi: float | None, max_gap_s: float | None = None) -> list[Episode]:
    """Group violating readings (already filtered, sorted by time) into episodes.

    Two violating readings belong to the same episode when no more than ``max_gap_s`` separates them
    (default: 2.5 reporting intervals, so one lost reading does not split an episode, while a
    good reading in between does: a good reading arrives every interval). Each reading stands for
    one interval, so an episode of one reading lasts ``interval_s``.
    """
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if ts_ms.size == 0:
        return []
    gap_ms = (max_gap_s if max_gap_s is not None else 2.5 * interval_s) * 1000
    breaks = np.flatnonzero(np.diff(ts_ms) > gap_ms) + 1
    out = []
    for chunk_t, chunk_v in zip(np.split(ts_ms, breaks), np.split(values, breaks), strict=True):
        out.append(Episode(int(chunk_t[0]), int(chunk_t[-1] + interval_s * 1000), worst(chunk_v, lo, hi)))
    return out


def episodes_from_windows(starts_ms: np.ndarray, means: np.ndarray, bad: np.ndarray, window_s: float,
                          lo: float | None, hi: float | None) -> list[Episode]:
    """Consecutive violating averaging windows merged into episodes (peak = worst window mean)."""
    starts_ms = np.asarray(starts_ms, dtype=np.int64)
    idx = np.flatnonzero(bad)
    if idx.size == 0:
        return []
    window_ms = int(window_s * 1000)
    breaks = np.flatnonzero(np.diff(starts_ms[idx]) != window_ms) + 1
    out = []
    for chunk in np.split(idx, breaks):
        out.append(Episode(int(starts_ms[chunk[0]]), int(starts_ms[chunk[-1]] + window_ms),
                           worst(np.asarray(means)[chunk], lo, hi)))
    return out


@dataclass(frozen=True)
class WindowStats:
    valid: np.ndarray  # window had enough readings to be judged
    bad: np.ndarray  # valid and its mean is outside the limit

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def within_pct(self) -> float | None:
        n = self.n_valid
        return None if n == 0 else 100.0 * (n - int(self.bad.sum())) / n


def window_stats(means: np.ndarray, counts: np.ndarray, expected_per_window: float, min_coverage: float,
                 lo: float | None, hi: float | None) -> WindowStats:
    """Judge averaging windows: a window counts only with ``min_coverage`` of its expected readings
    (a daily mean from two hours of data says nothing about the day)."""
    counts = np.asarray(counts, dtype=float)
    means = np.asarray(means, dtype=float)
    valid = (counts >= min_coverage * expected_per_window) & ~np.isnan(means)
    bad = valid & violates(means, lo, hi)
    return WindowStats(valid, bad)


def completeness_pct(received: float, expected: float) -> float | None:
    """Percentage of expected readings received, capped at 100 (a device sending faster than its
    declared interval must not hide gaps elsewhere)."""
    if expected <= 0:
        return None
    return min(100.0, 100.0 * received / expected)
