"""Limits and VN_AQI from the alert rule packs (rules/rulepack.py, rules/aqi.py).

Only rules that state a compliance limit become report limits: ``threshold``, ``band`` and
``mean``. Rates, staleness, flatlines and AQI alarms are alerting concerns (the AQI gets its own
calendar); ``report_only`` annual means cannot be judged from one month and are left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reports.build import LimitCatalog
from reports.limits import Limit, PackVersion
from reports.period import Month
from rules import aqi
from rules.rulepack import Rule, RuleSet, load_rule_packs
from villagewatch.sites import Station

COMPLIANCE_KINDS = ("threshold", "band", "mean")


def limit_from_rule(rule: Rule) -> Limit | None:
    if rule.kind not in COMPLIANCE_KINDS:
        return None
    if rule.kind == "band":
        lo, hi = rule.lo, rule.hi
    else:
        lo, hi = (rule.limit, None) if rule.op == "below" else (None, rule.limit)
    return Limit(
        rule_id=rule.id, metric=rule.metric, lo=lo, hi=hi,
        window_s=int(rule.window_s) if rule.kind == "mean" else 0,
        regulation=rule.regulation, table=rule.table, column=rule.column, unverified=rule.unverified,
        averaging=rule.averaging, hours=rule.hours, energy_mean=rule.mean == "energy",
        min_coverage=rule.min_coverage, severity=rule.severity, duration_s=rule.duration_s, unverified_note=rule.unverified_note,
        pack=rule.pack,
    )


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "?"


def daily_aqi(means: dict[str, float]) -> int | None:
    return aqi.daily_aqi(pm_24h=means).aqi


def from_rule_packs(month: Month, folder: str | Path | None = None, rules: RuleSet | None = None) -> LimitCatalog:
    """Limits in force at the start of the month (e.g. PM2.5 24 h: 50 until 2025, 45 from 2026)."""
    rules = rules or load_rule_packs(folder)

    def limits_for(station: Station) -> list[Limit]:
        out = []
        for rule in rules.rules_for(station, at_ms=month.start_ms):
            lim = limit_from_rule(rule)
            if lim is not None:
                out.append(lim)
        return out

    versions = [PackVersion(p.id, p.regulation, p.title_vi, p.title_en, p.source, _digest(p.path))
                for p in rules.packs]
    aqi_packs = tuple(sorted({t.pack.id for t in rules.templates if t.data["kind"] == "aqi"}))
    return LimitCatalog(limits_for, versions, daily_aqi, aqi_packs)
