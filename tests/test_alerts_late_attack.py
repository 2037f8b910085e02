"""Late data attacked as bad luck would (issue 11 §3): the real engine (``emit_corrections=True``)
and the real ``AlertStore``, as alerts/service.py runs them, with the pond pack's rule kinds at once
(threshold DO, band pH, rate, flatline, battery), three ponds behind one gateway, readings lost for
good, redeliveries at any time, holes of more than 3 intervals, a gateway offline for longer than
the lateness bound whose backlog is drained oldest-first while live readings flow, a live alert
already open when the gateway went offline, and the engine restarted in the middle (resumed with
the store's open keys and the readings stored so far, as ``AlertService`` does at start-up).

The invariants: no stretch of time recorded twice for one rule and station; no alert left open
that the station's newest data closed; every spell the in-order run alerts on is covered by an
alert; no notification twice for one alert; what is open at the end is live; within the lateness
bound, the same (start, firing, end) as the in-order run.

No wall clock: event times start at a fixed instant (the engine and the store take their clock
from the caller), so a minute boundary cannot make two runs of one example differ. The store is
SQLite in memory (same code; the file's durability is tested in tests/test_alerts_store.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from alerts.store import AlertStore
from rules.engine import HOLE_WAIT_MS, Engine
from rules.rulepack import load_rule_packs
from villagewatch.contract import Reading
from villagewatch.sites import load_site

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
T0 = 1_714_521_600_000  # fixed: no wall clock in these properties
GATEWAY = "gw-ao-nuoi"
PONDS = ("ao-ca-tra-a1", "ao-ca-tra-a2", "ao-ca-tra-a3")
RULESET = load_rule_packs()
CLOCK_RULES = ("health-silent", "health-gateway-offline")  # about *now*, judged by the clock


def _ponds_site():
    site = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
    stations = {k: site.stations[k] for k in PONDS}
    return {site.commune: replace(site, stations=stations, gateways={GATEWAY: site.gateways[GATEWAY]})}


SITES = _ponds_site()
C = next(iter(SITES))


def reading(station: str, minute: int, values: tuple, fault: bool = False) -> Reading:
    do, ph, battery, temp = values
    return Reading(C, station, T0 + minute * MIN, minute,
                   {"do": do, "ph": ph, "temp": temp, "nh4": 0.4, "battery": battery, "rssi": -70},
                   GATEWAY, {"do": ["spike"]} if fault else {})


# ------------------------------------------------------------------ the data
DO = st.sampled_from([1.5, 2.8, 3.1, 3.35, 5.0, 5.0])
PH = st.sampled_from([6.0, 6.55, 7.5, 7.5, 8.45, 9.0])
BATTERY = st.sampled_from([3.2, 3.45, 3.9, 3.9])
TEMP = st.sampled_from([29.0, 29.0, 29.5])


@st.composite
def station_series(draw, n: int, low_at: int | None) -> dict[int, tuple]:
    """Minute → (do, ph, battery, temp) of one pond: runs of equal values (conditions that last),
    readings lost for good and holes of more than 3 intervals. ``low_at``: DO low from there for
    10 min (an alert open when the gateway goes offline)."""
    values: list[tuple] = []
    while len(values) < n:
        v = (draw(DO), draw(PH), draw(BATTERY), draw(TEMP))
        values += [v] * draw(st.integers(1, 12))
    values = values[:n]
    if low_at is not None:
        for i in range(max(0, low_at), min(n, low_at + 10)):
            values[i] = (1.5, *values[i][1:])
    lost = draw(st.sets(st.integers(0, n - 1), max_size=n // 8))
    for start, length in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(4, 40)), max_size=2)):
        lost |= set(range(start, min(n, start + length)))
    return {i: v for i, v in enumerate(values) if i not in lost}


@dataclass
class Case:
    readings: list[Reading]  # every reading that exists, in event order
    arrival: list[Reading]  # as delivered (redeliveries included)
    restart_at: int | None  # the engine restarts before this delivery
    ahead: int  # readings the ingest stored beyond the delivered ones (warm-up sees them)
    ticks: bool  # the service's clock ticks as live readings arrive

    def __repr__(self) -> str:  # short: (station, minute, do, ph, battery, temp) in arrival order
        def row(r: Reading) -> tuple:
            m = r.metrics
            return (r.station[-2:], (r.ts_ms - T0) // MIN, m["do"], m["ph"], m["battery"], m["temp"],
                    bool(r.flags))
        return (f"Case(arrival={[row(r) for r in self.arrival]}, restart_at={self.restart_at}, "
                f"ahead={self.ahead}, ticks={self.ticks})")


@st.composite
def gateway_outage(draw, n_min: int, n_max: int, restart: bool, ticks: bool) -> Case:
    """Three ponds behind one gateway; the gateway is offline from ``off`` to ``back``: readings of
    the outage are spooled, live readings after it come first and the spool drains oldest-first,
    ``rate`` spooled readings per live minute; redeliveries of any delivered reading at any time."""
    n = draw(st.integers(n_min, n_max), label="minutes")
    off = draw(st.integers(5, n - 10), label="offline at")
    back = draw(st.integers(off + 1, n - 2), label="back at")
    open_before = draw(st.booleans(), label="an alert open when the gateway went offline")
    faults = draw(st.booleans(), label="spikes")
    series = {p: draw(station_series(n, off - 6 if open_before and p == PONDS[0] else None)) for p in PONDS}
    readings = sorted((reading(p, i, v, faults and v[0] < 3 and i % 7 == 0) for p, s in series.items()
                       for i, v in s.items()), key=lambda r: (r.ts_ms, r.station))
    live_before = [r for r in readings if r.ts_ms < T0 + off * MIN]
    spool = [r for r in readings if T0 + off * MIN <= r.ts_ms < T0 + back * MIN]
    live_after = [r for r in readings if r.ts_ms >= T0 + back * MIN]
    rate = draw(st.integers(1, 40), label="spooled readings per live minute")
    arrival = list(live_before)
    by_minute = itertools.groupby(live_after, key=lambda r: r.ts_ms)
    for _, minute in by_minute:
        arrival += list(minute)
        arrival += spool[:rate]
        del spool[:rate]
    arrival += spool
    for k in sorted(draw(st.lists(st.integers(1, len(arrival)), max_size=8), label="redelivered"), reverse=True):
        j = draw(st.integers(0, k - 1))
        arrival.insert(k, arrival[j])
    restart_at = None
    if restart and arrival[1:] and draw(st.booleans(), label="restart"):
        restart_at = draw(st.integers(1, len(arrival) - 1), label="restart before")
    ahead = draw(st.integers(0, 20), label="stored ahead") if restart_at is not None else 0
    return Case(readings, arrival, restart_at, ahead, ticks and draw(st.booleans(), label="ticks"))


# ------------------------------------------------------------------ the runs
TARGETS = [("webhook", "x")]


def deliver(case: Case, lateness_ms: int) -> AlertStore:
    """The arrival order through the engine into the store, as the service does (one apply_all per
    message; a restart resumes the store's open live alerts and warms the windows up)."""
    store = AlertStore(":memory:")
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=lateness_ms)
    clock = T0
    newest = T0
    for k, r in enumerate(case.arrival):
        if k == case.restart_at:
            engine = Engine(RULESET, SITES, open_keys=store.open_keys(), start_ms=clock, emit_corrections=True,
                            lateness_ms=lateness_ms)
            for stored in {x.ts_ms: x for x in case.arrival[:k + case.ahead]}.values():
                engine.remember(stored)
            # the message being evaluated at the crash was not acknowledged: delivered again
            store.apply_all(engine.feed(case.arrival[k - 1]), lambda tr: TARGETS, clock)
        newest = max(newest, r.ts_ms)
        clock = max(clock, newest + 5_000)  # the service's clock: just past the newest live reading
        store.apply_all(engine.feed(r), lambda tr: TARGETS, clock)
        if case.ticks:
            for tr in engine.tick(clock):
                store.apply_all([tr], lambda tr: TARGETS, clock)
    end = max(r.ts_ms for r in case.readings) + HOLE_WAIT_MS
    for tr in engine.tick(end):  # the clock moves on: resolves held for a hole are told
        store.apply_all([tr], lambda tr: TARGETS, end)
    return store


