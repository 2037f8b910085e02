"""The first page: what a commune chairman reads in one minute.

Order: no data at all (if so) → what could not be judged (insufficient data comes first) → one
verdict per domain (đạt / không đạt / không đủ số liệu) → the three things to do, with who →
data completeness and readings excluded as sensor faults → the regulations applied this month.
Every number goes through villagewatch.textfmt (decimal comma, half-up, unit on every value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports import judge
from reports.limits import Limit, pick_lang
from reports.model import Report, Row
from reports.texts import kind_label, metric_label, pct, qty, t
from villagewatch.textfmt import number

# Domains judged by compliance rows, in page order; flood and waste get their own lines.
DOMAINS = ("water_supply", "river", "pond", "air")
_HEALTH_PACKS = ("device-health",)

# What to do and who does it, per (station kind, metric, side); "*" = any metric of the kind.
ACTIONS: dict[tuple[str, str, str], tuple[tuple[str, str], tuple[str, str]]] = {
    ("water_supply", "chlorine", "lo"): (("Kiểm tra bơm châm clo, tăng liều và xét nghiệm lại nước đầu ra",
                                          "Check the chlorine dosing pump, raise the dose, re-test the outlet"),
                                         ("Nhà máy nước; báo Trạm Y tế xã", "Water plant; tell the commune health station")),
    ("water_supply", "chlorine", "hi"): (("Giảm liều clo; báo người dân nếu nước có mùi clo",
                                          "Lower the chlorine dose; tell residents if the water smells"),
                                         ("Nhà máy nước", "Water plant")),
    ("water_supply", "*", "*"): (("Lấy mẫu xét nghiệm, kiểm tra khâu lọc và xử lý",
                                  "Take a lab sample, check filtering and treatment"),
                                 ("Nhà máy nước; Trạm Y tế xã", "Water plant; commune health station")),
    ("pond", "do", "lo"): (("Bật máy sục khí ban đêm, giảm lượng thức ăn", "Run aerators at night, feed less"),
                           ("Chủ ao nuôi; cán bộ khuyến nông xã", "Pond owners; commune extension officer")),
    ("pond", "*", "*"): (("Kiểm tra nước ao, thay nước khi cần", "Check the pond water, exchange water if needed"),
                         ("Chủ ao nuôi; cán bộ khuyến nông xã", "Pond owners; commune extension officer")),
    ("river", "*", "*"): (("Kiểm tra các nguồn thải đổ vào sông, kênh", "Inspect discharges into the river or canal"),
                          ("Công chức địa chính – môi trường xã", "Commune land and environment officer")),
    ("air", "noise", "*"): (("Kiểm tra nguồn gây ồn gần trường học", "Find the noise source near the school"),
                            ("Công an xã; công chức môi trường", "Commune police; environment officer")),
    ("air", "*", "*"): (("Nhắc người dân không đốt rơm rạ; trường học hạn chế hoạt động ngoài trời ngày ô nhiễm",
                         "Ask farmers not to burn straw; schools limit outdoor activity on polluted days"),
                        ("UBND xã; trưởng ấp", "Commune People's Committee; hamlet heads")),
    ("flood_gauge", "*", "*"): (("Theo dõi bản tin lũ, chuẩn bị phương án sơ tán vùng trũng",
                                 "Follow flood bulletins, prepare evacuation of low areas"),
                                ("Ban chỉ huy phòng chống thiên tai xã", "Commune disaster prevention board")),
    ("waste", "*", "*"): (("Thêm chuyến thu gom ở điểm hay đầy", "Add collection rounds where bins fill up"),
                          ("Đơn vị thu gom rác; UBND xã", "Waste collector; commune People's Committee")),
    ("nodata", "*", "*"): (("Kiểm tra trạm thiếu số liệu: nguồn điện, cảm biến, đường truyền",
                            "Check stations short of data: power, sensors, connection"),
                           ("Cán bộ kỹ thuật", "Technician")),
    ("empty", "*", "*"): (("Kiểm tra cổng kết nối và Internet của xã; lập lại báo cáo khi có số liệu",
                           "Check the gateways and the commune's Internet; run the report again once data arrives"),
                          ("Cán bộ kỹ thuật", "Technician")),
}


@dataclass
class Headline:
    status: str  # "ok" | "fail" | "nodata" | "warn" | "info": colour of the bullet
    text: str


@dataclass
class Action:
    what: str
    who: str


def overall_completeness(report: Report) -> float | None:
    received = sum(r for r, _ in report.station_totals.values())
    expected = sum(e for _, e in report.station_totals.values())
    return None if expected == 0 else min(100.0, 100.0 * received / expected)


def station_completeness(report: Report) -> dict[str, float]:
    return {s: min(100.0, 100.0 * r / e) for s, (r, e) in report.station_totals.items() if e}


def compliance_rows(report: Report, kind: str) -> list[Row]:
    return [r for r in report.limited_rows() if r.station.kind == kind and r.limit.pack not in _HEALTH_PACKS
            and r.verdict != judge.NA]


def verb(lim: Limit, lang: str) -> str:
    """The words of the comparison: below a minimum, above a maximum, outside a band."""
    if lim.lo is not None and lim.hi is not None:
        return t("outside_band", lang, limit=lim.describe(lang).lstrip("≤≥<> "))
    if lim.hi is not None:
        return t("above_max", lang, limit=qty(lim.hi, lim.unit, lang, 3))
    return t("below_min", lang, limit=qty(lim.lo, lim.unit, lang, 3))


def _fail_item(r: Row, lang: str) -> str:
    mark = "*" if r.limit.unverified else ""
    return t("fail_item", lang, param=metric_label(r.metric, lang), verb=verb(r.limit, lang) + mark,
             station=r.station.name(lang), days=r.count(judge.FAIL), peak=qty(r.peak, r.limit.unit, lang, 2))


def _nodata_item(r: Row, lang: str) -> str:
    total = sum(1 for d in r.days if d != judge.NA)
    return t("nodata_item", lang, param=metric_label(r.metric, lang), station=r.station.name(lang),
             ok=r.count(judge.OK) + r.count(judge.FAIL), total=total)


def domain_verdicts(report: Report) -> dict[str, str]:
    return {kind: judge.worst_of([r.verdict for r in rows])
            for kind in DOMAINS if (rows := compliance_rows(report, kind))}


def headlines(report: Report, lang: str) -> list[Headline]:
    out: list[Headline] = []
    if report.empty:
        month = f"{report.month.month:02d}/{report.month.year}"
        out.append(Headline("nodata", t("empty_title", lang, month=month) + " " + t("empty_text", lang)))
    verdicts = domain_verdicts(report)
    if report.empty:
        # nothing to tell per limit: one grey line naming every domain that could not be judged
        kinds = list(verdicts) + [k for k in ("flood_gauge", "waste")
                                  if any(st.kind == k for st in report.site.stations.values())]
        domains = "; ".join(kind_label(k, lang) for k in kinds)
        out.append(Headline("nodata", t("insufficient_first", lang, items=domains)))
        return out
    short = [kind_label(k, lang) for k, v in verdicts.items() if v == judge.NODATA]
    if short:
        out.append(Headline("nodata", t("insufficient_first", lang, items="; ".join(short))))
    for kind, verdict in verdicts.items():
        rows = compliance_rows(report, kind)
        domain = kind_label(kind, lang)
        if verdict == judge.FAIL:
            failing = sorted((r for r in rows if r.verdict == judge.FAIL),
                             key=lambda r: (-r.limit.rule.severity_rank if r.limit.rule else 0, -r.count(judge.FAIL)))
            what = "; ".join(_fail_item(r, lang) for r in failing[:2])
            if len(failing) > 2:
                what += "; " + ("và {n} chỉ tiêu khác" if lang == "vi" else "and {n} more").format(n=len(failing) - 2)
            out.append(Headline("fail", t("domain_fail", lang, domain=domain, what=what)))
        elif verdict == judge.NODATA:
            lacking = [r for r in rows if r.verdict == judge.NODATA]
            what = "; ".join(_nodata_item(r, lang) for r in lacking[:2])
            if len(lacking) > 2:
                what += "; " + ("và {n} chỉ tiêu khác" if lang == "vi" else "and {n} more").format(n=len(lacking) - 2)
            out.append(Headline("nodata", t("domain_nodata", lang, domain=domain, what=what)))
        else:
            out.append(Headline("ok", t("domain_ok", lang, domain=domain, n=len(rows),
                                        s=len({r.station.id for r in rows}))))
    out.extend(_flood_lines(report, lang))
    out.extend(_aqi_lines(report, lang))
    out.extend(_waste_lines(report, lang))
    return out


def _flood_lines(report: Report, lang: str) -> list[Headline]:
    out = []
    for f in report.flood:
        if f.max_level is None or not f.levels:
            out.append(Headline("nodata", t("flood_nodata", lang, station=f.station.name(lang))))
            continue
        reached = [lim for lim, n in zip(f.levels, f.days_at_or_above, strict=True) if n]
        ref = reached[-1] if reached else f.levels[0]
        name = ref.column_text(lang).split(",")[0]
        diff = f.max_level - ref.hi
        by = qty(abs(diff), "m", lang, 2)
        if abs(diff) < 0.005:  # rounds to 0 m: the level itself was reached
            rel = t("flood_at", lang, level=name)
        else:
            rel = t("flood_above" if diff > 0 else "flood_below", lang, level=name, by=by)
        days = "/".join(str(d) for d in f.days_at_or_above)
        status = "ok" if not reached else ("fail" if f.days_at_or_above[-1] else "warn")
        out.append(Headline(status, t("flood_line", lang, station=f.station.name(lang), peak=qty(f.max_level, "m", lang, 2),
                                      day=f.max_day.strftime("%d/%m") if f.max_day else "—", rel=rel, days=days)))
    return out


def _aqi_lines(report: Report, lang: str) -> list[Headline]:
    from rules.aqi import BANDS, band  # the band table belongs to the AQI module
    out = []
    for station_id, days in report.aqi.items():
        values = [d.aqi for d in days if d.aqi is not None]
        if not values:
            continue
        counts = {b.label_vi if lang == "vi" else b.label_en: 0 for b in BANDS}
        for v in values:
            b = band(v)
            counts[b.label_vi if lang == "vi" else b.label_en] += 1
        day_word = {"vi": ("ngày", "ngày")}.get(lang, ("day", "days"))
        text = ", ".join(f"{n} {day_word[n != 1]} {name.lower()}" for name, n in counts.items() if n)
        worst = max(values)
        out.append(Headline("ok" if worst <= 100 else ("warn" if worst <= 150 else "fail"),
                            t("aqi_line", lang, station=report.site.stations[station_id].name(lang), bands=text)))
    return out


def _waste_lines(report: Report, lang: str) -> list[Headline]:
    out = []
    late = [w for w in report.waste if w.readings_above]
    unit_h = "giờ" if lang == "vi" else "h"
    if report.waste and not late and any(w.readings for w in report.waste):
        out.append(Headline("ok", t("waste_ok", lang, thr=pct(report.waste[0].threshold_pct, lang, 0))))
    for w in sorted(late, key=lambda w: -w.hours_above)[:2]:
        out.append(Headline("fail" if w.longest_h >= 24 else "warn", t(
            "waste_line", lang, station=w.station.name(lang), thr=pct(w.threshold_pct, lang, 0),
            hours=qty(w.hours_above, unit_h, lang, 0), n=len(w.episodes), longest=qty(w.longest_h, unit_h, lang, 0))))
    return out


def _action(key: tuple[str, str, str], lang: str) -> Action:
    (what_vi, what_en), (who_vi, who_en) = ACTIONS[key]
    return Action(what_vi if lang == "vi" else what_en, who_vi if lang == "vi" else who_en)


def _action_key(kind: str, metric: str, side: str) -> tuple[str, str, str]:
    for key in ((kind, metric, side), (kind, metric, "*"), (kind, "*", "*")):
        if key in ACTIONS:
            return key
    return ("nodata", "*", "*")


def actions(report: Report, lang: str, limit: int = 3) -> list[Action]:
    """The three things that need action, most urgent first, each with who does it."""
    if report.empty:
        return [_action(("empty", "*", "*"), lang)]
    keys: list[tuple[str, str, str]] = []
    flood_hit = [f for f in report.flood if any(f.days_at_or_above)]
    if flood_hit and flood_hit[0].days_at_or_above[-1]:
        keys.append(("flood_gauge", "*", "*"))
    failing = sorted((r for kind in DOMAINS for r in compliance_rows(report, kind) if r.verdict == judge.FAIL),
                     key=lambda r: (-(r.limit.rule.severity_rank if r.limit.rule else 0), -r.count(judge.FAIL)))
    for r in failing:
        side = "lo" if r.limit.lo is not None and (r.limit.hi is None or (r.peak or 0) < r.limit.lo) else "hi"
        keys.append(_action_key(r.station.kind, r.metric, side))
    if flood_hit:
        keys.append(("flood_gauge", "*", "*"))
    if any(w.longest_h >= 24 for w in report.waste):
        keys.append(("waste", "*", "*"))
    if any(v == judge.NODATA for v in domain_verdicts(report).values()) or _low_stations(report):
        keys.append(("nodata", "*", "*"))
    seen: list[tuple[str, str, str]] = []
    for k in keys:
        if k not in seen:
            seen.append(k)
    return [_action(k, lang) for k in seen[:limit]]


def _low_stations(report: Report) -> list[str]:
    return [s for s, v in station_completeness(report).items() if v < 90]


def data_lines(report: Report, lang: str) -> list[Headline]:
    overall = overall_completeness(report)
    status = "nodata" if report.empty else ("ok" if (overall or 0) >= 95 else "warn")
    out = [Headline(status, t("data_line", lang, pct=pct(overall, lang), n=len(report.site.stations),
                              excl=number(report.excluded_total(), 0, lang)))]
    low = [report.site.stations[s].name(lang) for s in _low_stations(report)]
    if low and not report.empty:
        out.append(Headline("warn", t("data_low", lang, names=", ".join(low))))
    return out


def unverified_used(report: Report, lang: str) -> str | None:
    items = sorted({f"{metric_label(r.metric, lang)} {r.limit.describe(lang)} ({pick_lang(r.limit.regulation, lang)})"
                    for r in report.limited_rows() if r.limit.unverified and r.verdict != judge.NA})
    return t("unverified_used", lang, items="; ".join(items)) if items else None


def version_lines(report: Report, lang: str) -> list[str]:
    """The regulation versions applied this month, with their validity (no hashes: last page)."""
    out = []
    # "*" on a version only when a limit of it that this report uses is unverified (a flood pack may
    # hold unverified levels for other gauges than the site's)
    unverified_packs = {r.limit.pack for r in report.limited_rows() if r.limit.unverified}
    for v in report.versions:
        title = v.title_vi if lang == "vi" else v.title_en
        span = ""
        if v.valid_from or v.valid_until:
            frm = t("valid_from", lang, d=v.valid_from.strftime("%d/%m/%Y")) if v.valid_from else ""
            until = t("valid_until", lang, d=(v.valid_until.fromordinal(v.valid_until.toordinal() - 1)).strftime(
                "%d/%m/%Y")) if v.valid_until else ""
            span = " — " + t("valid_span", lang, frm=frm, until=until).replace("  ", " ")
        if v.replaced_by:
            span += t("replaced", lang, by=v.replaced_by)
        mark = " *" if v.pack in unverified_packs else ""
        out.append(f"{pick_lang(v.regulation, lang)}{mark} — {title}{span}")
    return out


def completeness_matrix(report: Report) -> tuple[list[str], np.ndarray]:
    ids = list(report.site.stations)
    return ids, np.vstack([report.completeness[s] for s in ids])
