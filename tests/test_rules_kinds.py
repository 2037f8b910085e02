"""Every rule kind of every shipped pack judges any legal value without raising; one failing rule
never silences the others."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import kinds
from rules.engine import Engine
from rules.kinds import REGISTRY, Evidence
from rules.rulepack import Rule, _concrete, load_rule_packs
from rules.series import Series
from villagewatch import contract
from villagewatch.contract import Reading
from villagewatch.sites import load_site

SITE = load_site(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
C = SITE.commune
T0 = 1_714_521_600_000
RULESET = load_rule_packs()


def every_rule() -> list[Rule]:
    """Every rule of every pack, for every variant (flood gauges, river classes, noise areas)."""
    out = []
    for t in RULESET.templates:
        variants = t.pack.variant.choices if t.pack.variant else (None,)
        metrics = t.data.get("metrics") or [t.data.get("metric")]
        for variant in variants:
            for metric in metrics:
                rule = _concrete(t, metric, variant, {})
                if rule is not None:
                    out.append(rule)
    return out


RULES = every_rule()
EVALUATED = [r for r in RULES if REGISTRY[r.kind].measure is not None]


def test_the_registry_has_one_module_per_kind_and_every_pack_kind_is_registered():
    assert set(REGISTRY) == {"threshold", "band", "mean", "rate", "aqi", "stale", "flatline", "gateway_offline"}
    assert {r.kind for r in RULES} <= set(REGISTRY)
    assert {r.kind for r in EVALUATED} >= {"threshold", "band", "mean", "rate", "aqi", "flatline"}


def legal(metric: str):
    """Any value of the metric's valid range, with its bounds and 0 (when inside) drawn often."""
    m = contract.METRICS[metric]
    edges = [m.lo, m.hi] + ([0.0] if m.lo <= 0 <= m.hi else [])
    return st.one_of(st.sampled_from(edges), st.floats(m.lo, m.hi, allow_nan=False))


@st.composite
def history(draw, metric: str):
    n = draw(st.integers(0, 40))
    step = draw(st.sampled_from([1_000, 60_000, 600_000, 3_600_000]))
    return [(T0 + i * step, draw(legal(metric)), draw(st.booleans())) for i in range(n)]


@pytest.mark.parametrize("rule", EVALUATED, ids=lambda r: r.id)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_kind_judges_every_legal_value(rule, data):
    metric = rule.metric if rule.metric in contract.METRICS else "pm25"
    points = data.draw(history(metric))
    value = data.draw(legal(metric))
    series = Series(int(max(rule.window_s, 3600) * 1000) + 3_600_000)
    for ts, v, fault in points:
        series.add(ts, v, fault)
    ts = (points[-1][0] if points else T0) + 60_000
    series.add(ts, value)
    ev = Evidence(ts, {metric: value}, series, data.draw(st.sampled_from([1, 60, 300, 3600])),
                  lambda _ts: data.draw(st.one_of(st.none(), st.floats(0, 500))))
    kind = REGISTRY[rule.kind]
    measured = kind.measure(rule, ev)
    if measured is not None:
        assert kind.judge(rule, measured) in (kinds.BREACH, kinds.CLEAR, kinds.HOLD)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_engine_takes_any_legal_reading_on_every_station(data):
    e = Engine(RULESET, {C: SITE}, start_ms=T0)
    for i in range(data.draw(st.integers(1, 6))):
        for station in SITE.stations.values():
            metrics = {m: data.draw(legal(m)) for m in station.metrics}
            e.feed(Reading(C, station.id, T0 + i * data.draw(st.sampled_from([1_000, 600_000])), i, metrics))
        e.tick(T0 + i * 600_000)
    assert dict(e.rule_errors) == {}


def pond(i: int, do: float, ph: float) -> Reading:
    return Reading(C, "ao-ca-tra-a3", T0 + i * 60_000, i, {"do": do, "ph": ph, "temp": 29.0, "nh4": 0.4})


def test_one_failing_rule_is_counted_logged_once_and_the_others_go_on(monkeypatch, caplog):
    def broken(rule, ev):
        raise ZeroDivisionError("a bug in one kind")

    monkeypatch.setitem(REGISTRY, "band", replace(REGISTRY["band"], measure=broken))
    e = Engine(RULESET, {C: SITE}, start_ms=T0)
    with caplog.at_level(logging.ERROR, logger="villagewatch.rules"):
        out = [t for i in range(5) for t in e.feed(pond(i, 1.5, 9.5))]
    assert [(t.rule.id, t.state) for t in out if t.rule.id == "pond-do-low"] == [("pond-do-low", "firing")]
    assert e.rule_errors["pond-ph"] == 5 and set(e.rule_errors) == {"pond-ph"}
    assert len([r for r in caplog.records if "pond-ph" in r.getMessage()]) == 1


def test_energy_mean_of_extreme_levels_is_finite():
    s = Series(3_600_000)
    for i in range(10):
        s.add(T0 + i * 1000, contract.METRICS["noise"].hi)
    assert math.isfinite(s.mean(T0 + 10_000, 3_600_000, energy=True))


@pytest.mark.parametrize("rule", [r for r in EVALUATED if r.kind in ("threshold", "band", "mean", "rate", "aqi")],
                         ids=lambda r: f"{r.id}:{r.variant}")
def test_the_engine_judges_with_the_rules_one_comparison(rule):
    """The engine breaches exactly when ``Rule.breached_by`` says so — at the limit too (≥ vs >)."""
    kind = REGISTRY[rule.kind]
    bounds = [rule.lo, rule.hi] if rule.kind == "band" else [rule.limit]
    for b in bounds:
        for v in (b - 0.01, b, b + 0.01):
            assert (kind.judge(rule, v) == kinds.BREACH) == rule.breached_by(v), (rule.id, v)