def in_order(case: Case, lateness_ms: int) -> list[tuple[str, int, int, int | None]]:
    """(key, start, firing, end) of the data-driven alerts of the readings in event order."""
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=lateness_ms)
    out = [t for r in case.readings for t in engine.feed(r)]
    out += engine.tick(max(r.ts_ms for r in case.readings) + HOLE_WAIT_MS)
    alerts: dict[tuple[str, int], list] = {}
    for t in out:
        if t.rule.id in CLOCK_RULES:
            continue
        assert t.state in ("firing", "resolved"), t  # in order: never a correction
        if t.state == "firing":
            alerts[(t.key, t.since_ms)] = [t.ts_ms, None]
        else:
            alerts[(t.key, t.since_ms)][1] = t.ts_ms
    return sorted((k, s, f, e) for (k, s), (f, e) in alerts.items())


def records(store: AlertStore) -> list[dict]:
    return [a for a in store.history(limit=100_000) if a["rule"] not in CLOCK_RULES and a["state"] != "retracted"]


def check_invariants(store: AlertStore, truth: list[tuple[str, int, int, int | None]]) -> None:
    alerts = records(store)
    by_key: dict[str, list[dict]] = {}
    for a in alerts:
        by_key.setdefault(a["key"], []).append(a)
    for key, group in by_key.items():
        spans = sorted((a["started_ms"], a["resolved_ms"] or 2**62, a["late"], a["id"]) for a in group)
        for a, b in itertools.pairwise(spans):
            assert a[1] <= b[0], f"{key}: one stretch of time recorded twice: {a} {b}"
    open_now = {a["key"] for a in alerts if a["state"] in ("firing", "acknowledged")}
    open_truth = {k for k, _, _, e in truth if e is None}
    assert open_now == open_truth, f"open at the end {sorted(open_now)} ≠ the data's {sorted(open_truth)}"
    late_open = [(a["key"], a["started_ms"]) for a in alerts if a["state"] == "firing" and a["late"]]
    assert not late_open, f"a historical alert open at the end: {late_open}"
    for key, since, _, end in truth:  # nothing lost: every alert of the data is covered
        hit = [a for a in by_key.get(key, []) if a["started_ms"] <= (end or 2**62)
               and (a["resolved_ms"] or 2**62) >= since]
        assert hit, f"{key}: the spell from {(since - T0) // MIN} min to {end and (end - T0) // MIN} is lost"
    for a in store.history(limit=100_000):
        events = [x["event"] for x in store.notifications(a["id"])]
        assert len(events) == len(set(events)), f"{a['key']} told twice: {events}"


