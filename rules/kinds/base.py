"""What every rule kind provides, and the comparisons they share.

A kind turns the evidence at one instant (the reading, the metric's history) into a *measure*
(the value the rule is about: the reading itself, a window mean, a rate, an AQI) and *judges* it:
``BREACH`` (beyond the limit), ``CLEAR`` (back inside, past the hysteresis) or ``HOLD`` (in the
hysteresis band, or not enough data: keep the current state). The state machine (pending → firing
→ resolved) is the engine's and is the same for every kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.rulepack import Rule
    from rules.series import Series

BREACH, CLEAR, HOLD = "breach", "clear", "hold"


@dataclass(slots=True)
class Evidence:
    """What the engine knows at the instant ``ts_ms`` of one station's reading."""

    ts_ms: int
    metrics: dict[str, float]  # the reading's values that are evidence (sensor faults removed)
    series: Series | None  # the rule metric's history at this station (event-time ordered)
    interval_s: float  # the station's reporting interval
    hourly_aqi: Callable[[int], float | None]  # the station's hourly VN_AQI at an instant


@dataclass(frozen=True)
class Kind:
    name: str
    needs: tuple[str, ...]  # keys a pack rule of this kind must set (checked at load, with file:line)
    # value the rule is about at this instant; None = not enough data (HOLD). None for kinds the
    # engine evaluates on its clock (silence) rather than on readings.
    measure: Callable[[Rule, Evidence], float | None] | None
    judge: Callable[[Rule, float], str]
    history: bool = False  # keeps ``window_s`` of the metric's history
    # the "back to normal" text cites the value and the bound (False: station/device-level kinds)
    resolve_cites_value: bool = True


def crossed(op: str | None, value: float, limit: float) -> bool:
    """The comparison a regulation's wording gives: ``above`` >, ``at_or_above`` ≥ (alarm levels are
    *reached* at the level), ``below`` <, ``at_or_below`` ≤."""
    if op == "above":
        return value > limit
    if op == "at_or_above":
        return value >= limit
    if op == "below":
        return value < limit
    if op == "at_or_below":
        return value <= limit
    raise ValueError(f"unknown comparison {op!r}")


# the values a rule allows, per comparison: "above" 1.9 allows ≤ 1.9, "at_or_above" 1.9 allows < 1.9
ALLOWED_SIGN = {"above": "≤", "at_or_above": "<", "below": "≥", "at_or_below": ">"}


def is_minimum(op: str | None) -> bool:
    """A rule with ``below``/``at_or_below`` guards a minimum (DO, chlorine): breached from below."""
    return (op or "").endswith("below")


def compare_limit(rule: Rule, value: float) -> str:
    """breach / clear / hold for one value against a one-sided limit, with hysteresis."""
    if math.isnan(value):
        return HOLD
    limit, h = rule.limit, rule.hysteresis
    assert limit is not None
    if crossed(rule.op, value, limit):
        return BREACH
    inside = value <= limit - h if not is_minimum(rule.op) else value >= limit + h
    return CLEAR if inside else HOLD


def compare_band(rule: Rule, value: float) -> str:
    """breach outside [lo, hi] (the bounds themselves are allowed), clear inside by the hysteresis."""
    if math.isnan(value):
        return HOLD
    lo, hi, h = rule.lo, rule.hi, rule.hysteresis
    assert lo is not None and hi is not None
    if value < lo or value > hi:
        return BREACH
    return CLEAR if lo + h <= value <= hi - h else HOLD


def reading_value(rule: Rule, ev: Evidence) -> float | None:
    return ev.metrics.get(rule.metric)
