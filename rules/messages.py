"""Alert texts: Vietnamese first (decimal comma, thousands dot: "1.234,5"), English second."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from villagewatch import contract

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
    """1234.5 → "1.234,5" (vi) or "1,234.5" (en); trailing zeros dropped, -0 shown as 0."""
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if lang == "vi":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def bilingual(text: str, lang: str) -> str:
    """Pick one side of "tiếng Việt / English" texts used in rule packs."""
    if " / " not in text:
        return text
    vi, en = text.split(" / ", 1)
    return vi if lang == "vi" else en


def metric_label(metric: str, lang: str) -> str:
    m = contract.METRICS.get(metric)
    if m is None:
        return metric
    label = m.label(lang)
    # "Oxy hòa tan (DO)" reads "oxy hòa tan (DO)" inside a sentence; keep "pH", "COD"
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        label = label[0].lower() + label[1:]
    return label


def local_time(ts_ms: int, with_date: bool = True) -> str:
    t = dt.datetime.fromtimestamp(ts_ms / 1000, TZ)
    return t.strftime("%H:%M %d/%m/%Y" if with_date else "%H:%M")


_DEFAULTS = {
    ("vi", "above"): "{station}: {metric} {value} {unit}, vượt ngưỡng {limit} {unit} ({regulation})",
    ("en", "above"): "{station}: {metric} {value} {unit}, above the limit {limit} {unit} ({regulation})",
    ("vi", "below"): "{station}: {metric} {value} {unit}, dưới ngưỡng {limit} {unit} ({regulation})",
    ("en", "below"): "{station}: {metric} {value} {unit}, below the limit {limit} {unit} ({regulation})",
    ("vi", "mean"): "{station}: {metric} trung bình {averaging} {value} {unit}, vượt ngưỡng {limit} {unit} ({regulation})",
    ("en", "mean"): "{station}: {averaging} mean {metric} {value} {unit}, above the limit {limit} {unit} ({regulation})",
    ("vi", "band"): "{station}: {metric} {value} {unit}, ngoài khoảng cho phép {lo}–{hi} {unit} ({regulation})",
    ("en", "band"): "{station}: {metric} {value} {unit}, outside the allowed range {lo}–{hi} {unit} ({regulation})",
}


_RESOLVED = {
    ("vi", False): "Đã trở lại bình thường — {station}: {metric} {value} {unit} (ngưỡng {limit} {unit}, {regulation})",
    ("en", False): "Back to normal — {station}: {metric} {value} {unit} (limit {limit} {unit}, {regulation})",
    ("vi", True): "Đã trở lại bình thường — {station}",
    ("en", True): "Back to normal — {station}",
}
_NO_LIMIT = object()


def render(rule, station_name: str, value: float | None, lang: str, limit: object = _NO_LIMIT,
           state: str = "firing", extra: dict[str, str] | None = None) -> str:
    """The alert sentence of a rule (``rules.rulepack.Rule``) for one value.

    ``limit`` overrides the rule's limit in the text (stale rules: minutes of silence allowed).
    ``extra`` adds template fields (daily AQI: ``{day}``, the local date evaluated).
    """
    m = contract.METRICS.get(rule.metric)
    decimals = m.decimals if m else 2
    unit = m.unit if m else ""
    template = rule.message_vi if lang == "vi" else rule.message_en
    if state == "resolved":
        template = _RESOLVED[(lang, rule.kind in ("stale", "gateway_offline", "flatline", "aqi"))]
    elif not template:
        if rule.kind == "mean":
            key = "mean"
        elif rule.kind == "band":
            key = "band"
        else:
            key = "below" if (rule.op or "").endswith("below") else "above"
        template = _DEFAULTS[(lang, key)]
    if limit is _NO_LIMIT:
        limit = rule.limit
    assert limit is None or isinstance(limit, (int, float))
    fields = {
        "station": station_name,
        "metric": metric_label(rule.metric, lang),
        "value": fmt_number(value, 0 if rule.kind in ("aqi", "gateway_offline", "stale") else decimals, lang),
        "unit": unit,
        "limit": fmt_number(limit, decimals, lang),
        "lo": fmt_number(rule.lo, decimals, lang),
        "hi": fmt_number(rule.hi, decimals, lang),
        "regulation": bilingual(rule.regulation, lang),
        "averaging": bilingual(rule.averaging, lang),
        **(extra or {}),
    }
    text = template.format(**fields)
    return text.replace(" ,", ",").replace("  ", " ")
