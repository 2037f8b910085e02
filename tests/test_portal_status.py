"""Station states and plain-language sentences from the real rule packs and the pilot site file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.status import assess, limits_for
from rules.rulepack import load_rule_packs
from villagewatch.sites import load_site

REPO = Path(__file__).resolve().parent.parent
SITE = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
RULES = load_rule_packs()
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = int(datetime(2026, 3, 10, 12, 0, tzinfo=TZ).timestamp() * 1000)
NIGHT = int(datetime(2026, 3, 10, 23, 30, tzinfo=TZ).timestamp() * 1000)


def _latest(values: dict[str, float], ts: int = NOON) -> dict[str, dict]:
    return {m: {"value": v, "ts": ts} for m, v in values.items()}


def test_tap_water_within_limits_today_reads_dat_quy_chuan():
    tap = SITE.stations["nmn-tan-thuan"]
    a = assess(tap, RULES, _latest({"chlorine": 0.5, "turbidity": 0.8, "ph": 7.2}),
               {"chlorine": (0.4, 0.6)}, NOON + 60_000)
    assert (a.state, a.summary_vi) == ("ok", "Nước máy: đạt quy chuẩn hôm nay")
    limit = a.metrics["chlorine"]["limits"][0]
    assert limit["words_vi"] == "trong khoảng 0,2–1 mg/L"
    assert limit["citation_vi"].startswith("QCVN 01-1:2024/BYT, Bảng 1, Nhóm A")  # in force from 2025-07-01


def test_tap_water_one_low_sample_today_is_vuot_nguong_with_the_value_and_limit_in_words():
    tap = SITE.stations["nmn-tan-thuan"]
    a = assess(tap, RULES, _latest({"chlorine": 0.35}), {"chlorine": (0.12, 0.5)}, NOON + 60_000)
    assert a.state == "exceeded"
    assert a.summary_vi == "Nước máy: vượt ngưỡng hôm nay — Clo dư tự do 0,35 mg/L, quy chuẩn trong khoảng 0,2–1 mg/L"
    assert a.metrics["chlorine"]["state"] == "exceeded" and a.metrics["turbidity"]["state"] == "no_data"


def test_near_a_limit_is_can_chu_y():
    tap = SITE.stations["nmn-tan-thuan"]
    a = assess(tap, RULES, _latest({"turbidity": 1.9}), {}, NOON + 60_000)
    assert a.state == "warn" and a.summary_vi.startswith("Nước máy: cần chú ý — Độ đục")


def test_air_reads_vn_aqi_band_and_an_averaged_limit_is_only_attention():
    air = SITE.stations["khi-truong-thcs"]
    # PM2.5 30 µg/m³: band 25–50 → I = 50 + (100 − 50)/(50 − 25)·(30 − 25) = 60 (Decision 1459)
    a = assess(air, RULES, _latest({"pm25": 30.0, "pm10": 40.0}), {}, NOON + 60_000)
    assert (a.state, a.summary_vi, a.aqi) == ("ok", "Chất lượng không khí: Trung bình (VN_AQI 60)", 60)
    # 60 µg/m³ is above the 24-hour limit, but one value is not a 24-hour mean: attention, not exceeded
    b = assess(air, RULES, _latest({"pm25": 48.0}), {}, NOON + 60_000)
    assert b.metrics["pm25"]["state"] == "warn"
    assert b.metrics["pm25"]["limits"][0]["words_vi"].endswith("(trung bình 24 giờ)")


def test_noise_limit_follows_day_and_night_and_battery_is_not_a_resident_limit():
    air = SITE.stations["khi-truong-thcs"]
    day = [lim.rule.limit for lim in limits_for(RULES, air, NOON)["noise"]]
    night = [lim.rule.limit for lim in limits_for(RULES, air, NIGHT)["noise"]]
    assert len(day) == len(night) == 1 and day != night
    assert "battery" not in limits_for(RULES, SITE.stations["rac-ap-1"], NOON)


def test_silent_station_is_mat_ket_noi_and_unseen_one_chua_co_so_lieu():
    river = SITE.stations["song-tien-ben-do"]
    old = assess(river, RULES, _latest({"ph": 7.0}, NOON), {}, NOON + int(3.5 * river.interval_s * 1000))
    assert old.state == "offline" and old.summary_vi.startswith("Nước sông, kênh: mất kết nối từ 12:00")
    assert assess(river, RULES, {}, {}, NOON).state == "no_data"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SITE.stations)),
       st.dictionaries(st.sampled_from(["chlorine", "ph", "do", "pm25", "pm10", "noise", "fill", "level", "nh4"]),
                       st.floats(-1e6, 1e6, allow_nan=False)),
       st.integers(0, 10 * 86_400_000))
def test_assess_any_values_gives_a_state_and_a_sentence(station, values, age_ms):
    s = SITE.stations[station]
    vals = {m: v for m, v in values.items() if m in s.metrics}
    a = assess(s, RULES, _latest(vals), {m: (v, v) for m, v in vals.items()}, NOON + age_ms)
    assert a.state in {"ok", "warn", "exceeded", "offline", "no_data"}
    assert a.summary_vi and ":" in a.summary_vi


@given(st.floats(-1e4, 1e4, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_status_judges_with_the_rules_own_comparison(value):
    """The portal's "vượt ngưỡng" is Rule.breached_by (the engine's), for every op, and the words
    state the allowed side: a ≥ limit (breached AT the level) reads "dưới", never "không vượt quá"."""
    from portal.status import Limit
    seen_ops = set()
    for site_file in sorted((REPO / "sites").glob("*.yaml")):
        site = load_site(site_file)
        for station in site.stations.values():
            for rule in RULES.rules_for(station):
                if rule.kind not in ("threshold", "band") or (rule.limit is None and rule.lo is None):
                    continue
                seen_ops.add(rule.op)
                assert (Limit(rule).judge([value]) == "exceeded") == rule.breached_by(value)
                if rule.kind == "threshold":
                    at_limit = Limit(rule).judge([rule.limit])
                    assert (at_limit == "exceeded") == (rule.op in ("at_or_above", "at_or_below"))
                    words = Limit(rule).words("vi")
                    assert words.startswith({"above": "không vượt quá", "at_or_above": "dưới",
                                             "below": "không thấp hơn", "at_or_below": "trên"}[rule.op])
    assert {"above", "at_or_above", "below", None} <= seen_ops
