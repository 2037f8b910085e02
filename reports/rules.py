"""Limits and VN_AQI from the alert rule packs (rules/rulepack.py, rules/aqi.py).

Only rules that state a compliance limit become report limits: ``threshold``, ``band`` and
``mean``. Rates, staleness, flatlines and AQI alarms are alerting concerns (the AQI gets its own
calendar); ``report_only`` annual means cannot be judged from one month and are left out.

Versions: every rule of every pack version is returned with its validity dates; the report applies,
day by day, the rules in force that day (``Limit.in_force``), so a month that straddles a new
regulation is judged by the old one before and the new one after.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reports.build import LimitCatalog
from reports.limits import Limit, PackVersion
from reports.period import Month
from rules import aqi
from rules.rulepack import Rule, RuleSet, load_rule_packs
from villagewatch.contract import METRICS
from villagewatch.sites import Station

COMPLIANCE_KINDS = ("threshold", "band", "mean")


def limit_from_rule(rule: Rule) -> Limit | None:
    if rule.kind not in COMPLIANCE_KINDS:
        return None
    if rule.kind == "band":
        lo, hi, op = rule.lo, rule.hi, "band"
    else:
        op = rule.op or "above"
        lo, hi = (rule.limit, None) if op in ("below", "at_or_below") else (None, rule.limit)
    metric = METRICS.get(rule.metric)
    return Limit(
        rule_id=rule.id, metric=rule.metric, lo=lo, hi=hi,
        window_s=int(rule.window_s) if rule.kind == "mean" else 0,
        regulation=rule.regulation, table=rule.table, column=rule.column, unverified=rule.unverified,
        averaging=rule.averaging, hours=rule.hours, energy_mean=rule.mean == "energy",
        min_coverage=rule.min_coverage, severity=rule.severity, duration_s=rule.duration_s,
        unverified_note=rule.unverified_note, pack=rule.pack, op=op, hysteresis=rule.hysteresis,
        valid_from=rule.valid_from, valid_until=rule.valid_until, unit=metric.unit if metric else "", rule=rule,
        variant=rule.variant,
    )


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "?"


def daily_aqi(means: dict[str, float]) -> int | None:
    return aqi.daily_aqi(pm_24h=means).aqi


def _common(values: list) -> object:
    """The value all rules of a pack share (the pack's validity), else None."""
    return values[0] if values and all(v == values[0] for v in values) else None


def from_rule_packs(month: Month, folder: str | Path | None = None, rules: RuleSet | None = None) -> LimitCatalog:
    """Limits of every rule in force on at least one day of the month, with their validity."""
    rules = rules or load_rule_packs(folder)

    def limits_for(station: Station) -> list[Limit]:
        out = []
        for rule in rules.rules_for(station):
            lim = limit_from_rule(rule)
            if lim is not None and any(lim.in_force(day) for day in month.days):
                out.append(lim)
        return out

    versions = []
    for p in rules.packs:
        data = [t.data for t in rules.templates if t.pack.id == p.id]
        versions.append(PackVersion(p.id, p.regulation, p.title_vi, p.title_en, p.source, _digest(p.path),
                                    _common([d.get("valid_from") for d in data]),
                                    _common([d.get("valid_until") for d in data]), p.replaced_by,
                                    any(bool(d.get("unverified")) for d in data)))
    aqi_packs = tuple(sorted({t.pack.id for t in rules.templates if t.data["kind"] == "aqi"}))
    return LimitCatalog(limits_for, versions, daily_aqi, aqi_packs)
