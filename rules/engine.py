"""The rule engine: pure and time-injectable.

It lives on the rules floor (not in ``alerts/``) because it is the one definition of *when a rule
is breached*: the alerts service runs it live, and reports/tests can run the same engine over a
simulated month to check that alert days and "không đạt" days agree (issue 13). It has no I/O,
so it belongs with the rules, not with the service that does MQTT, SQLite and notifications.
The per-kind logic (what is measured, how it is judged) is in ``rules/kinds/``; this module is
the state machine, the history, the clock-driven kinds (silence) and the daily VN_AQI closing.

Feed readings (with their timestamps), call ``tick(now_ms)`` for time-driven rules, get ``Transition``s back. No I/O, no clock, no threads: the
MQTT service (alerts/service.py) wraps it, tests drive it with simulated timestamps.

Per rule and station the condition goes ok → pending → firing → ok. A condition must hold for
``duration_s`` (pending) before it fires; it clears only once the value is back inside the limit by
``hysteresis`` — values oscillating around a limit never flap. A pending condition that clears
leaves no public trace (it never became an alert).

Averaging periods are honoured: a ``mean`` rule is evaluated on the mean of its window (energy mean
for Leq noise), and only once the window holds enough data (``min_coverage`` of its 24 slots).
History for the windows is kept per (station, metric) in bounded deques; ``replay()`` rebuilds it at
start-up from stored readings so a restart does not forget the last 24 hours.

Daily VN_AQI rules (``aqi: daily``) are evaluated once per local day (the site's timezone,
Asia/Ho_Chi_Minh), when the day is complete: at the station's first reading of the next day, or on
``tick`` ``DAILY_GRACE_MS`` after midnight if it is silent. The value is the decision's daily AQI
from the PM 24-hour means (mean of the day's 1-hour means). Days that ended more than
``DAILY_CATCH_UP_MS`` before the engine started belong to the previous run and are not evaluated.

Event time: readings drive rules in the order of their timestamps, not of their arrival. Each
station keeps a log of the readings of the last ``lateness_ms`` (default ``LATENESS_MS``, 6 h of
its event time) with the rule states after each; a reading that arrives late or out of order
(an edge backlog drained oldest-first while live readings flow; a redelivered message) is inserted
in its place and the station's rules are re-run from there. What changes is reconciled with what
was already reported, so the alerts end with the same start and end times as if the readings had
come in order, and reordering or redelivery gives no duplicate transition: new alerts are
``firing`` (+ ``resolved``) with their event times; an open alert whose end is now known is
``resolved``; corrections to an alert already reported (``revised``: earlier start, other end;
``retracted``: late data shows it never held) are returned only with ``emit_corrections=True``
and otherwise kept in ``engine.corrections``. A reading older than the lateness bound is
*historical*: it joins the windows and a separate per-station state machine whose alerts carry
``late=True`` (recorded, notified once, marked late). When such a backlog reaches the bound, the
log goes on from that machine's state (``_hand_over``), so the data close a historical alert that
straddles the bound, or split it where a live alert begins. docs/alerts.md, "Event time".

Readings flagged as sensor faults (``FAULT_FLAGS``) are not evidence: they never fire, hold or
clear a rule and are left out of means, rates and AQI (the ``flatline`` kind still sees them).

One rule's failure never stops the others: an exception in a kind is caught per rule and
reading, counted in ``engine.rule_errors[rule_id]`` and logged once per rule.

Correlation: a silent gateway (status ``online: false`` or every station behind it silent) gives one
``gateway_offline`` alert, and its stations' silence gives no station alerts.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import logging
import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from rules import aqi as vn_aqi
from rules.kinds import BREACH, CLEAR, HOLD, REGISTRY, Evidence
from rules.messages import render
from rules.rulepack import Rule, RuleSet
from rules.series import Series
from villagewatch.contract import Reading
from villagewatch.sites import Site, Station

log = logging.getLogger("villagewatch.rules")

DAY_MS = 86_400_000
# A silent station's day is closed by the clock this long after local midnight, so the day's last
# readings still in flight are counted.
DAILY_GRACE_MS = 5 * 60_000
# At start-up, a day that ended less than this before the engine started is still evaluated (the
# service may have been down at midnight); the 25-hour warm-up from InfluxDB still holds that day.
DAILY_CATCH_UP_MS = 3_600_000
# How late (behind the station's newest reading, in event time) a reading may be and still open,
# move or close an alert exactly as in order. 6 h covers a broker or uplink outage of an evening
# drained by the edge's live-first replay; older readings are historical (``late=True``). Memory:
# one log entry per reading of the last 6 h per station.
LATENESS_MS = 6 * 3_600_000
# Quality flags (villagewatch.contract.QUALITY_FLAGS) that make a value a sensor fault, not evidence.
# "aggregated" is a legitimate mean of good values and stays evidence.
# A resolve decided by the first reading after a hole in a station's data (no reading for more than
# HOLE_INTERVALS × its interval) is held back while the hole may still fill: an edge spools during an
# outage and sends live readings first, so the recovery seen after the hole may not be when it
# ended. It is reported when the backlog fills the hole, or once the station's data (or the clock,
# for a station that fell silent) has moved HOLE_WAIT_MS past it (at 5 readings/s the edge drains the 6 h a lateness bound can still use, for
# a gateway of five 1-minute stations, in 6 min). A hole that began beyond the lateness bound
# cannot be filled by readings that count, so its resolve is not held.
HOLE_INTERVALS = 3
HOLE_WAIT_MS = 15 * 60_000
FAULT_FLAGS = frozenset({"spike", "flatline", "suspect", "calibration_expired"})


@dataclass
class Transition:
    """An alert starting (``firing``) or ending (``resolved``) according to the data.

    With ``emit_corrections``, also ``revised`` (an alert already reported gets other event times:
    ``since_ms``/``ts_ms`` the new start and firing time, ``ends_ms`` the new end or None if open
    again) and ``retracted`` (late data shows the condition never held for its duration);
    ``revises_since_ms`` names the alert as first reported (its ``since_ms``)."""

    state: str
    rule: Rule
    commune: str
    station: str  # station id, or the gateway id for gateway rules
    station_name_vi: str
    station_name_en: str
    value: float | None
    limit: float | None
    ts_ms: int
    since_ms: int
    message_vi: str
    message_en: str
    late: bool = False  # from readings older than the lateness bound: historical, notify once
    ends_ms: int | None = None  # revised: the corrected end (None: open)
    revises_since_ms: int | None = None  # revised/retracted: since_ms of the alert as reported

    @property
    def key(self) -> str:
        return alert_key(self.commune, self.station, self.rule.id)


def alert_key(commune: str, station: str, rule_id: str) -> str:
    return f"{commune}/{station}/{rule_id}"


@dataclass
class _State:
    phase: str = "ok"  # ok | pending | firing
    since_ms: int = 0
    value: float | None = None  # latest evaluated value
    breach_value: float | None = None  # latest value beyond the limit (shown when firing)
    limit: float | None = None

    def freeze(self) -> tuple:
        return (self.phase, self.since_ms, self.value, self.breach_value, self.limit)


@dataclass(frozen=True, slots=True)
class _Fact:
    """A transition as the data decides it (before wording)."""

    rule_id: str
    state: str  # firing | resolved
    since_ms: int
    ts_ms: int
    value: float | None
    limit: float | None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class _Entry:
    """One event of a station's log: a reading, or a clock decision pinned to an event time
    (``promote``: a pending condition fired by the clock; ``day``: a day closed by the clock)."""

    ts: int
    kind: str  # reading | promote | day
    reading: Reading | None = None
    rule_id: str = ""
    since_ms: int = 0
    facts: list[_Fact] = field(default_factory=list)
    snap: dict[str, tuple] = field(default_factory=dict)  # non-ok rule states after this entry
    daily_next: int | None = None


@dataclass(slots=True)
class _Episode:
    since_ms: int
    fired: _Fact | None  # None: opened before the log (restored after a restart, trimmed, handed over)
    end: _Fact | None = None
    late: bool = False  # a historical alert handed over to the log at the bound: its end is told late
    hist_end_ms: int = 0  # handed over: its last historical reading
    handed_ms: int = 0  # handed over: the first reading of the log after it
    # The start as recorded, when the record begins later than the data's episode (the earlier part
    # is a historical alert of its own, split at the bound); None: the episode's own start.
    told_since: int | None = None
    # ended by the historical machine (a live alert fired across a hole from a start the backlog
    # then judged): final, kept as recorded, no longer compared with the log
    final: bool = False


class _StationRun:
    """Event-time evaluation state of one station."""

    def __init__(self, st: Station, rules: list[Rule]):
        self.st = st
        self.rules = {r.id: r for r in rules}
        self.on_reading = [r for r in rules if REGISTRY[r.kind].measure is not None and not r.report_only
                           and not is_daily(r)]
        self.daily = [r for r in rules if is_daily(r)]
        self.entries: list[_Entry] = []
        self.ts: list[int] = []  # entries' ts, for bisect
        self.base_snap: dict[str, tuple] = {}
        self.base_daily_next: int | None = None
        self.states: dict[str, _State] = {}
        self.daily_next: int | None = None
        self.newest = -(2**62)
        self.emitted: dict[str, list[_Episode]] = {}
        self.hist_states: dict[str, _State] = {}
        self.hist_last = -(2**62)
        self.hist_unhanded = False  # historical readings judged since the last hand-over to the log
        self.deferred: set[str] = set()  # rules whose resolve waits for a hole to fill
        self.aqi_cache: dict[int, float | None] = {}
        self.aqi_latest = -(2**62)  # latest hour in aqi_cache


class Engine:
    def __init__(self, ruleset: RuleSet, sites: dict[str, Site], open_keys: Iterable[str] = (),
                 start_ms: int | None = None, lateness_ms: int = LATENESS_MS, emit_corrections: bool = False):
        self.ruleset = ruleset
        self.sites = sites
        self.lateness_ms = lateness_ms
        self.emit_corrections = emit_corrections
        self.corrections: deque[Transition] = deque(maxlen=10_000)  # bounded: oldest dropped
        self.rule_errors: Counter[str] = Counter()  # rule id → evaluations that raised
        self.rules: dict[tuple[str, str], list[Rule]] = {}
        self.series: dict[tuple[str, str, str], Series] = {}
        self.runs: dict[tuple[str, str], _StationRun] = {}
        self.states: dict[str, _State] = {}  # clock-driven kinds (stale, gateway_offline)
        self.last_seen: dict[tuple[str, str], int] = {}
        self.gateway_online: dict[tuple[str, str], bool] = {}  # from status messages
        self.gateway_offline_now: dict[tuple[str, str], bool] = {}
        self.gateway_back: dict[tuple[str, str], int] = {}
        self.gateway_rules = ruleset.gateway_rules()
        self.start_ms = start_ms
        self.clock_ms = -(2**62)  # the service's clock at the latest tick
        for site in sites.values():
            for st in site.stations.values():
                rules = ruleset.rules_for(st)
                self.rules[(st.commune, st.id)] = rules
                self.runs[(st.commune, st.id)] = _StationRun(st, rules)
                keep = max([r.window_s for r in rules if REGISTRY[r.kind].history] or [0])
                # windows reach back from the oldest reading that may still be re-evaluated
                keep_ms = int(keep * 1000) + 3_600_000 + lateness_ms
                for metric in st.metrics:
                    self.series[(st.commune, st.id, metric)] = Series(keep_ms)
        for key in open_keys:
            # alerts still open in the store: the engine resumes them as firing, so a restart
            # neither re-fires nor re-notifies them
            commune, ident, rule_id = key.split("/", 2)
            run = self.runs.get((commune, ident))
            if run is not None and rule_id in run.rules and REGISTRY[run.rules[rule_id].kind].measure is not None:
                run.base_snap[rule_id] = ("firing", 0, None, None, None)
                run.states[rule_id] = _State("firing", 0)
                run.emitted[rule_id] = [_Episode(0, None)]
            else:
                self.states[key] = _State("firing", 0)

    @property
    def daily_next(self) -> dict[tuple[str, str], int]:
        """End (ms) of the next local day each station with daily rules will evaluate."""
        return {k: r.daily_next for k, r in self.runs.items() if r.daily and r.daily_next is not None}

    # ------------------------------------------------------------------ readings
    def station(self, commune: str, station: str) -> Station | None:
        site = self.sites.get(commune)
        return site.stations.get(station) if site else None

    def feed(self, reading: Reading) -> list[Transition]:
        run = self.runs.get((reading.commune, reading.station))
        if run is None:
            return []
        self._remember(run, reading)
        if reading.ts_ms < run.newest - self.lateness_ms:
            return self._historical(run, reading)
        entry = _Entry(reading.ts_ms, "reading", reading)
        # A backlog judged as historical has reached the bound (this reading follows the last
        # historical one; a live reading is more than the bound ahead of it): the log goes on from
        # the historical state, so an episode that straddles the bound is one alert, closed by the data.
        if run.hist_unhanded and run.hist_last < reading.ts_ms <= run.hist_last + self.lateness_ms:
            return self._hand_over(run, entry)
        return self._insert(run, entry)

    def remember(self, reading: Reading) -> None:
        """Add a stored reading to the windows without evaluating rules (start-up warm-up)."""
        run = self.runs.get((reading.commune, reading.station))
        if run is not None:
            self._remember(run, reading)

    def _remember(self, run: _StationRun, reading: Reading) -> None:
        st = run.st
        for metric, value in reading.metrics.items():
            series = self.series.get((st.commune, st.id, metric))
            if series is not None:
                series.add(reading.ts_ms, value, fault=_is_fault(reading, metric))
        key = (st.commune, st.id)
        self.last_seen[key] = max(self.last_seen.get(key, 0), reading.ts_ms)
        if run.aqi_cache and reading.ts_ms <= run.aqi_latest:
            # hourly AQI of the 12 hours after this reading may change
            run.aqi_cache = {h: v for h, v in run.aqi_cache.items() if h < reading.ts_ms}
            run.aqi_latest = max(run.aqi_cache, default=-(2**62))

    def replay(self, readings: Iterable[Reading]) -> list[Transition]:
        """Rebuild history (e.g. the last 24 h from InfluxDB) and evaluate it in order."""
        out: list[Transition] = []
        for r in sorted(readings, key=lambda r: r.ts_ms):
            out.extend(self.feed(r))
        return out

    # ------------------------------------------------------------------ event-time log
    def _insert(self, run: _StationRun, entry: _Entry, from_start: bool = False,
                recheck: frozenset[str] = frozenset()) -> list[Transition]:
        """Put one event in its place in the station's log, re-run the rules from there (or from the
        log's start) and report what changed (for the rules in ``recheck``, even if no fact did)."""
        i = bisect.bisect_left(run.ts, entry.ts)
        if entry.kind == "reading":
            # a reading at an instant already logged: redelivery (nothing to do) or a second message
            # for the same instant (metrics merged, the later value wins)
            j = i
            while j < len(run.ts) and run.ts[j] == entry.ts:
                same = run.entries[j]
                if same.kind == "reading" and same.reading is not None:
                    merged = _merge(same.reading, entry.reading)
                    if merged is None:
                        return []
                    entry.reading = merged
                    del run.entries[j], run.ts[j]
                    i = j
                    break
                j += 1
        else:
            i = bisect.bisect_right(run.ts, entry.ts)
        run.entries.insert(i, entry)
        run.ts.insert(i, entry.ts)
        if entry.kind == "reading":
            run.newest = max(run.newest, entry.ts)
        if from_start:
            i = 0
        append = i == len(run.entries) - 1
        if not append or from_start:
            prev = run.entries[i - 1] if i > 0 else None
            run.states = {k: _State(*v) for k, v in (prev.snap if prev else run.base_snap).items()}
            run.daily_next = prev.daily_next if prev else run.base_daily_next
        old = [f for e in run.entries[i:] if e is not entry for f in e.facts]
        new: list[_Fact] = []
        for e in run.entries[i:]:
            e.facts = self._evaluate(run, e)
            e.snap = {k: s.freeze() for k, s in run.states.items() if s.phase != "ok"}
            e.daily_next = run.daily_next
            new.extend(e.facts)
        self._trim(run)
        if old == new and not run.deferred and not recheck:
            return []
        return self._reconcile(run, {f.rule_id for f in old + new} | run.deferred | recheck)

    def _trim(self, run: _StationRun) -> None:
        horizon = run.newest - self.lateness_ms
        k = bisect.bisect_left(run.ts, horizon)
        if k > 64 or (k and len(run.entries) > 4096):
            last = run.entries[k - 1]
            run.base_snap, run.base_daily_next = last.snap, last.daily_next
            del run.entries[:k], run.ts[:k]
            self._forget_ended(run)

    @staticmethod
    def _forget_ended(run: _StationRun) -> None:
        """Alerts that ended before the log's start are final: no longer compared with the log
        (which does not hold them any more — they would look retracted)."""
        start = run.ts[0] if run.ts else run.newest
        for rule_id, episodes in run.emitted.items():
            run.emitted[rule_id] = [ep for ep in episodes if ep.end is None or ep.end.ts_ms >= start]

    def _episodes(self, run: _StationRun, rule_id: str) -> list[_Episode]:
        """The alerts of one rule as the logged data decides them, in event order."""
        out: list[_Episode] = []
        base = run.base_snap.get(rule_id)
        if base is not None and base[0] == "firing":
            known = run.emitted.get(rule_id, [])
            open_before = next((ep for ep in known if ep.since_ms == base[1]), None)
            out.append(_Episode(base[1], open_before.fired if open_before else None,
                                late=open_before.late if open_before else False))
        for e in run.entries:
            for f in e.facts:
                if f.rule_id != rule_id:
                    continue
                if f.state == "firing":
                    out.append(_Episode(f.since_ms, f))
                elif out and out[-1].end is None:
                    out[-1].end = f
        return out

    def _reconcile(self, run: _StationRun, rule_ids: set[str]) -> list[Transition]:
        """Compare the alerts the data now decides with those already reported; report the difference."""
        out: list[Transition] = []
        for rule_id in sorted(rule_ids):
            rule = run.rules[rule_id]
            truth = self._episodes(run, rule_id)
            told = [e for e in run.emitted.get(rule_id, []) if not e.final]
            # (as told, as the data now decide, the earliest start the record may take)
            pairs: list[tuple[_Episode | None, _Episode | None, int | None]] = [
                (e, e, None) for e in run.emitted.get(rule_id, []) if e.final]
            for t in truth:
                # told episodes are matched by the start they were recorded with, then by overlap
                match = next((e for e in told if _told(e) == t.since_ms), None)
                if match is None:
                    match = next((e for e in told if _overlap(e, t)), None)
                if match is not None and match.late and match.handed_ms:
                    live = next((e for e in told if not e.late and _overlap(e, t)), None)
                    if live is None and t.end is None and match.end is None:
                        # still going on at the station's newest reading: it is *now*, and needs
                        # the live alert's reminders and escalation. The historical part ends at
                        # its last historical reading; the live alert begins at the bound.
                        out.append(self._handed_end(run, rule, match, match.hist_end_ms))
                        fired = self._handed_fact(run, rule, "firing", match.handed_ms, match.handed_ms)
                        out.append(self._transition("firing", rule, run.st, fired))
                        live = _Episode(t.since_ms, fired, told_since=match.handed_ms)
                        told.append(live)
                    if live is not None:
                        # the historical alert handed over at the bound runs on into a live alert
                        # of the rule: it ends where the live one begins (once), and is kept as
                        # recorded; the live one keeps its recorded start
                        if match.end is None:
                            out.append(self._handed_end(run, rule, match, _told(live)))
                        told.remove(match)
                        pairs.append((match, match, None))
                        told.remove(live)
                        pairs.append((live, t, _told(live)))
                        continue
                if match is not None:
                    told.remove(match)
                pairs.append((match, t, None))
            pairs.extend((e, None, None) for e in told)
            run.deferred.discard(rule_id)
            emitted: list[_Episode] = []
            for before, now, clip in pairs:
                if (now is not None and now.end is not None and (before is None or before.end is None)
                        and not any(t.fired is not None and t.since_ms > now.since_ms for t in truth)
                        and self._after_hole(run, now.end.ts_ms, int((rule.window_s or 0) * 1000))):
                    # (not held when a later alert of the rule has fired: this one has ended before it)
                    run.deferred.add(rule_id)  # keep it open as told until the hole fills
                    now = _Episode(now.since_ms, now.fired)
                changes, recorded = self._difference(run, rule, before, now, clip)
                out.extend(changes)
                if now is not None:
                    now.late = before.late if before is not None else False
                    now.told_since = recorded if recorded != now.since_ms else None
                    emitted.append(now)
            run.emitted[rule_id] = emitted
        out.sort(key=lambda t: (t.ts_ms, t.state != "firing"))
        if self.emit_corrections:
            return out
        kept = [t for t in out if t.state in ("firing", "resolved")]
        self.corrections.extend(t for t in out if t.state not in ("firing", "resolved"))
        return kept

    def _after_hole(self, run: _StationRun, ts: int, reach_ms: int = 0) -> bool:
        """The verdict at ``ts`` may change when a backlog fills a hole in the data: the reading comes
        after a hole, or (``reach_ms``: a rule judged over a window) its window spans one."""
        if max(run.newest, self.clock_ms) - ts >= HOLE_WAIT_MS:
            return False  # waited long enough, by the station's data or by the clock
        gap = HOLE_INTERVALS * run.st.interval_s * 1000
        fillable = run.newest - self.lateness_ms
        later = ts
        i = bisect.bisect_left(run.ts, ts) - 1
        while i >= 0:
            if run.entries[i].kind == "reading":
                if later - run.ts[i] > gap:
                    return run.ts[i] >= fillable
                if run.ts[i] < ts - reach_ms:
                    return False
                later = run.ts[i]
            i -= 1
        return False

    def _difference(self, run: _StationRun, rule: Rule, before: _Episode | None, now: _Episode | None,
                    clip: int | None = None) -> tuple[list[Transition], int | None]:
        """What to report for one alert, and the start its record then has. ``clip``: the record
        may not start earlier (the earlier part is a historical alert of its own)."""
        if now is None:
            assert before is not None
            last = before.end or before.fired
            if last is None:
                return [], None
            return [self._transition("retracted", rule, run.st, last, late=before.late, revises=_told(before))], None
        if before is None:
            out = [self._transition("firing", rule, run.st, now.fired)] if now.fired else []
            if now.end is not None:
                out.append(self._transition("resolved", rule, run.st, now.end))
            return out, now.since_ms
        out = []
        reported = _told(before)
        since = now.since_ms if clip is None else max(now.since_ms, clip)
        moved = since != reported or (
            now.fired is not None and before.fired is not None and now.fired.ts_ms != before.fired.ts_ms)

        def as_told(fact: _Fact) -> _Fact:
            return fact if fact.since_ms == since else replace(fact, since_ms=since)

        recorded = reported
        if before.end is None and now.end is not None:
            if moved and now.fired is not None:
                out.append(self._transition("revised", rule, run.st, as_told(now.fired), late=before.late,
                                            revises=reported, ends_ms=None))
                recorded = since
            out.append(self._transition("resolved", rule, run.st, as_told(now.end), late=before.late))
        elif moved or (before.end is None) != (now.end is None) or (
                before.end is not None and now.end is not None and before.end.ts_ms != now.end.ts_ms):
            fact = now.fired or (before.fired if clip is not None else None) or now.end
            if fact is not None:
                out.append(self._transition("revised", rule, run.st, as_told(fact), late=before.late,
                                            revises=reported, ends_ms=now.end.ts_ms if now.end else None))
                recorded = since
        return out, recorded

    def _handed_fact(self, run: _StationRun, rule: Rule, state: str, since_ms: int, ts_ms: int) -> _Fact:
        """A fact for a handed-over alert, worded with the values it was handed over with."""
        snap = run.base_snap.get(rule.id)
        value = snap[3] if snap and snap[3] is not None else (snap[2] if snap else None)
        limit = _violated_limit(rule, value) if value is not None else rule.limit
        return _Fact(rule.id, state, since_ms, ts_ms, value, limit)

    def _handed_end(self, run: _StationRun, rule: Rule, late: _Episode, end_ms: int) -> Transition:
        """The historical alert handed over at the bound ends at ``end_ms`` (told late: silently);
        the episode keeps that end, so later data can still revise it."""
        late.end = self._handed_fact(run, rule, "resolved", late.since_ms, end_ms)
        return self._transition("resolved", rule, run.st, late.end, late=True)

    def _hand_over(self, run: _StationRun, entry: _Entry) -> list[Transition]:
        """The historical state machine's state becomes the log's state before ``entry``.

        The log's entries up to the last historical reading are beyond the bound and are dropped
        (their facts were reported). A rule firing in the historical machine continues in the log as
        the historical alert it is (``late``): the data in the log closes it (``resolved``, late),
        or, if the data show it going on into a live alert of the rule, it ends where the live alert
        begins (``_reconcile``). A pending condition continues as pending, from its historical start."""
        k = bisect.bisect_right(run.ts, run.hist_last)
        if k:
            last = run.entries[k - 1]
            run.base_snap, run.base_daily_next = last.snap, last.daily_next
            del run.entries[:k], run.ts[:k]
            # as in _trim: the alerts that ended in the dropped entries were reported and are final
            # (kept, they were retracted at the next reconcile of their rule: a spell lost)
            self._forget_ended(run)
        base = {rule_id: snap for rule_id, snap in run.base_snap.items() if snap[0] == "firing"}
        for rule_id, state in run.hist_states.items():
            if rule_id in base:
                continue  # a live alert of this rule is open from before: it goes on (the store
                # records no historical duplicate of an open live alert)
            base[rule_id] = state.freeze()
            if state.phase == "firing":
                run.emitted.setdefault(rule_id, []).append(
                    _Episode(state.since_ms, None, late=True, hist_end_ms=run.hist_last, handed_ms=entry.ts))
        run.base_snap = base
        run.hist_unhanded = False
        handed = frozenset(r for r, st in run.hist_states.items() if st.phase == "firing" and r in base)
        run.hist_states = {}
        return self._insert(run, entry, from_start=True, recheck=handed)

    def _historical(self, run: _StationRun, reading: Reading) -> list[Transition]:
        """A reading older than the lateness bound: judged by a separate state machine in arrival
        order (oldest-first backlogs keep event order); its alerts are marked late."""
        if reading.ts_ms <= run.hist_last:
            return []  # older still, and out of order: kept in the windows only
        if not run.hist_unhanded and not run.hist_states:
            # a backlog falls behind the bound: its machine goes on from the log's state at its first
            # reading — a condition pending there (its start in the log) is carried, so a spell that
            # straddles the moment the readings became historical still fires (from an empty
            # state it was lost). A firing one stays the log's alert (it was told live; the store
            # holds no historical duplicate of it, and the hand-over continues it).
            i = bisect.bisect_right(run.ts, reading.ts_ms) - 1
            if i >= 0:
                run.hist_states = {k: _State(*v) for k, v in run.entries[i].snap.items() if v[0] == "pending"}
        run.hist_last = reading.ts_ms
        run.hist_unhanded = True
        facts = self._evaluate_reading(run, reading, run.hist_states)
        out: list[Transition] = []
        for f in facts:
            live = next((ep for ep in run.emitted.get(f.rule_id, []) if not ep.late and ep.end is None
                         and not ep.final and _told(ep) == f.since_ms), None)
            if live is not None:
                # The live alert of this very condition: it fired on a live reading across a hole,
                # from a start the backlog now judges. Its firing is that alert (nothing to tell);
                # its end, found in the backlog, closes it (the live alert is told "resolved").
                rule = run.rules[f.rule_id]
                if f.state == "firing" and live.fired is not None and f.ts_ms != live.fired.ts_ms:
                    # it fired when the backlog says, not at the live reading after the hole
                    out.append(self._transition("revised", rule, run.st, f, revises=_told(live)))
                    live.fired = f
                elif f.state == "resolved":
                    live.end, live.final = f, True
                    out.append(self._transition("resolved", rule, run.st, f))
                continue
            out.append(self._transition(f.state, run.rules[f.rule_id], run.st, f, late=True))
        return out

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, run: _StationRun, entry: _Entry) -> list[_Fact]:
        if entry.kind == "reading":
            assert entry.reading is not None
            facts = self._evaluate_reading(run, entry.reading, run.states)
            if run.daily:
                # this station's data has reached the next day: the previous one is complete
                facts.extend(self._daily(run, entry.ts, entry.ts))
            return facts
        if entry.kind == "promote":
            state = run.states.get(entry.rule_id)
            rule = run.rules.get(entry.rule_id)
            if rule is None or state is None or state.phase != "pending" or state.since_ms != entry.since_ms:
                return []  # the data since decided otherwise
            fact = self._step(run.states, rule, HOLD, None, state.limit, entry.ts)
            return [fact] if fact else []
        return self._daily(run, entry.ts - DAILY_GRACE_MS, entry.ts)

    def _evaluate_reading(self, run: _StationRun, reading: Reading, states: dict[str, _State]) -> list[_Fact]:
        st = run.st
        evidence = {m: v for m, v in reading.metrics.items() if not _is_fault(reading, m)}
        tz = self.sites[st.commune].timezone
        facts: list[_Fact] = []
        views: dict[tuple[str, bool], Evidence] = {}
        hourly = functools.partial(self._hourly_aqi, run)
        for rule in run.on_reading:
            kind = REGISTRY[rule.kind]
            raw = rule.kind == "flatline"
            metrics = reading.metrics if raw else evidence
            if rule.metric != "*" and rule.metric not in metrics and rule.kind != "aqi":
                continue  # not measured (or not evidence) in this reading: the rule's state holds
            try:
                ev = views.get((rule.metric, raw))
                if ev is None:
                    ev = views[(rule.metric, raw)] = Evidence(
                        reading.ts_ms, metrics, self.series.get((st.commune, st.id, rule.metric)),
                        st.interval_s, hourly)
                if not _applies(rule, reading.ts_ms, tz):
                    value, cond = None, CLEAR  # outside its hours or dates: the rule does not apply now
                else:
                    value = kind.measure(rule, ev) if kind.measure else None
                    cond = HOLD if value is None else kind.judge(rule, value)
            except Exception:  # noqa: BLE001 - one rule's fault must not silence the others
                self._rule_failed(rule, st)
                continue
            fact = self._step(states, rule, cond, value, rule.limit, reading.ts_ms)
            if fact:
                facts.append(fact)
        return facts

    def _rule_failed(self, rule: Rule, st: Station) -> None:
        self.rule_errors[rule.id] += 1
        if self.rule_errors[rule.id] == 1:
            log.exception("rule %s failed on a reading of %s/%s; the other rules go on (counted in "
                          "rule_errors, logged once per rule)", rule.id, st.commune, st.id)

    def _hourly_aqi(self, run: _StationRun, ts: int) -> float | None:
        end_hour = ts - ts % 3_600_000  # completed clock hours only
        if end_hour not in run.aqi_cache:
            st = run.st
            pm: dict[str, list[float | None]] = {}
            for name in vn_aqi.PM:
                series = self.series.get((st.commune, st.id, name))
                if series is not None:
                    t, v = series.window(end_hour, 12 * 3_600_000)
                    pm[name] = vn_aqi.hourly_means(t, v, end_hour)
            result = vn_aqi.hourly_aqi(pm_hourly=pm) if pm else None
            if len(run.aqi_cache) > 48:
                run.aqi_cache = {h: x for h, x in run.aqi_cache.items() if h >= end_hour - 24 * 3_600_000}
            run.aqi_cache[end_hour] = float(result.aqi) if result and result.aqi is not None else None
            run.aqi_latest = max(run.aqi_cache)
        return run.aqi_cache[end_hour]

    # ------------------------------------------------------------------ daily VN_AQI
    def _daily(self, run: _StationRun, as_of_ms: int, ts_ms: int) -> list[_Fact]:
        """Evaluate the daily rules on the latest local day complete at ``as_of_ms``, once."""
        st = run.st
        nxt = run.daily_next
        if nxt is not None and as_of_ms < nxt:
            return []  # the common case, on every reading: the day is not over
        tz = ZoneInfo(self.sites[st.commune].timezone)
        if nxt is None:
            started = self.start_ms if self.start_ms is not None else as_of_ms
            nxt = run.daily_next = next_midnight(started - DAILY_CATCH_UP_MS, tz)
            if not run.entries or run.entries[0].daily_next is None:
                run.base_daily_next = nxt
            if as_of_ms < nxt:
                return []
        day_end = last_midnight(as_of_ms, tz)
        day_start = last_midnight(day_end - 1, tz)
        run.daily_next = next_midnight(as_of_ms, tz)
        value = self.daily_aqi(st, day_end, run.daily[0].min_coverage)
        day = dt.datetime.fromtimestamp(day_start / 1000, tz).strftime("%d/%m/%Y")
        out: list[_Fact] = []
        for rule in run.daily:
            if not rule.active_at(day_start, tz):
                cond = CLEAR
            elif value is None:
                cond = HOLD  # not enough data that day: keep the current state
            else:
                cond = compare(rule, value)
            fact = self._step(run.states, rule, cond, value, rule.limit, ts_ms, extra=(("day", day),))
            if fact:
                out.append(fact)
        return out

    def daily_aqi(self, st: Station, day_end_ms: int, min_coverage: float = 0.75) -> float | None:
        """Daily VN_AQI of the local day ending at ``day_end_ms`` from the PM 24-hour means held."""
        means: dict[str, float | None] = {}
        for name in vn_aqi.PM:
            series = self.series.get((st.commune, st.id, name))
            if series is not None:
                t, v = series.window(day_end_ms, DAY_MS + 1)
                means[name] = vn_aqi.day_mean(t, v, day_end_ms, math.ceil(24 * min_coverage))
        result = vn_aqi.daily_aqi(pm_24h=means)
        return float(result.aqi) if result.aqi is not None else None

    # ------------------------------------------------------------------ state machine
    @staticmethod
    def _step(states: dict[str, _State], rule: Rule, cond: str, value: float | None, limit: float | None,
              ts: int, extra: tuple[tuple[str, str], ...] = ()) -> _Fact | None:
        """ok → pending → firing → ok for one rule; the fact when the alert starts or ends."""
        state = states.get(rule.id)
        if state is None:
            if cond != BREACH:
                return None  # the common case: nothing to keep for a rule that is fine
            state = states[rule.id] = _State()
        if value is not None and not math.isnan(value):
            state.value, state.limit = value, limit
            if cond == BREACH:
                state.breach_value = value

        def fact(new_state: str) -> _Fact:
            shown = state.breach_value if new_state == "firing" and state.breach_value is not None else state.value
            # firing and resolving both cite the bound that was crossed (a band's lower bound for
            # a low reading, even when the value comes back nearer the upper one)
            crossed = state.breach_value if state.breach_value is not None else shown
            return _Fact(rule.id, new_state, state.since_ms, ts, shown, _violated_limit(rule, crossed), extra)

        if state.phase == "ok":
            if cond != BREACH:
                return None
            state.phase, state.since_ms = "pending", ts
        elif cond == CLEAR:
            was = state.phase
            del states[rule.id]
            return fact("resolved") if was == "firing" else None
        if state.phase == "pending" and ts - state.since_ms >= rule.duration_s * 1000:
            state.phase = "firing"
            return fact("firing")
        return None

    def _transition(self, state: str, rule: Rule, st: Station, f: _Fact, late: bool = False,
                    revises: int | None = None, ends_ms: int | None = None) -> Transition:
        names = (st.name_vi, st.name_en or st.name_vi)
        extra = dict(f.extra)
        text_state = "resolved" if state == "resolved" else "firing"
        return Transition(state, rule, st.commune, st.id, names[0], names[1], f.value, f.limit, f.ts_ms,
                          f.since_ms, render(rule, names[0], f.value, "vi", f.limit, text_state, extra),
                          render(rule, names[1], f.value, "en", f.limit, text_state, extra),
                          late=late, ends_ms=ends_ms, revises_since_ms=revises)

    def _clock_step(self, rule: Rule, cond: str, value: float | None, ts: int, commune: str, ident: str,
                    names: tuple[str, str], text_value: float | None, text_limit: float | None) -> Transition | None:
        """The state machine for the clock-driven kinds (silence), keyed by alert key."""
        key = alert_key(commune, ident, rule.id)
        states = {rule.id: self.states[key]} if key in self.states else {}
        fact = self._step(states, rule, cond, value, None, ts)
        if rule.id in states:
            self.states[key] = states[rule.id]
        else:
            self.states.pop(key, None)
        if fact is None:
            return None
        return Transition(
            fact.state, rule, commune, ident, names[0], names[1], fact.value, None, ts, fact.since_ms,
            render(rule, names[0], text_value, "vi", text_limit, fact.state),
            render(rule, names[1], text_value, "en", text_limit, fact.state))

    # ------------------------------------------------------------------ time and status
    def gateway_status(self, commune: str, gateway: str, online: bool, ts_ms: int) -> list[Transition]:
        self.gateway_online[(commune, gateway)] = online
        return self.tick(ts_ms)

    def tick(self, now_ms: int) -> list[Transition]:
        """Time-driven work: pending durations, station silence, gateway correlation, day closing.

        A pending condition fired by the clock (its station fresh, the duration elapsed) is pinned
        in the station's log at ``since + duration``, so late readings judge it like any other."""
        if self.start_ms is None:
            self.start_ms = now_ms
        self.clock_ms = max(self.clock_ms, now_ms)
        out: list[Transition] = []
        for run in self.runs.values():
            if run.deferred:  # a held resolve whose wait is over by the clock (the station fell silent)
                out.extend(self._reconcile(run, set(run.deferred)))
        for (commune, ident), run in self.runs.items():
            st = run.st
            last = self.last_seen.get((commune, ident), 0)
            # promote between readings only while the data is fresh: silence is not a breach
            if now_ms - last > 3 * st.interval_s * 1000:
                continue
            for rule_id, state in list(run.states.items()):
                rule = run.rules[rule_id]
                due = state.since_ms + int(rule.duration_s * 1000)
                if state.phase == "pending" and now_ms >= due and not is_daily(rule):
                    out.extend(self._insert(run, _Entry(due, "promote", rule_id=rule_id, since_ms=state.since_ms)))
        for site in self.sites.values():
            for gw in site.gateways:
                out.extend(self._check_gateway(site, gw, now_ms))
        for run in self.runs.values():
            if run.daily:
                as_of = now_ms - DAILY_GRACE_MS
                if run.daily_next is None or as_of >= run.daily_next:
                    out.extend(self._insert(run, _Entry(now_ms, "day")))
        return out

    def _silent(self, st: Station, now_ms: int) -> tuple[bool, float, Rule | None]:
        rule = next((r for r in self.rules.get((st.commune, st.id), []) if r.kind == "stale"), None)
        factor = rule.factor if rule and rule.factor else 3
        last = self.last_seen.get((st.commune, st.id), self.start_ms or now_ms)
        silent_s = (now_ms - last) / 1000
        return silent_s > factor * st.interval_s, silent_s, rule

    def _check_gateway(self, site: Site, gw: str, now_ms: int) -> list[Transition]:
        out: list[Transition] = []
        stations = site.stations_of(gw)
        status = [self._silent(st, now_ms) for st in stations]
        n_silent = sum(1 for s in status if s[0])
        offline = self.gateway_online.get((site.commune, gw)) is False or (stations and n_silent == len(stations))
        g = site.gateways[gw]
        was_offline = self.gateway_offline_now.get((site.commune, gw), False)
        if was_offline and not offline:
            self.gateway_back[(site.commune, gw)] = now_ms
        self.gateway_offline_now[(site.commune, gw)] = bool(offline)
        for rule in self.gateway_rules:
            cond = BREACH if offline else CLEAR
            n = float(n_silent if offline else 0)
            t = self._clock_step(rule, cond, n, now_ms, site.commune, gw, (g.name_vi, g.name_vi), n, None)
            if t:
                out.append(t)
        for st, (silent, silent_s, stale_rule) in zip(stations, status, strict=True):
            if stale_rule is None:
                continue
            if offline or not silent:
                cond = CLEAR
            else:
                # A station's own silence only counts once a sibling has reported after it went
                # quiet (the gateway is alive); otherwise wait: it may be the gateway's silence.
                mine = self.last_seen.get((st.commune, st.id), self.start_ms or now_ms)
                alive = any(self.last_seen.get((o.commune, o.id), 0) > mine for o in stations if o is not st)
                # after a gateway outage, give its stations one silence period to report again
                back = self.gateway_back.get((site.commune, gw), 0)
                settled = now_ms - back > (stale_rule.factor or 3) * st.interval_s * 1000
                cond = BREACH if alive and settled else HOLD
            limit_min = (stale_rule.factor or 3) * st.interval_s / 60
            t = self._clock_step(stale_rule, cond, silent_s, now_ms, st.commune, st.id,
                                 (st.name_vi, st.name_en or st.name_vi), silent_s / 60, limit_min)
            if t:
                out.append(t)
        return out

    def alerts(self) -> list[tuple[str, int, int | None]]:
        """Every alert the data decides, as (key, start, end or None) — for tests and reports."""
        out = []
        for run in self.runs.values():
            for rule_id in run.rules:
                for ep in self._episodes(run, rule_id):
                    out.append((alert_key(run.st.commune, run.st.id, rule_id), ep.since_ms,
                                ep.end.ts_ms if ep.end else None))
        return sorted(out, key=lambda a: (a[0], a[1]))

    def force_clear(self, key: str) -> None:
        """Forget a condition's state (used when a person resolves an alert of a rule that was removed)."""
        self.states.pop(key, None)
        commune, ident, rule_id = key.split("/", 2)
        run = self.runs.get((commune, ident))
        if run is not None:
            run.states.pop(rule_id, None)
            run.emitted.pop(rule_id, None)


