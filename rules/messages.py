"""Alert texts: Vietnamese first, English second.

Numbers go through ``villagewatch.textfmt`` (decimal comma in Vietnamese, half-up rounding) and
every value and limit carries its unit. The verb follows the comparison, as an inspector reads it:
below a minimum "thấp hơn mức tối thiểu" / "below the minimum", above a maximum "vượt mức tối đa" /
"above the maximum", outside a band "ngoài khoảng cho phép" / "outside the allowed range"; flood
alarm levels in bulletin style ("trên báo động I 0,25 m", pack templates with ``{excess_u}``).
Firing and resolving texts both cite the bound that was crossed (a band's lower bound for a low
reading). Template fields are listed in ``render``.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from rules.kinds.base import is_minimum
from rules.labels import pick_lang
from villagewatch import contract, textfmt

TZ = ZoneInfo("Asia/Ho_Chi_Minh")

SEVERITY_LABELS = {
    "info": ("Thông tin", "Info"),
    "warning": ("Cảnh báo", "Warning"),
    "critical": ("Khẩn cấp", "Critical"),
}
STATE_LABELS = {
    "pending": ("Chờ xác nhận điều kiện", "Pending"),
    "firing": ("Đang cảnh báo", "Firing"),
    "acknowledged": ("Đã tiếp nhận", "Acknowledged"),
    "resolved": ("Đã kết thúc", "Resolved"),
}


def fmt_number(value: float | None, decimals: int = 2, lang: str = "vi") -> str:
    """1234.5 → "1.234,5" (vi) or "1,234.5" (en), half-up; kept for callers of the old name —
    new code uses ``villagewatch.textfmt`` directly."""
    return textfmt.number(value, decimals, lang)


# one side of the "tiếng Việt / English" texts of rule packs (one implementation: rules/labels.py)
bilingual = pick_lang


def metric_label(metric: str, lang: str) -> str:
    m = contract.METRICS.get(metric)
    if m is None:
        return metric
    label = m.label(lang)
    if lang == "vi":
        label = re.sub(r"(\d)\.(\d)", r"\1,\2", label)  # PM2.5 → PM2,5, as QCVN 05 writes it
    # "Oxy hòa tan (DO)" reads "oxy hòa tan (DO)" inside a sentence; keep "pH", "COD"
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        label = label[0].lower() + label[1:]
    return label


def local_time(ts_ms: int, with_date: bool = True) -> str:
    t = dt.datetime.fromtimestamp(ts_ms / 1000, TZ)
    return t.strftime("%H:%M %d/%m/%Y" if with_date else "%H:%M")


_VERB = {
    ("vi", "min"): "thấp hơn mức tối thiểu", ("en", "min"): "below the minimum",
    ("vi", "max"): "vượt mức tối đa", ("en", "max"): "above the maximum",
}
_BOUND = {("vi", "min"): "mức tối thiểu", ("en", "min"): "minimum",
          ("vi", "max"): "mức tối đa", ("en", "max"): "maximum"}

_DEFAULTS = {
    ("vi", "limit"): "{station}: {metric} {value_u}, {verb} {limit_u} ({regulation})",
    ("en", "limit"): "{station}: {metric} {value_u}, {verb} {limit_u} ({regulation})",
    ("vi", "mean"): "{station}: {metric} trung bình {averaging} {value_u}, {verb} {limit_u} ({regulation})",
    ("en", "mean"): "{station}: {averaging} mean {metric} {value_u}, {verb} {limit_u} ({regulation})",
    ("vi", "band"): "{station}: {metric} {value_u}, ngoài khoảng cho phép {range_u} ({regulation})",
    ("en", "band"): "{station}: {metric} {value_u}, outside the allowed range {range_u} ({regulation})",
}

_RESOLVED = {
    ("vi", "value"): "Đã trở lại bình thường — {station}: {metric} {value_u} ({bound} {limit_u}, {regulation})",
    ("en", "value"): "Back to normal — {station}: {metric} {value_u} ({bound} {limit_u}, {regulation})",
    ("vi", "aqi"): "Đã trở lại bình thường — {station}: VN_AQI {value} (ngưỡng trên {limit}, {regulation})",
    ("en", "aqi"): "Back to normal — {station}: VN_AQI {value} (limit above {limit}, {regulation})",
    ("vi", "station"): "Đã trở lại bình thường — {station}",
    ("en", "station"): "Back to normal — {station}",
}
_NO_LIMIT = object()


def crossed_side(rule, limit: float | None) -> str:
    """"min" when the bound crossed is a minimum (DO, chlorine's lower bound), else "max"."""
    if rule.kind == "band":
        return "min" if limit is not None and limit == rule.lo else "max"
    return "min" if is_minimum(rule.op) else "max"


def rule_title(rule, lang: str = "vi") -> str:
    """A reader's name for a rule (never its id): "Clo dư tự do — Nhóm A, giới hạn 0,2–1,0"."""
    metric = contract.METRICS.get(rule.metric)
    head = metric.label(lang) if metric else bilingual(rule.regulation, lang)
    if lang == "vi":
        head = re.sub(r"(\d)\.(\d)", r"\1,\2", head)
    column = bilingual(rule.column, lang).strip()
    if rule.kind in ("stale", "gateway_offline", "flatline"):
        what = {"stale": ("mất tín hiệu", "silent station"), "gateway_offline": ("cổng kết nối mất kết nối",
                "gateway offline"), "flatline": ("cảm biến không đổi", "sensor stuck")}[rule.kind]
        head = f"{head} — {what[0] if lang == 'vi' else what[1]}" if metric else (what[0] if lang == "vi" else what[1])
    return head if column in ("", "—") else f"{head} — {column}"


def render(rule, station_name: str, value: float | None, lang: str, limit: object = _NO_LIMIT,
           state: str = "firing", extra: dict[str, str] | None = None) -> str:
    """The alert sentence of a rule (``rules.rulepack.Rule``) for one value.

    ``limit`` is the bound that was crossed (default: the rule's limit); stale rules pass the
    minutes of silence allowed. ``extra`` adds template fields (daily AQI: ``{day}``).
    Template fields: ``station``, ``metric`` (label), ``value``/``limit``/``lo``/``hi`` (numbers),
    ``unit``, ``value_u``/``limit_u`` (with unit), ``range_u`` (band "0,2–1 mg/L"), ``excess_u``
    (how far past the limit, with unit), ``verb``, ``bound``, ``regulation``, ``averaging``.
    Packs may set ``message_vi``/``message_en`` (firing) and ``resolved_vi``/``resolved_en``.
    """
    m = contract.METRICS.get(rule.metric)
    decimals = m.decimals if m else 2
    unit = m.unit if m else ""
    if limit is _NO_LIMIT:
        limit = rule.limit
    side = crossed_side(rule, limit)  # type: ignore[arg-type]
    if state == "resolved":
        template = (rule.resolved_vi if lang == "vi" else rule.resolved_en) or ""
        if not template:
            if rule.kind == "aqi":
                template = _RESOLVED[(lang, "aqi")]
            elif rule.kind in ("stale", "gateway_offline", "flatline"):
                template = _RESOLVED[(lang, "station")]
            else:
                template = _RESOLVED[(lang, "value")]
    else:
        template = rule.message_vi if lang == "vi" else rule.message_en
        if not template:
            template = _DEFAULTS[(lang, "mean" if rule.kind == "mean" else "band" if rule.kind == "band" else "limit")]
    value_decimals = 0 if rule.kind in ("aqi", "gateway_offline", "stale") else decimals
    excess = None if value is None or not isinstance(limit, (int, float)) else abs(value - limit)
    fields = {
        "station": station_name,
        "metric": metric_label(rule.metric, lang),
        "value": textfmt.number(value, value_decimals, lang),
        "unit": unit,
        "value_u": textfmt.quantity(value, unit, value_decimals, lang),
        "limit": textfmt.number(limit, decimals, lang),  # type: ignore[arg-type]
        "limit_u": textfmt.quantity(limit, unit, decimals, lang),  # type: ignore[arg-type]
        "lo": textfmt.number(rule.lo, decimals, lang),
        "hi": textfmt.number(rule.hi, decimals, lang),
        "range_u": textfmt.span(rule.lo, rule.hi, unit, decimals, lang),
        "excess_u": textfmt.quantity(excess, unit, decimals, lang),
        "verb": _VERB[(lang, side)],
        "bound": _BOUND[(lang, side)],
        "regulation": bilingual(rule.regulation, lang),
        "averaging": bilingual(rule.averaging, lang),
        **(extra or {}),
    }
    text = template.format(**fields)
    return text.replace(" ,", ",").replace("  ", " ")