def as_in_order(store: AlertStore) -> list[tuple[str, int, int, int | None]]:
    return sorted((a["key"], a["started_ms"], a["fired_ms"], a["resolved_ms"]) for a in records(store))


# ------------------------------------------------------------------ the properties
# shrinking these cases takes minutes; a failure prints the case (``Case.__repr__``) as drawn
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
WITHIN = 24 * 60 * MIN  # every case below spans less: all orders are within the bound


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), phases=NO_SHRINK)
@given(case=gateway_outage(20, 120, restart=False, ticks=False))
def test_within_the_bound_several_ponds_and_rule_kinds_give_the_in_order_records(case):
    truth = in_order(case, WITHIN)
    store = deliver(case, WITHIN)
    try:
        check_invariants(store, truth)
        assert as_in_order(store) == truth
    finally:
        store.close()


SHORT = 30 * MIN  # the bound shrunk so a property can cross it


@pytest.mark.xfail(strict=False, reason="open counterexamples beyond the bound (strict xfail tests below: a "
                   "pending condition lost at a restart, a resumed alert's correction, a live alert across a hole "
                   "taking a backlog spell's start); with ticks the clock's promotion also differs from the "
                   "in-order run (not checked here)")
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), phases=NO_SHRINK)
@given(case=gateway_outage(40, 120, restart=True, ticks=False))
def test_beyond_the_bound_with_a_restart_nothing_is_left_open_lost_or_told_twice(case):
    truth = in_order(case, SHORT)
    store = deliver(case, SHORT)
    try:
        check_invariants(store, truth)
    finally:
        store.close()