def _is_fault(reading: Reading, metric: str) -> bool:
    flags = reading.flags.get(metric) if reading.flags else None
    return bool(flags) and not FAULT_FLAGS.isdisjoint(flags or ())


def _merge(old: Reading, new: Reading | None) -> Reading | None:
    """Two messages for one instant of one station: None if the second adds nothing (redelivery)."""
    if new is None:
        return None
    metrics = {**old.metrics, **new.metrics}
    flags = {**(old.flags or {}), **(new.flags or {})}
    if metrics == old.metrics and flags == (old.flags or {}):
        return None
    return Reading(old.commune, old.station, old.ts_ms, max(old.seq, new.seq), metrics, old.gw or new.gw, flags)


def _told(ep: _Episode) -> int:
    """The start of an alert as it was reported (and recorded)."""
    return ep.since_ms if ep.told_since is None else ep.told_since


def _overlap(told: _Episode, truth: _Episode) -> bool:
    """A told episode (as recorded) and an episode of the data share some time."""
    a_end = told.end.ts_ms if told.end else math.inf
    b_end = truth.end.ts_ms if truth.end else math.inf
    return _told(told) <= b_end and truth.since_ms <= a_end


def _applies(rule: Rule, ts: int, tz: str) -> bool:
    """The rule applies at ``ts`` (dates, hours) — for a windowed rule with hours, over its window."""
    if not rule.active_at(ts, tz):
        return False
    return not (rule.window_s and rule.hours and not rule.active_at(ts - int(rule.window_s * 1000) + 1000, tz))


