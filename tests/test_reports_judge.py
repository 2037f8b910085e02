"""Evidence before verdict, unit level: three outcomes per day, the rule's op, held breaches as the
alert engine's state machine, the flags string of the storage schema (property test)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reports import judge
from reports.limits import Limit
from reports.series import FAULT_FLAGS, parse_flags
from villagewatch.contract import QUALITY_FLAGS

DAY = 86_400_000
T0 = 1_759_251_600_000  # 2025-10-01 00:00 Asia/Ho_Chi_Minh
MIN = 60_000


def _days(n: int = 3) -> judge.Days:
    return judge.Days(np.arange(n + 1, dtype=np.int64) * DAY + T0,
                      [dt.date(2025, 10, 1) + dt.timedelta(days=i) for i in range(n)], T0 + n * DAY)


def _level(op: str) -> Limit:
    return Limit("flood-level-1", "level", None, 1.9, 0, "QĐ 05/2020", op=op, duration_s=300, hysteresis=0.05,
                 unit="m")


def test_three_outcomes_and_the_op_as_written():
    days = _days()
    # day 0: every minute at exactly 1.90 m; day 1: 1.5 m all day; day 2: four hours only
    ts = np.concatenate([T0 + np.arange(1440) * MIN, T0 + DAY + np.arange(1440) * MIN,
                         T0 + 2 * DAY + np.arange(240) * MIN])
    v = np.concatenate([np.full(1440, 1.9), np.full(1440, 1.5), np.full(240, 1.5)])
    at = judge.judge_readings(_level("at_or_above"), ts, v, 60, days, 18, 1800)
    assert at.days == [judge.FAIL, judge.OK, judge.NODATA]  # reached at the level; 4 h is not evidence
    above = judge.judge_readings(_level("above"), ts, v, 60, days, 18, 1800)
    assert above.days == [judge.OK, judge.OK, judge.NODATA]  # "above" is strict: 1.90 m is not over 1.9
    assert judge.month_verdict(at, 75) == judge.FAIL
    assert judge.month_verdict(above, 75) == judge.NODATA  # 2 of 3 days met: under 75 %
    assert judge.month_verdict(above, 60) == judge.OK


def test_a_breach_counts_only_once_held_for_the_rule_duration():
    days = _days(1)
    ts = T0 + np.arange(1440) * MIN
    v = np.full(1440, 1.5)
    v[100:104] = 2.0  # four minutes above: shorter than the rule's 5 minutes, no alarm day
    j = judge.judge_readings(_level("above"), ts, v, 60, days, 18, 1800)
    assert j.days == [judge.OK] and j.held == [] and len(j.episodes) == 1  # still an episode in the table
    v[100:106] = 2.0  # six minutes: established at minute 105
    j = judge.judge_readings(_level("above"), ts, v, 60, days, 18, 1800)
    assert j.days == [judge.FAIL] and j.held == [(T0 + 105 * MIN, T0 + 106 * MIN)]


def test_a_breach_is_evidence_even_on_a_thin_day_and_no_data_is_not_compliance():
    days = _days(2)
    ts = T0 + DAY + np.arange(20) * MIN  # twenty minutes of data on day 1, nothing on day 0
    v = np.full(20, 2.5)
    j = judge.judge_readings(_level("above"), ts, v, 60, days, 18, 1800)
    assert j.days == [judge.NODATA, judge.FAIL]
    empty = judge.judge_readings(_level("above"), np.zeros(0, dtype=np.int64), np.zeros(0), 60, days, 18, 1800)
    assert empty.days == [judge.NODATA, judge.NODATA] and judge.month_verdict(empty, 75) == judge.NODATA
    assert judge.worst_of([judge.OK, judge.NODATA]) == judge.NODATA
    assert judge.worst_of([judge.NODATA, judge.FAIL, judge.OK]) == judge.FAIL


def test_rule_not_in_force_is_not_judged():
    days = _days(2)
    lim = Limit("x", "chlorine", 0.2, 1.0, 0, "QCVN 01-1:2024/BYT", op="band", valid_from=dt.date(2025, 10, 2))
    ts = T0 + np.arange(2880) * MIN
    j = judge.judge_readings(lim, ts, np.full(2880, 0.1), 60, days, 18, 1800)
    assert j.days == [judge.NA, judge.FAIL]


def test_daily_mean_needs_coverage_and_rolling_days_are_counted():
    days = _days(2)
    lim = Limit("pm", "pm25", None, 50, 86_400, "QCVN 05:2023/BTNMT", op="above", min_coverage=0.75, unit="µg/m³")
    ts = np.concatenate([T0 + np.arange(1440) * MIN, T0 + DAY + np.arange(600) * MIN])
    v = np.concatenate([np.full(1440, 60.0), np.full(600, 80.0)])
    j = judge.judge_windows(lim, ts, v, 60, days)
    assert j.days == [judge.FAIL, judge.NODATA] and j.judged == 1
    assert j.rolling_fail_days == 2  # the engine's rolling mean stays over 50 into day 2


@given(st.dictionaries(st.sampled_from(["ph", "do", "level", "pm25"]),
                       st.lists(st.sampled_from(QUALITY_FLAGS), min_size=1, max_size=4), max_size=4))
def test_flags_string_round_trips(flags):
    text = ";".join(f"{m}:{','.join(fl)}" for m, fl in sorted(flags.items()))  # villagewatch.lineproto's format
    assert parse_flags(text) == {m: set(fl) for m, fl in flags.items()}


@given(st.text(max_size=60))
def test_any_flags_text_parses_without_error(text):
    parsed = parse_flags(text)
    assert all(isinstance(v, set) for v in parsed.values())
    assert set(FAULT_FLAGS) <= set(QUALITY_FLAGS)