# ------------------------------------------------------------------ counterexamples found, minimised
def test_a_handed_over_alert_that_runs_into_an_ended_live_alert_is_not_recorded_twice():
    """Found by test_a_backlog_beyond_the_bound_… below (bound 30 min): one pond, DO
    low from minute 31 to 70 and from 74 to 113, live readings from minute 111 first (the live alert
    111–114 opens and ends), then the backlog oldest-first with a live reading every 20. At the hand-
    over the historical alert since 74 ran into the live one: the historical part was closed at 111,
    and the live alert was *revised to start at 74* — minutes 74–111 recorded twice. The live
    alert keeps its own start (``_Episode.told_since``)."""
    low = [*range(31, 71), *range(74, 114)]
    assert _do_low_records(low, live=9, every=20) == [(31, 71, 1), (74, 111, 1), (111, 114, 0)]


def live_first_order(n: int, live: int, every: int) -> list[int]:
    """Minutes 0…n-1 as a gateway back from an outage sends them: the last ``live`` minutes live
    (the first of them at once), the backlog oldest-first with one live reading after every ``every``."""
    backlog, tail = list(range(n - live)), list(range(n - live, n))
    order = [tail.pop(0)]
    for k, i in enumerate(backlog):
        order.append(i)
        if tail and k % every == every - 1:
            order.append(tail.pop(0))
    return order + tail


def feed_do(values: list[float], order: list[int]) -> AlertStore:
    """One pond's DO by minute, delivered in ``order`` (bound: ``SHORT``); the store (to close)."""
    store = AlertStore(":memory:")
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=SHORT)
    for i in order:
        r = Reading(C, PONDS[2], T0 + i * MIN, i, {"do": values[i]})
        store.apply_all(engine.feed(r), lambda tr: TARGETS, T0 + len(values) * MIN)
    return store