def _violated_limit(rule: Rule, value: float | None) -> float | None:
    """The bound a value crossed: a band's lower or upper bound, else the limit."""
    if rule.kind == "band" and value is not None and rule.lo is not None and rule.hi is not None:
        return rule.lo if value < (rule.lo + rule.hi) / 2 else rule.hi
    return rule.limit


def is_daily(rule: Rule) -> bool:
    return rule.kind == "aqi" and rule.aqi == "daily"


def last_midnight(ts_ms: int, tz: ZoneInfo) -> int:
    """The latest local midnight at or before ``ts_ms``."""
    day = dt.datetime.fromtimestamp(ts_ms / 1000, tz).date()
    return int(dt.datetime.combine(day, dt.time(), tz).timestamp() * 1000)


def next_midnight(ts_ms: int, tz: ZoneInfo) -> int:
    """The first local midnight after ``ts_ms``."""
    day = dt.datetime.fromtimestamp(ts_ms / 1000, tz).date() + dt.timedelta(days=1)
    return int(dt.datetime.combine(day, dt.time(), tz).timestamp() * 1000)


def compare(rule: Rule, value: float) -> str:
    """breach / clear / hold for one value against a rule, with hysteresis (the kind's judgement)."""
    return REGISTRY[rule.kind].judge(rule, value)
