"""Evidence before verdict: each station × rule × local day is met, not met, or not enough data.

Three outcomes, never two (docs/reports.md, "Evidence rules"):

- **không đạt / not met** — the data shows the limit broken: for a limit on readings, a breach that
  *held* for the rule's ``duration_s`` (the same condition that makes the alert engine fire, with the
  same hysteresis, so "a not-met day" and "an alert day" are one definition); for an averaging limit,
  a valid window (enough readings) whose mean breaks it. A breach is evidence however few readings
  the day has.
- **đạt / met** — no breach, and enough evidence: readings in at least ``day_min_hours`` of the
  day's 24 hours (18, i.e. 75 %, the share Decision 1459/QĐ-TCMT asks of a valid daily mean; a
  project rule for reading limits), or for an averaging limit at least 75 % of the day's windows valid.
- **không đủ số liệu / insufficient data** — neither.

Readings flagged as sensor faults are not evidence (reports.series). Days on which the rule is not
in force (validity dates, or days still to come) are ``NA`` and count for nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reports import compute
from reports.limits import Limit

OK, FAIL, NODATA, NA = "ok", "fail", "nodata", "na"
CLEAR, BREACH, HOLD = 0, 1, 2
HOUR_MS = 3_600_000


@dataclass
class Days:
    """The month's local days as instants: ``starts[i]`` .. ``starts[i+1]`` is day i."""

    starts: np.ndarray  # int64 ms, len = days + 1 (last = month end)
    dates: list  # datetime.date per day
    end_ms: int  # data considered up to here (month end, or now for the running month)

    def index(self, ts: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, ts, side="right") - 1

    def minute_of_day(self, ts: np.ndarray) -> np.ndarray:
        return (ts - self.starts[self.index(ts)]) // 60_000

    def due(self) -> np.ndarray:
        """Days that have started by end_ms (a running month judges only those)."""
        return self.starts[:-1] < self.end_ms


def in_force(lim: Limit, days: Days) -> np.ndarray:
    return np.array([lim.in_force(d) for d in days.dates], dtype=bool) & days.due()


def conditions(lim: Limit, values: np.ndarray) -> np.ndarray:
    """Per value: BREACH, CLEAR or HOLD (inside the limit but within hysteresis), as the engine says."""
    v = np.asarray(values, dtype=float)
    h = lim.hysteresis
    cond = np.full(v.size, HOLD, dtype=np.int8)
    if lim.op == "band":
        breach = (v < lim.lo) | (v > lim.hi)
        clear = (v >= lim.lo + h) & (v <= lim.hi - h)
    elif lim.hi is not None:
        breach = (v > lim.hi) | ((v == lim.hi) if lim.hi_inclusive else False)
        clear = (v <= lim.hi - h) & ~((h == 0) & (v == lim.hi))
    else:
        breach = (v < lim.lo) | ((v == lim.lo) if lim.lo_inclusive else False)
        clear = (v >= lim.lo + h) & ~((h == 0) & (v == lim.lo))
    cond[clear] = CLEAR
    cond[breach] = BREACH
    return cond


def held_breaches(ts: np.ndarray, cond: np.ndarray, duration_s: float, last_ms: int) -> list[tuple[int, int]]:
    """Intervals [fired, ended) in which the breach was established: the alert engine's state machine
    (ok → pending at a breach → firing once it held ``duration_s`` without a clear → ok at a clear).
    A breach still held at the last reading ends at ``last_ms``."""
    out: list[tuple[int, int]] = []
    phase, since, fired = 0, 0, 0  # 0 ok, 1 pending, 2 firing
    dur = duration_s * 1000
    for t, c in zip(ts.tolist(), cond.tolist(), strict=True):
        if phase == 0:
            if c != BREACH:
                continue
            phase, since = 1, t
        elif c == CLEAR:
            if phase == 2:
                out.append((fired, t))
            phase = 0
            continue
        if phase == 1 and t - since >= dur:
            phase, fired = 2, t
    if phase == 2:
        out.append((fired, max(last_ms, fired + 1)))
    return out