def _do_low_records(low: list[int], live: int, every: int, n: int = 120) -> list[tuple[int, int, int]]:
    """One pond's DO (low at the minutes ``low``) over ``n`` minutes in a live-first order; the
    pond-do-low records as (start, end, late) in minutes."""
    store = feed_do([1.8 if i in low else 5.2 for i in range(n)], live_first_order(n, live, every))
    try:
        return sorted(((a["started_ms"] - T0) // MIN, (a["resolved_ms"] - T0) // MIN, a["late"])
                      for a in store.history() if a["rule"] == "pond-do-low")
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(lows=st.lists(st.tuples(st.integers(0, 119), st.integers(1, 40)), max_size=4),
       live=st.integers(1, 10), every=st.integers(1, 30))
def test_a_backlog_beyond_the_bound_leaves_no_alert_open_for_ever_and_none_twice(lows, live, every):
    """Two hours of a pond (bound ``SHORT``): live readings first, then the backlog oldest-first
    with live readings in between. Beyond the bound the engine cannot promise in-order records, but
    it must not leave an alert open that the data closed, must not record one stretch of time
    twice, must not lose a spell long enough to fire, and must not notify the same thing twice."""
    n = 120
    values = [5.2] * n
    for start, length in lows:
        for i in range(start, min(n, start + length)):
            values[i] = 1.8
    store = feed_do(values, live_first_order(n, live, every))
    try:
        alerts = [a for a in store.history(limit=10_000) if a["rule"] == "pond-do-low" and a["state"] != "retracted"]
        spans = sorted((a["started_ms"], a["resolved_ms"] or 2**62) for a in alerts)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, spans  # no stretch of time recorded twice
        still_low = values[-1] < 2 and values[-2] < 2 and values[-3] < 2
        open_ = [a for a in alerts if a["state"] in ("firing", "acknowledged")]
        assert len(open_) == (1 if still_low else 0), (open_, values[-5:])
        assert all(a["late"] == 0 for a in open_), open_  # what is open now is live
        for i in range(n - 2):  # every spell long enough to fire is covered by an alert
            if values[i] < 2 and values[i + 1] < 2 and values[i + 2] < 2:
                ts = T0 + (i + 2) * MIN
                assert any(s <= ts <= e for s, e in spans), (i, spans)
        for a in alerts:
            events = [x["event"] for x in store.notifications(a["id"])]
            assert len(events) == len(set(events)), events
    finally:
        store.close()


def test_a_handed_over_alert_is_not_ended_at_a_live_alert_across_a_hole_the_backlog_still_fills():
    """Found by test_a_backlog_beyond_the_bound_… below (bound 30 min): DO low at
    minutes 50–89 and 91–112; live 110–119 first, the backlog oldest-first, one per live reading.
    At the hand-over (minute 89) the log held nothing between 89 and the live alert of 110, so the
    historical alert "ran on into it" and was ended at 110; minute 90 (fine) then showed it ended at
    90 and the live alert began at 91 — 91–110 recorded twice. Now the historical end stays
    revisable (ended at 90 when minute 90 comes) and the live alert's start follows the data (91)."""
    low = [*range(50, 90), *range(91, 113)]
    assert _do_low_records(low, live=10, every=1) == [(50, 90, 1), (91, 113, 0)]


def test_a_condition_pending_when_the_backlog_falls_behind_the_bound_still_fires():
    """Found by test_beyond_the_bound_… (three ponds; bound 30 min), minimised: battery 3.2 V at
    minutes 2–4 (below 3.4: pending), 3.45 V at 5–14 (inside the hysteresis: holds), 3.9 V after;
    minutes 0–6 arrive, then minute 38 (live), then 7–37 oldest-first. In order the alert fires at
    12 (10 min) and ends at 15; the historical machine began from an empty state at minute 7 and
    the spell was lost. It now starts from the log's pending state."""
    store = AlertStore(":memory:")
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=SHORT)
    try:
        for i in [*range(7), 38, *range(7, 38)]:
            battery = 3.2 if 2 <= i <= 4 else 3.45 if 5 <= i <= 14 else 3.9
            r = Reading(C, PONDS[2], T0 + i * MIN, i, {"battery": battery})
            store.apply_all(engine.feed(r), lambda tr: TARGETS, T0 + 39 * MIN)
        got = [((a["started_ms"] - T0) // MIN, (a["fired_ms"] - T0) // MIN, (a["resolved_ms"] - T0) // MIN)
               for a in store.history() if a["rule"] == "health-battery-low"]
        assert got == [(2, 12, 15)]
    finally:
        store.close()


def test_an_alert_that_ended_before_the_hand_over_is_not_retracted_by_it():
    """Found by test_beyond_the_bound_… (three ponds; bound 30 min), minimised: one pond, DO low at
    minutes 1–6 and 20–25; minutes 0–9 arrive in order, then minute 45 (the gateway is back), then
    10–44 oldest-first. The hand-over at the bound dropped the log's entries up to the last
    historical reading but kept comparing the alert 1–7 with the log: the log no longer held it, so
    the next change of the rule *retracted* it — a real, told alert withdrawn (a spell lost)."""
    store = AlertStore(":memory:")
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=SHORT)
    try:
        for i in [*range(10), 45, *range(10, 45)]:
            r = Reading(C, PONDS[2], T0 + i * MIN, i, {"do": 1.5 if 1 <= i <= 6 or 20 <= i <= 25 else 5.0})
            store.apply_all(engine.feed(r), lambda tr: TARGETS, T0 + 46 * MIN)
        got = sorted(((a["started_ms"] - T0) // MIN, (a["resolved_ms"] - T0) // MIN, a["state"])
                     for a in store.history() if a["rule"] == "pond-do-low")
        assert got == [(1, 7, "resolved"), (20, 26, "resolved")]
    finally:
        store.close()


@pytest.mark.xfail(strict=True, reason="open: after a restart the engine knows a resumed alert only as 'firing "
                   "since 0' at the start of its new log; a late reading from before that log is judged from the "
                   "resumed state and its correction ('revised', revises_since_ms=0) lands on whichever live alert "
                   "of the key is open now (AlertStore._reported's fallback) — a new alert gets start 0")
def test_a_correction_of_a_resumed_alert_never_lands_on_a_newer_alert():
    """Found by test_beyond_the_bound_with_a_restart_… (three ponds), minimised to one pond's DO:
    the alert of minutes 18– is open at the restart; after it the data show it ended at 28, a new
    one opens at 33 (fired 35), then a late reading of minute 14 arrives (within the bound)."""
    do = {i: 1.5 if 18 <= i <= 27 or i >= 33 else 3.35 for i in range(1, 41)}
    before = list(range(1, 22))
    after = [22, 23, 30, 24, 25, 26, 27, 28, 29, *range(31, 41), 14]
    store = AlertStore(":memory:")

    def feed(engine: Engine, i: int) -> None:
        r = Reading(C, PONDS[0], T0 + i * MIN, i, {"do": do[i]})
        store.apply_all(engine.feed(r), lambda tr: TARGETS, T0 + 41 * MIN)

    try:
        engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=SHORT)
        for i in before:
            feed(engine, i)
        engine = Engine(RULESET, SITES, open_keys=store.open_keys(), start_ms=T0 + 22 * MIN,
                        emit_corrections=True, lateness_ms=SHORT)
        for i in before:  # warm-up: the stored readings, into the windows only
            engine.remember(Reading(C, PONDS[0], T0 + i * MIN, i, {"do": do[i]}))
        for i in after:
            feed(engine, i)
        got = sorted(((a["started_ms"] - T0) // MIN, a["resolved_ms"] and (a["resolved_ms"] - T0) // MIN)
                     for a in store.history() if a["rule"] == "pond-do-low" and a["state"] != "retracted")
        assert got[-1] == (33, None), got  # the alert open now keeps its start
        assert all(start >= 0 for start, _ in got), got
    finally:
        store.close()


@pytest.mark.xfail(strict=True, reason="open: a restart forgets pending conditions — the warm-up (Engine.remember) "
                   "fills the windows only and the engine resumes open alerts only; a condition pending at the "
                   "restart that then holds inside the hysteresis never fires (AlertService.warm_up would have "
                   "to rebuild rule states, e.g. by judging the stored readings silently)")
def test_a_condition_pending_at_a_restart_still_fires():
    """Found by test_beyond_the_bound_with_a_restart_… (three ponds), minimised: battery 3.2 V
    (below 3.4) at minutes 0–5, then 3.45 V (inside the 0.1 V hysteresis: holds) to minute 20; the
    engine restarts after minute 5. In order the alert fires at minute 10 (600 s) and stays open."""
    store = AlertStore(":memory:")
    battery = {i: 3.2 if i <= 5 else 3.45 for i in range(21)}

    def at(i: int) -> Reading:
        return Reading(C, PONDS[2], T0 + i * MIN, i, {"battery": battery[i]})

    try:
        engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True)
        for i in range(6):
            store.apply_all(engine.feed(at(i)), lambda tr: TARGETS, T0 + i * MIN)
        engine = Engine(RULESET, SITES, open_keys=store.open_keys(), start_ms=T0 + 6 * MIN, emit_corrections=True)
        for i in range(6):
            engine.remember(at(i))  # the service's warm-up from InfluxDB
        for i in range(6, 21):
            store.apply_all(engine.feed(at(i)), lambda tr: TARGETS, T0 + i * MIN)
        got = [((a["started_ms"] - T0) // MIN, a["state"]) for a in store.history()
               if a["rule"] == "health-battery-low"]
        assert got == [(0, "firing")]
    finally:
        store.close()


def test_a_spell_is_not_lost_when_a_live_alert_took_its_start_across_a_hole():
    """Found by test_beyond_the_bound_… (three ponds; bound 30 min), minimised to one pond's pH:
    6.0 at minutes 1–4 (below 6.5), 6.55 to 21 (inside the hysteresis: holds), 7.5 to 63, 9.0 from
    64; minutes 1–8 arrive, then 64 (live), then 9–63 oldest-first. In order: one alert 1–22."""
    def ph(i: int) -> float:
        return 6.0 if i <= 4 else 6.55 if i <= 21 else 7.5 if i <= 63 else 9.0

    store = AlertStore(":memory:")
    engine = Engine(RULESET, SITES, start_ms=T0, emit_corrections=True, lateness_ms=SHORT)
    try:
        for i in [*range(1, 9), 64, *range(9, 64), 65, 66]:
            r = Reading(C, PONDS[1], T0 + i * MIN, i, {"ph": ph(i)})
            store.apply_all(engine.feed(r), lambda tr: TARGETS, T0 + 70 * MIN)
        got = [((a["started_ms"] - T0) // MIN, (a["resolved_ms"] - T0) // MIN) for a in store.history()
               if a["rule"] == "pond-ph" and a["state"] != "retracted"]
        assert got == [(1, 22)]
    finally:
        store.close()
