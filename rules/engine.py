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

Correlation: a silent gateway (status ``online: false`` or every station behind it silent) gives one
``gateway_offline`` alert, and its stations' silence gives no station alerts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rules import aqi as vn_aqi
from rules.kinds import BREACH, CLEAR, HOLD, REGISTRY, Evidence
from rules.messages import render
from rules.rulepack import Rule, RuleSet
from rules.series import Series
from villagewatch.contract import Reading
from villagewatch.sites import Site, Station

ENGINE_SOURCE = "engine"
DAY_MS = 86_400_000
# A silent station's day is closed by the clock this long after local midnight, so the day's last
# readings still in flight are counted.
DAILY_GRACE_MS = 5 * 60_000
# At start-up, a day that ended less than this before the engine started is still evaluated (the
# service may have been down at midnight); the 25-hour warm-up from InfluxDB still holds that day.
DAILY_CATCH_UP_MS = 3_600_000


@dataclass
class Transition:
    """An alert starting (``firing``) or ending (``resolved``) according to the data."""

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


class Engine:
    def __init__(self, ruleset: RuleSet, sites: dict[str, Site], open_keys: Iterable[str] = (),
                 start_ms: int | None = None):
        self.ruleset = ruleset
        self.sites = sites
        self.rules: dict[tuple[str, str], list[Rule]] = {}
        self.series: dict[tuple[str, str, str], Series] = {}
        self.states: dict[str, _State] = {}
        self.last_seen: dict[tuple[str, str], int] = {}
        self.last_eval: dict[tuple[str, str], int] = {}
        self.gateway_online: dict[tuple[str, str], bool] = {}  # from status messages
        self.gateway_offline_now: dict[tuple[str, str], bool] = {}
        self.gateway_back: dict[tuple[str, str], int] = {}
        self.gateway_rules = ruleset.gateway_rules()
        self.start_ms = start_ms
        self._aqi_cache: dict[tuple[str, str, int], float | None] = {}
        self.daily_rules: dict[tuple[str, str], list[Rule]] = {}
        self.daily_next: dict[tuple[str, str], int] = {}  # end (ms) of the next local day to evaluate
        for site in sites.values():
            for st in site.stations.values():
                rules = ruleset.rules_for(st)
                self.rules[(st.commune, st.id)] = rules
                daily = [r for r in rules if is_daily(r)]
                if daily:
                    self.daily_rules[(st.commune, st.id)] = daily
                keep = max([r.window_s for r in rules if REGISTRY[r.kind].history] or [0])
                for metric in st.metrics:
                    self.series[(st.commune, st.id, metric)] = Series(int(keep * 1000) + 3_600_000)
        for key in open_keys:
            # alerts still open in the store: the engine resumes them as firing, so a restart
            # neither re-fires nor re-notifies them
            self.states[key] = _State("firing", 0)

    # ------------------------------------------------------------------ readings
    def station(self, commune: str, station: str) -> Station | None:
        site = self.sites.get(commune)
        return site.stations.get(station) if site else None

    def feed(self, reading: Reading) -> list[Transition]:
        st = self.station(reading.commune, reading.station)
        if st is None:
            return []
        skey = (st.commune, st.id)
        for metric, reading_value in reading.metrics.items():
            series = self.series.get((st.commune, st.id, metric))
            if series is not None:
                series.add(reading.ts_ms, reading_value)
        self.last_seen[skey] = max(self.last_seen.get(skey, 0), reading.ts_ms)
        if reading.ts_ms < self.last_eval.get(skey, 0):
            return []  # late reading: counted in the windows, too old to drive state
        self.last_eval[skey] = reading.ts_ms
        out: list[Transition] = []
        for rule in self.rules.get(skey, []):
            if rule.kind in ("stale", "report_only") or rule.report_only or is_daily(rule):
                continue
            if rule.metric != "*" and rule.metric not in reading.metrics and rule.kind != "aqi":
                continue
            value, limit = self._value(rule, st, reading)
            cond = self._condition(rule, st, value, limit, reading.ts_ms)
            t = self._step(rule, st, cond, value, limit, reading.ts_ms)
            if t:
                out.append(t)
        if skey in self.daily_rules:
            # this station's data has reached the next day: the previous one is complete
            out.extend(self._daily(st, reading.ts_ms, reading.ts_ms))
        return out

    def remember(self, reading: Reading) -> None:
        """Add a stored reading to the windows without evaluating rules (start-up warm-up)."""
        st = self.station(reading.commune, reading.station)
        if st is None:
            return
        for metric, reading_value in reading.metrics.items():
            series = self.series.get((st.commune, st.id, metric))
            if series is not None:
                series.add(reading.ts_ms, reading_value)
        key = (st.commune, st.id)
        self.last_seen[key] = max(self.last_seen.get(key, 0), reading.ts_ms)

    def replay(self, readings: Iterable[Reading]) -> list[Transition]:
        """Rebuild history (e.g. the last 24 h from InfluxDB) and evaluate it in order."""
        out: list[Transition] = []
        for r in sorted(readings, key=lambda r: r.ts_ms):
            out.extend(self.feed(r))
        return out

    def _value(self, rule: Rule, st: Station, reading: Reading) -> tuple[float | None, float | None]:
        kind = REGISTRY[rule.kind]
        if kind.measure is None:
            return None, rule.limit
        ev = Evidence(reading.ts_ms, reading.metrics, self.series.get((st.commune, st.id, rule.metric)),
                      st.interval_s, lambda ts: self._hourly_aqi(st, ts))
        return kind.measure(rule, ev), rule.limit

    def _hourly_aqi(self, st: Station, ts: int) -> float | None:
        end_hour = ts - ts % 3_600_000  # completed clock hours only
        key = (st.commune, st.id, end_hour)
        if key not in self._aqi_cache:
            pm: dict[str, list[float | None]] = {}
            for name in vn_aqi.PM:
                series = self.series.get((st.commune, st.id, name))
                if series is not None:
                    t, v = series.window(end_hour, 12 * 3_600_000)
                    pm[name] = vn_aqi.hourly_means(t, v, end_hour)
            result = vn_aqi.hourly_aqi(pm_hourly=pm) if pm else None
            self._aqi_cache = {k: x for k, x in self._aqi_cache.items() if k[2] >= end_hour - 3_600_000}
            self._aqi_cache[key] = float(result.aqi) if result and result.aqi is not None else None
        return self._aqi_cache[key]

    # ------------------------------------------------------------------ daily VN_AQI
    def _daily(self, st: Station, as_of_ms: int, ts_ms: int) -> list[Transition]:
        """Evaluate the daily rules on the latest local day complete at ``as_of_ms``, once."""
        key = (st.commune, st.id)
        nxt = self.daily_next.get(key)
        if nxt is not None and as_of_ms < nxt:
            return []  # the common case, on every reading: the day is not over
        tz = ZoneInfo(self.sites[st.commune].timezone)
        if nxt is None:
            started = self.start_ms if self.start_ms is not None else as_of_ms
            nxt = self.daily_next[key] = next_midnight(started - DAILY_CATCH_UP_MS, tz)
            if as_of_ms < nxt:
                return []
        day_end = last_midnight(as_of_ms, tz)
        day_start = last_midnight(day_end - 1, tz)
        self.daily_next[key] = next_midnight(as_of_ms, tz)
        rules = self.daily_rules[key]
        value = self.daily_aqi(st, day_end, rules[0].min_coverage)
        day = dt.datetime.fromtimestamp(day_start / 1000, tz).strftime("%d/%m/%Y")
        out: list[Transition] = []
        for rule in rules:
            if not rule.active_at(day_start, tz):
                cond = CLEAR
            elif value is None:
                cond = HOLD  # not enough data that day: keep the current state
            else:
                cond = compare(rule, value)
            t = self._step(rule, st, cond, value, rule.limit, ts_ms, extra={"day": day})
            if t:
                out.append(t)
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

    def _condition(self, rule: Rule, st: Station, value: float | None, limit: float | None, ts: int) -> str:
        tz = self.sites[st.commune].timezone
        if not rule.active_at(ts, tz) or (rule.window_s and rule.hours
                                          and not rule.active_at(ts - int(rule.window_s * 1000) + 1000, tz)):
            return CLEAR  # outside its hours or dates: the rule does not apply now
        if value is None:
            return HOLD  # not enough data in the window: keep the current state
        return REGISTRY[rule.kind].judge(rule, value)

    # ------------------------------------------------------------------ state machine
    def _step(self, rule: Rule, st: Station | None, cond: str, value: float | None, limit: float | None,
              ts: int, commune: str | None = None, ident: str | None = None,
              names: tuple[str, str] | None = None, text_value: float | None = None,
              text_limit: float | None = None, extra: dict[str, str] | None = None) -> Transition | None:
        if st is None and not (commune and ident and names):
            raise ValueError("a step without a station needs commune, ident and names")
        commune = commune or st.commune  # type: ignore[union-attr]  # st is set (checked above)
        ident = ident or st.id  # type: ignore[union-attr]
        key = alert_key(commune, ident, rule.id)
        state = self.states.setdefault(key, _State())
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            state.value, state.limit = value, limit
            if cond == BREACH:
                state.breach_value = value
        names = names or (st.name_vi, st.name_en or st.name_vi)  # type: ignore[union-attr]

        def make(new_state: str) -> Transition:
            value = state.breach_value if new_state == "firing" and state.breach_value is not None else state.value
            shown = value if text_value is None else text_value
            lim = self._violated_limit(rule, value) if text_limit is None else text_limit
            return Transition(
                new_state, rule, commune, ident, names[0], names[1], value, lim, ts, state.since_ms,
                render(rule, names[0], shown, "vi", lim, new_state, extra),
                render(rule, names[1], shown, "en", lim, new_state, extra))

        if state.phase == "ok":
            if cond != BREACH:
                return None
            state.phase, state.since_ms = "pending", ts
        elif cond == CLEAR:
            was = state.phase
            state.phase = "ok"
            return make("resolved") if was == "firing" else None
        if state.phase == "pending" and ts - state.since_ms >= rule.duration_s * 1000:
            state.phase = "firing"
            return make("firing")
        return None

    @staticmethod
    def _violated_limit(rule: Rule, value: float | None) -> float | None:
        if rule.kind == "band" and value is not None:
            return rule.lo if value < (rule.lo or 0) else rule.hi
        return rule.limit

    # ------------------------------------------------------------------ time and status
    def gateway_status(self, commune: str, gateway: str, online: bool, ts_ms: int) -> list[Transition]:
        self.gateway_online[(commune, gateway)] = online
        return self.tick(ts_ms)

    def tick(self, now_ms: int) -> list[Transition]:
        """Time-driven work: pending durations, station silence, gateway correlation."""
        if self.start_ms is None:
            self.start_ms = now_ms
        out: list[Transition] = []
        for key, state in list(self.states.items()):
            if state.phase != "pending":
                continue
            commune, ident, rule_id = key.split("/", 2)
            rule = self._rule(commune, ident, rule_id)
            if rule is None or rule.kind in ("stale", "gateway_offline"):
                continue
            st = self.station(commune, ident)
            if st is None:
                continue
            last = self.last_seen.get((commune, ident), 0)
            # promote between readings only while the data is fresh: silence is not a breach
            if now_ms - last <= 3 * st.interval_s * 1000 and now_ms - state.since_ms >= rule.duration_s * 1000:
                t = self._step(rule, st, HOLD, None, state.limit, now_ms)
                if t:
                    out.append(t)
        for site in self.sites.values():
            for gw in site.gateways:
                out.extend(self._check_gateway(site, gw, now_ms))
        for (commune, ident) in self.daily_rules:
            st = self.station(commune, ident)
            if st is not None:
                out.extend(self._daily(st, now_ms - DAILY_GRACE_MS, now_ms))
        return out

    def _rule(self, commune: str, ident: str, rule_id: str) -> Rule | None:
        for r in self.rules.get((commune, ident), []):
            if r.id == rule_id:
                return r
        return next((r for r in self.gateway_rules if r.id == rule_id), None)

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
            t = self._step(rule, None, cond, float(n_silent if offline else 0), None, now_ms,
                           commune=site.commune, ident=gw, names=(g.name_vi, g.name_vi))
            if t:
                out.append(t)
        for st, (silent, silent_s, stale_rule) in zip(stations, status, strict=True):
            if stale_rule is None:
                continue
            rule = stale_rule
            if offline or not silent:
                cond = CLEAR
            else:
                # A station's own silence only counts once a sibling has reported after it went
                # quiet (the gateway is alive); otherwise wait: it may be the gateway's silence.
                mine = self.last_seen.get((st.commune, st.id), self.start_ms or now_ms)
                alive = any(self.last_seen.get((o.commune, o.id), 0) > mine for o in stations if o is not st)
                # after a gateway outage, give its stations one silence period to report again
                back = self.gateway_back.get((site.commune, gw), 0)
                settled = now_ms - back > (rule.factor or 3) * st.interval_s * 1000
                cond = BREACH if alive and settled else HOLD
            limit_min = (rule.factor or 3) * st.interval_s / 60
            t = self._step(rule, st, cond, silent_s, None, now_ms,
                           text_value=silent_s / 60, text_limit=limit_min)
            if t:
                out.append(t)
        return out

    def force_clear(self, key: str) -> None:
        """Forget a condition's state (used when a person resolves an alert of a rule that was removed)."""
        self.states.pop(key, None)


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