def days_touched(intervals: list[tuple[int, int]], days: Days) -> np.ndarray:
    hit = np.zeros(len(days.dates), dtype=bool)
    for start, end in intervals:
        first = max(int(days.index(np.array([start]))[0]), 0)
        last = min(int(days.index(np.array([end - 1]))[0]), len(days.dates) - 1)
        hit[first:last + 1] = True
    return hit


@dataclass
class Judgement:
    days: list[str]  # OK / FAIL / NODATA / NA per local day
    judged: int  # readings or windows judged
    within_pct: float | None
    outside_s: float
    episodes: list[compute.Episode]
    peak: float | None  # worst valid value (or window mean) beyond the limit
    held: list[tuple[int, int]]  # established breaches (per-reading limits)
    rolling_fail_days: int | None = None  # 24 h limits: days the engine's rolling mean breaks it

    def count(self, outcome: str) -> int:
        return sum(1 for d in self.days if d == outcome)


def judge_readings(lim: Limit, ts: np.ndarray, v: np.ndarray, interval_s: float, days: Days,
                   day_min_hours: int, max_gap_s: float) -> Judgement:
    """A limit on every reading (window 0): established breaches, hourly evidence."""
    force_day = in_force(lim, days)
    idx = days.index(ts) if ts.size else np.zeros(0, dtype=np.int64)
    applies = force_day[idx] if ts.size else np.zeros(0, dtype=bool)
    if lim.hours is not None and ts.size:
        applies &= np.array([lim.applies_at(int(m)) for m in days.minute_of_day(ts)], dtype=bool)
    cond = conditions(lim, v)
    cond = np.where(applies, cond, CLEAR)  # outside its dates or hours the rule does not apply
    held = held_breaches(ts, cond, lim.duration_s, int(ts[-1] + interval_s * 1000) if ts.size else 0)
    fail = days_touched(held, days) & force_day
    # evidence: hours of the day holding at least one judged reading
    tj, vj = ts[applies], v[applies]
    hours = np.unique((tj - days.starts[0]) // HOUR_MS) if tj.size else np.zeros(0, dtype=np.int64)
    hours_per_day = np.zeros(len(days.dates), dtype=np.int64)
    if hours.size:
        hour_day = days.index(days.starts[0] + hours * HOUR_MS)
        np.add.at(hours_per_day, hour_day, 1)
    need = _hours_needed(lim, day_min_hours)
    out = [NA if not force_day[i] else FAIL if fail[i] else OK if hours_per_day[i] >= need else NODATA
           for i in range(len(days.dates))]
    bad = np.array([lim.violated(x) for x in vj.tolist()], dtype=bool) if vj.size else np.zeros(0, dtype=bool)
    episodes = compute.episodes_from_points(tj[bad], vj[bad], interval_s, lim.lo, lim.hi, max_gap_s)
    peak = compute.worst(vj[bad], lim.lo, lim.hi) if bad.any() else None
    judged = int(tj.size)
    return Judgement(out, judged, None if judged == 0 else 100.0 * (judged - int(bad.sum())) / judged,
                     int(bad.sum()) * interval_s, episodes, peak, held)


def _hours_needed(lim: Limit, day_min_hours: int) -> int:
    if lim.hours is None:
        return day_min_hours
    start, end = lim.hours
    span = (end - start) % 1440 / 60
    return math.ceil(span * day_min_hours / 24)


def judge_windows(lim: Limit, ts: np.ndarray, v: np.ndarray, interval_s: float, days: Days,
                  min_day_windows: float = 0.75) -> Judgement:
    """An averaging limit: local-time windows from midnight (1 h, 24 h), each valid with
    ``min_coverage`` of its expected readings; rolling 24 h means as the engine sees them, too."""
    force_day = in_force(lim, days)
    w_ms = int(lim.window_s * 1000)
    per_day = max(1, int(round(86_400_000 / w_ms)))
    n_days = len(days.dates)
    starts = (days.starts[:-1, None] + np.arange(per_day)[None, :] * w_ms).ravel()
    counts = np.zeros(starts.size)
    sums = np.zeros(starts.size)
    if ts.size:
        idx = days.index(ts)
        widx = idx * per_day + np.minimum((ts - days.starts[idx]) // w_ms, per_day - 1)
        x = 10 ** (v / 10) if lim.energy_mean else v
        np.add.at(counts, widx, 1)
        np.add.at(sums, widx, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
        if lim.energy_mean:
            means = 10 * np.log10(means)
    applies = np.repeat(force_day, per_day) & (starts + w_ms <= days.end_ms)
    if lim.hours is not None:
        applies &= np.array([lim.applies_at(int(m)) for m in ((starts - np.repeat(days.starts[:-1], per_day))
                                                                 // 60_000)], dtype=bool)
    stats = compute.window_stats(means, counts, lim.window_s / interval_s, lim.min_coverage, lim.lo, lim.hi)
    valid = stats.valid & applies
    bad = valid & np.array([lim.violated(m) if not np.isnan(m) else False for m in means.tolist()], dtype=bool)
    out = []
    for i in range(n_days):
        sl = slice(i * per_day, (i + 1) * per_day)
        n_apply = int(applies[sl].sum())
        if not force_day[i] or n_apply == 0:
            out.append(NA)
        elif bad[sl].any():
            out.append(FAIL)
        elif int(valid[sl].sum()) >= math.ceil(min_day_windows * n_apply):
            out.append(OK)
        else:
            out.append(NODATA)
    judged = int(valid.sum())
    episodes = compute.episodes_from_windows(starts[valid], means[valid], bad[valid], lim.window_s, lim.lo, lim.hi)
    peak = compute.worst(means[bad], lim.lo, lim.hi) if bad.any() else None
    rolling = _rolling_fail_days(lim, ts, v, interval_s, days, force_day) if lim.window_s >= 86_400 else None
    return Judgement(out, judged, None if judged == 0 else 100.0 * (judged - int(bad.sum())) / judged,
                     int(bad.sum()) * lim.window_s, episodes, peak, [], rolling)


def _rolling_fail_days(lim: Limit, ts: np.ndarray, v: np.ndarray, interval_s: float, days: Days,
                       force_day: np.ndarray) -> int:
    """Days on which the mean over the 24 h ending at some reading broke the limit with enough
    coverage — how the alert engine evaluates a "24 giờ" mean (rolling, at every reading)."""
    if ts.size == 0:
        return 0
    w_ms = int(lim.window_s * 1000)
    x = 10 ** (v / 10) if lim.energy_mean else v
    cs = np.concatenate([[0.0], np.cumsum(x)])
    first = np.searchsorted(ts, ts - w_ms, side="right")
    n = np.arange(1, ts.size + 1) - first
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (cs[1:] - cs[first]) / n
        if lim.energy_mean:
            means = 10 * np.log10(means)
    ok = n >= lim.min_coverage * lim.window_s / interval_s
    bad = ok & np.array([lim.violated(m) for m in means.tolist()], dtype=bool)
    hit = np.zeros(len(days.dates), dtype=bool)
    hit[days.index(ts[bad])] = True
    return int((hit & force_day).sum())


def month_verdict(j: Judgement, min_days_pct: float) -> str:
    """Month: not met if any day is; met if at least ``min_days_pct`` % of the days in force are met."""
    in_force_days = sum(1 for d in j.days if d != NA)
    if in_force_days == 0:
        return NA
    if j.count(FAIL):
        return FAIL
    return OK if j.count(OK) >= math.ceil(min_days_pct / 100 * in_force_days) else NODATA


def worst_of(verdicts: list[str]) -> str:
    """A domain's verdict from its rows: not met beats insufficient beats met; nothing judged = NA."""
    for outcome in (FAIL, NODATA, OK):
        if outcome in verdicts:
            return outcome
    return NA
