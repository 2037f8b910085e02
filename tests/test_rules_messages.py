"""Alert texts a person reads: every rule of every pack, firing and resolved, Vietnamese and English.

The Vietnamese texts are scanned for what issue 13 found: English ids ("khu vực special",
"trạm cao-lanh"), decimal points between digits ("0.2", "1.9 m"), values and limits without units.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.kinds.base import is_minimum
from rules.messages import metric_label, render, rule_title
from rules.rulepack import Rule, _concrete, load_rule_packs
from villagewatch import contract, textfmt
from villagewatch.contract import Reading
from villagewatch.sites import load_site

SITE = load_site(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
C = SITE.commune
T0 = 1_714_521_600_000
RULESET = load_rule_packs()


def every_rule() -> list[Rule]:
    out = []
    for t in RULESET.templates:
        for variant in (t.pack.variant.choices if t.pack.variant else (None,)):
            for metric in t.data.get("metrics") or [t.data.get("metric")]:
                rule = _concrete(t, metric, variant, {})
                if rule is not None:
                    out.append(rule)
    return out


RULES = every_rule()

# every id that must never reach a Vietnamese reader
IDS = ({s.id for s in SITE.stations.values()} | set(SITE.gateways) | {C}
       | {r.id for r in RULES} | {p.id for p in RULESET.packs}
       | {c for p in RULESET.packs if p.variant for c in p.variant.choices if len(c) > 1}
       | {m for m in contract.METRICS if len(m) > 2})
HYPHENATED_ID = re.compile(r"\b(?=[a-z0-9_-]*[a-z])[a-z0-9]+(?:[-_][a-z0-9]+)+\b")
DECIMAL_POINT = re.compile(r"\d\.(\d+)")


def cases(rule: Rule) -> list[tuple[str, float | None, float | None, float | None]]:
    """(case, breaching value, bound crossed, value back inside) the engine would produce."""
    if rule.kind == "band":
        return [("low", rule.lo - 0.15, rule.lo, rule.lo + 0.2), ("high", rule.hi + 0.15, rule.hi, rule.hi - 0.2)]
    if rule.kind in ("threshold", "mean", "rate", "aqi"):
        step = 0.25 if rule.kind != "aqi" else 17
        lim = rule.limit
        if is_minimum(rule.op):
            return [("min", lim - step, lim, lim + step)]
        return [("max", lim + step, lim, lim - step)]
    if rule.kind == "stale":
        return [("silent", 20.0, 15.0, 1.0)]
    if rule.kind == "gateway_offline":
        return [("offline", 4.0, None, 0.0)]
    return [("stuck", 7.25, None, 7.25)]


def texts(rule: Rule) -> list[tuple[str, str, str]]:
    out = []
    for case, bad, bound, good in cases(rule):
        for lang in ("vi", "en"):
            name = "Trạm Bến Đò sông Tiền" if lang == "vi" else "Tien river ferry station"
            extra = {"day": "01/05/2024"}
            out.append((f"{case}/{lang}/firing", lang, render(rule, name, bad, lang, bound, "firing", extra)))
            out.append((f"{case}/{lang}/resolved", lang, render(rule, name, good, lang, bound, "resolved", extra)))
    return out


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.id}:{r.variant}")
def test_vietnamese_texts_have_no_english_ids_no_decimal_points_and_units_everywhere(rule):
    unit = contract.METRICS[rule.metric].unit if rule.metric in contract.METRICS else ""
    dec = contract.METRICS[rule.metric].decimals if rule.metric in contract.METRICS else 2
    for name, lang, text in texts(rule):
        assert "{" not in text and text.strip() != "—", (name, text)
        if lang != "vi":
            continue
        assert not HYPHENATED_ID.findall(text), (name, text)
        words = set(re.findall(r"[\w-]+", text))
        assert not (IDS & words), (name, text, IDS & words)
        for m in DECIMAL_POINT.finditer(text):
            assert len(m.group(1)) == 3, f"decimal point in {name}: {text}"  # only a thousands dot
        assert "{" not in bilingual_column(rule) and not (IDS & set(re.findall(r"[\w-]+", bilingual_column(rule))))
        if rule.kind in ("threshold", "band", "mean") and unit:
            case = name.split("/")[0]
            bad, bound, good = next((b, lim, g) for c, b, lim, g in cases(rule) if c == case)
            shown = bad if name.endswith("firing") else good
            assert textfmt.quantity(shown, unit, dec, "vi") in text, f"value without unit in {name}: {text}"
            if rule.kind == "band" and name.endswith("firing"):
                assert textfmt.span(rule.lo, rule.hi, unit, dec, "vi") in text, (name, text)
            else:
                assert textfmt.quantity(bound, unit, dec, "vi") in text, f"bound without unit in {name}: {text}"


def bilingual_column(rule: Rule) -> str:
    return rule_title(rule, "vi")


def test_verbs_follow_the_comparison():
    by_id = {(r.id, r.variant): r for r in RULES}
    do = by_id[("pond-do-low", None)]
    assert "thấp hơn mức tối thiểu 3 mg/L" in render(do, "Ao A3", 1.5, "vi")
    assert "below the minimum 3 mg/L" in render(do, "Pond A3", 1.5, "en")
    nh4 = by_id[("qcvn01-nh4", None)]
    assert "vượt mức tối đa 0,3 mg/L" in render(nh4, "Nhà máy nước", 0.45, "vi")
    ph = by_id[("qcvn01-ph", None)]
    assert "ngoài khoảng cho phép 6–8,5" in render(ph, "Nhà máy nước", 9.1, "vi", 8.5)
    level = by_id[("flood-level-1", "cao-lanh")]
    assert "mực nước 2,15 m, trên báo động I 0,25 m" in render(level, "Cao Lãnh", 2.15, "vi")
    assert "0.25 m above alarm level I" in render(level, "Cao Lanh", 2.15, "en")
    assert "trạm Cao Lãnh" in rule_title(level, "vi") and "Cao Lanh gauge" in rule_title(level, "en")
    noise = by_id[("qcvn26-day", "special")]
    assert "khu vực đặc biệt" in rule_title(noise, "vi") and "special" not in rule_title(noise, "vi")
    assert metric_label("pm25", "vi") == "bụi mịn PM2,5"


def test_alarm_levels_are_reached_at_the_level():
    """Decision 05/2020: a level held at exactly 1.90 m at Cao Lãnh is alarm level I (≥)."""
    e = Engine(RULESET, {C: SITE}, start_ms=T0)
    out = [t for i in range(8) for t in e.feed(Reading(C, "muc-nuoc-song-tien", T0 + i * 60_000, i,
                                                         {"level": 1.9, "battery": 3.9}))]
    assert [(t.rule.id, t.state) for t in out] == [("flood-level-1", "firing")]
    assert out[0].rule.op == "at_or_above"


def test_low_chlorine_cites_the_lower_bound_firing_and_resolving():
    e = Engine(RULESET, {C: SITE}, start_ms=T0)

    def water(i: int, cl: float) -> Reading:
        return Reading(C, "nmn-tan-thuan", T0 + i * 60_000, i, {"chlorine": cl, "turbidity": 0.5, "ph": 7.2,
                                                                 "temp": 28.0})

    out = [t for i in range(12) for t in e.feed(water(i, 0.12))]
    out += [t for i in range(12, 14) for t in e.feed(water(i, 0.9))]  # back inside, nearer the upper bound
    cl = [t for t in out if t.rule.id == "qcvn01-chlorine"]
    assert [t.state for t in cl] == ["firing", "resolved"]
    assert all(t.limit == 0.2 for t in cl)
    assert "0,12 mg/L, ngoài khoảng cho phép 0,2–1 mg/L" in cl[0].message_vi
    assert "mức tối thiểu 0,2 mg/L" in cl[1].message_vi and "1 mg/L" not in cl[1].message_vi
    assert "minimum 0.2 mg/L" in cl[1].message_en


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_rule_has_a_title_for_people(lang):
    titles = {r.id: rule_title(r, lang) for r in RULES}
    for rule_id, title in titles.items():
        words = set(re.findall(r"[\w-]+", title))
        assert title and not title.endswith("—") and rule_id not in title, title
        if lang == "vi":
            assert not (IDS & words) and not HYPHENATED_ID.findall(title), title
    assert titles["health-silent"] == ("mất tín hiệu" if lang == "vi" else "silent station")
