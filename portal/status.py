"""A station's state and plain-language sentence for residents, from the rule packs.

States (issue 15's words): ``ok`` tốt, ``warn`` cần chú ý, ``exceeded`` vượt ngưỡng, ``offline``
mất kết nối, ``no_data`` chưa có số liệu.

What is compared, and why it is worded carefully:
- *single-sample* limits (kinds ``threshold`` and ``band``: tap water, ponds, rivers) are compared
  with today's lowest and highest value (site's local day) and the latest value: one sample outside
  the limit today is "vượt ngưỡng"; within 10 % of the limit is "cần chú ý";
- *averaged* limits (kind ``mean``: 24-hour PM2.5, 1-hour noise Leq) cannot be judged from one value,
  so the latest value above such a limit is only "cần chú ý"; the alert service judges the mean;
- air: VN_AQI (Decision 1459) sub-index of the latest PM2.5/PM10 value — an estimate, labelled so;
  AQI ≤ 100 is "tốt", 101–150 "cần chú ý", above "vượt ngưỡng".
Every number a person reads goes through villagewatch.textfmt (decimal comma, half-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from rules import aqi
from rules.rulepack import Rule, RuleSet
from villagewatch import contract
from villagewatch.sites import Station
from villagewatch.textfmt import number, quantity, span

# op -> allowed side of a one-sided limit, (vi, en): breached ``above`` X means "not above X" is allowed
_ALLOWED = {"above": ("không vượt quá", "not above"), "at_or_above": ("dưới", "below"),
            "below": ("không thấp hơn", "not below"), "at_or_below": ("trên", "above")}
NEAR = 0.10  # "cần chú ý" within 10 % of a limit
OFFLINE_INTERVALS = 3  # silent for more than N × the station's interval → mất kết nối
LIMIT_KINDS = ("threshold", "band", "mean")
DEVICE_PACKS = ("device-health",)
SUBJECT = {"water_supply": ("Nước máy", "Tap water"), "river": ("Nước sông, kênh", "River water"),
           "pond": ("Nước ao nuôi", "Pond water"), "air": ("Chất lượng không khí", "Air quality"),
           "weather": ("Thời tiết", "Weather"), "waste": ("Thùng rác", "Waste bin"),
           "flood_gauge": ("Mực nước", "Water level")}
STATE_WORDS = {"ok": ("Tốt", "Good"), "warn": ("Cần chú ý", "Needs attention"),
               "exceeded": ("Vượt ngưỡng", "Limit exceeded"), "offline": ("Mất kết nối", "Offline"),
               "no_data": ("Chưa có số liệu", "No data yet")}
RANK = {"ok": 0, "warn": 1, "exceeded": 2}


def _fmt(metric: str, value: float | None, lang: str = "vi") -> str:
    m = contract.METRICS.get(metric)
    return quantity(value, m.unit if m else "", m.decimals if m else 2, lang)


@dataclass(frozen=True)
class Limit:
    """One limit of a rule pack for one metric of a station, with its citation."""

    rule: Rule

    @property
    def metric(self) -> str:
        return self.rule.metric

    def words(self, lang: str = "vi") -> str:
        r, m = self.rule, contract.METRICS.get(self.rule.metric)
        unit, dec = (m.unit if m else ""), (m.decimals if m else 2)
        if r.kind == "band":
            text = (f"trong khoảng {span(r.lo, r.hi, unit, dec)}" if lang == "vi"
                    else f"within {span(r.lo, r.hi, unit, dec, 'en')}")
        else:
            # what is allowed, read from the regulation's comparison: a ≥ limit is breached AT the
            # level, so the allowed side is "dưới" (strictly below), not "không vượt quá"
            vi, en = _ALLOWED[r.op or "above"]
            limit = quantity(r.limit, unit, dec, lang)
            text = f"{vi if lang == 'vi' else en} {limit}"
        if r.kind == "mean":
            avg = _half(r.averaging, lang)
            text += f" ({'trung bình' if lang == 'vi' else 'mean'} {avg})" if avg else ""
        return text

    def citation(self, lang: str = "vi") -> str:
        r = self.rule
        parts = [r.regulation, _half(r.table, lang), _half(r.column, lang)]
        text = ", ".join(p for p in parts if p)
        if r.unverified:
            text += " — ngưỡng chưa kiểm chứng với văn bản gốc" if lang == "vi" else " — limit not verified"
        return text

    def judge(self, values: list[float]) -> str:
        """ok / warn / exceeded for these values (today's extremes and the latest)."""
        r = self.rule
        worst = "ok"
        for v in values:
            if r.kind == "band" and r.lo is not None and r.hi is not None:
                if r.breached_by(v):
                    state = "exceeded"
                else:
                    margin = (r.hi - r.lo) * NEAR / 2
                    state = "warn" if v < r.lo + margin or v > r.hi - margin else "ok"
            elif r.limit is not None:
                below = (r.op or "above").endswith("below")
                bad = r.breached_by(v)  # the one comparison (rules/rulepack.py), as the engine's
                near = v < r.limit * (1 + NEAR) if below else v > r.limit * (1 - NEAR)
                state = "exceeded" if bad else "warn" if near else "ok"
            else:
                state = "ok"
            if r.kind == "mean" and state == "exceeded":
                state = "warn"  # one value is not the regulation's mean (see module doc)
            if RANK[state] > RANK[worst]:
                worst = state
        return worst


def _half(text: str, lang: str) -> str:
    """Rule-pack texts are "vi / en"; the half for ``lang``."""
    if not text:
        return ""
    vi, _, en = text.partition(" / ")
    return (vi if lang == "vi" or not en else en).strip()


def limits_for(ruleset: RuleSet | None, st: Station, at_ms: int, tz: str = "Asia/Ho_Chi_Minh") -> dict[str, list[Limit]]:
    """Limits that apply now (validity dates and hours, e.g. day/night noise); device-health rules
    (battery, signal) are the technicians' business, not a resident's "vượt ngưỡng"."""
    if ruleset is None:
        return {}
    out: dict[str, list[Limit]] = {}
    for r in ruleset.rules_for(st, at_ms):
        if r.pack in DEVICE_PACKS or not r.active_at(at_ms, tz):
            continue
        if r.kind in LIMIT_KINDS and r.metric in st.metrics and (r.limit is not None or r.lo is not None):
            out.setdefault(r.metric, []).append(Limit(r))
    return out


def _limit_info(lim: Limit) -> dict:
    r = lim.rule
    return {"words_vi": lim.words("vi"), "words_en": lim.words("en"), "citation_vi": lim.citation("vi"),
            "citation_en": lim.citation("en"), "severity": r.severity, "kind": r.kind,
            "lo": r.lo, "hi": r.hi, "limit": r.limit}


class LimitCache:
    """Limits (and their words) per station for the current minute: rule selection and wording are
    the costly part of judging 1,000 stations, and they only change with dates and hours. Memory is
    bounded by the stations of the site files (the whole map is dropped when the minute changes)."""

    def __init__(self) -> None:
        self._minute = -1
        self._map: dict[tuple[str, str], tuple[dict[str, list[Limit]], dict[str, list[dict]]]] = {}

    def get(self, ruleset: RuleSet | None, st: Station, at_ms: int, tz: str) -> tuple[dict, dict]:
        minute = at_ms // 60_000
        if minute != self._minute:
            self._minute, self._map = minute, {}
        key = (st.commune, st.id)
        if key not in self._map:
            limits = limits_for(ruleset, st, at_ms, tz)
            self._map[key] = (limits, {m: [_limit_info(lim) for lim in lims] for m, lims in limits.items()})
        return self._map[key]


@dataclass
class Assessment:
    state: str
    summary_vi: str
    summary_en: str
    metrics: dict[str, dict]  # metric -> {"state", "limits": [{"words_vi", "words_en", "citation_vi", ...}]}
    aqi: int | None = None


def assess(st: Station, ruleset: RuleSet | None, latest: dict[str, dict], today: dict[str, tuple[float, float]],
           now_ms: int, tz: str = "Asia/Ho_Chi_Minh", cache: LimitCache | None = None) -> Assessment:
    """``latest``: metric → {value, ts}; ``today``: metric → (min, max) since local midnight."""
    if cache is not None:
        limits, info = cache.get(ruleset, st, now_ms, tz)
    else:
        limits = limits_for(ruleset, st, now_ms, tz)
        info = {m: [_limit_info(lim) for lim in lims] for m, lims in limits.items()}
    subject_vi, subject_en = SUBJECT.get(st.kind, (st.name_vi, st.name_en or st.name_vi))
    per_metric: dict[str, dict] = {}
    breaches: list[tuple[str, str, Limit]] = []
    worst = "ok"
    for metric in st.metrics:
        lims = limits.get(metric, [])
        values = [latest[metric]["value"]] if metric in latest and latest[metric]["value"] is not None else []
        if metric in today:
            values += [v for v in today[metric] if v is not None]
        state = "ok"
        for lim in lims:
            s = lim.judge(values)
            if RANK[s] > RANK[state]:
                state = s
            if s != "ok":
                breaches.append((metric, s, lim))
        if not values:
            state = "no_data"
        per_metric[metric] = {"state": state, "limits": info.get(metric, [])}
        if state in RANK and RANK[state] > RANK[worst]:
            worst = state
    aqi_value = _aqi(latest) if st.kind == "air" else None
    if aqi_value is not None:
        aqi_state = "ok" if aqi_value <= 100 else "warn" if aqi_value <= 150 else "exceeded"
        if RANK[aqi_state] > RANK[worst]:
            worst = aqi_state
    last_ts = max((v["ts"] for v in latest.values() if v.get("ts") is not None), default=None)
    if last_ts is None:
        return Assessment("no_data", f"{subject_vi}: chưa có số liệu", f"{subject_en}: no data yet", per_metric)
    if now_ms - last_ts > OFFLINE_INTERVALS * st.interval_s * 1000:
        when = datetime.fromtimestamp(last_ts / 1000, ZoneInfo(tz)).strftime("%H:%M %d/%m/%Y")
        return Assessment("offline", f"{subject_vi}: mất kết nối từ {when}", f"{subject_en}: offline since {when}",
                          per_metric, aqi_value)
    if aqi_value is not None:
        b = aqi.band(aqi_value)
        vi = f"{subject_vi}: {b.label_vi} (VN_AQI {number(aqi_value, 0)})"
        en = f"{subject_en}: {b.label_en} (VN_AQI {number(aqi_value, 0, 'en')})"
    elif not limits:
        vi, en = f"{subject_vi}: đang quan trắc", f"{subject_en}: monitored"
    elif worst == "ok":
        vi, en = f"{subject_vi}: đạt quy chuẩn hôm nay", f"{subject_en}: within the regulation today"
    else:
        metric, _s, lim = max(breaches, key=lambda b: RANK[b[1]])
        m = contract.METRICS.get(metric)
        label_vi, label_en = (m.label_vi, m.label_en) if m else (metric, metric)
        shown = latest.get(metric, {}).get("value")
        if worst == "exceeded":
            vi = f"{subject_vi}: vượt ngưỡng hôm nay — {label_vi} {_fmt(metric, shown)}, quy chuẩn {lim.words('vi')}"
            en = f"{subject_en}: limit exceeded today — {label_en} {_fmt(metric, shown, 'en')}, limit {lim.words('en')}"
        else:
            vi = f"{subject_vi}: cần chú ý — {label_vi} {_fmt(metric, shown)}, gần giới hạn {lim.words('vi')}"
            en = f"{subject_en}: needs attention — {label_en} {_fmt(metric, shown, 'en')}, near the limit {lim.words('en')}"
    return Assessment(worst, vi, en, per_metric, aqi_value)


def _aqi(latest: dict[str, dict]) -> int | None:
    subs = {p: aqi.sub_index(p, latest[p]["value"]) for p in aqi.PM if p in latest and latest[p]["value"] is not None}
    subs = {k: v for k, v in subs.items() if v is not None}
    return aqi.round_half_up(max(subs.values())) if subs else None
