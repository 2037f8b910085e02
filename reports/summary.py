"""The first page: a handful of sentences a commune chairman reads in one minute."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.model import Report
from reports.texts import kind_label, metric_label, num, pct, t

# Kinds summarised by compliance sentences; flood and waste get their own sentences.
_COMPLIANCE_KINDS = ("water_supply", "river", "pond", "air")
_HEALTH_PACKS = ("device-health",)


@dataclass
class Headline:
    status: str  # "ok" | "warn" | "bad": colour of the bullet
    text: str


def overall_completeness(report: Report) -> float | None:
    received = sum(r for r, _ in report.station_totals.values())
    expected = sum(e for _, e in report.station_totals.values())
    return None if expected == 0 else min(100.0, 100.0 * received / expected)


def station_completeness(report: Report) -> dict[str, float]:
    return {s: min(100.0, 100.0 * r / e) for s, (r, e) in report.station_totals.items() if e}


def _hours(seconds: float, lang: str) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} {'phút' if lang == 'vi' else 'min'}"
    if seconds < 2 * 86_400:
        return f"{num(seconds / 3600, lang, 1)} {'giờ' if lang == 'vi' else 'h'}"
    return f"{num(seconds / 86_400, lang, 1)} {'ngày' if lang == 'vi' else 'days'}"


def headlines(report: Report, lang: str) -> list[Headline]:
    out: list[Headline] = []
    overall = overall_completeness(report)
    comp = station_completeness(report)
    out.append(Headline("ok" if (overall or 0) >= 95 else "warn",
                        t("data_ok", lang, pct=pct(overall, lang), n=len(report.site.stations))))
    low = [report.site.stations[s].name(lang) for s, v in comp.items() if v < 90]
    if low:
        out.append(Headline("warn", t("data_low", lang, names=", ".join(low))))

    for kind in _COMPLIANCE_KINDS:
        rows = [r for r in report.limited_rows() if r.station.kind == kind and r.limit.pack not in _HEALTH_PACKS]
        if not rows:
            continue
        failing = [r for r in rows if r.episodes]
        if not failing:
            out.append(Headline("ok", t("all_within", lang, kind=kind_label(kind, lang))))
            continue
        # worst first (least time within); one sentence per kind keeps page 1 to a minute of reading
        failing.sort(key=lambda r: (r.within_pct if r.within_pct is not None else 100.0))
        r = failing[0]
        longest = max(e.duration_s for e in r.episodes)
        text = t("exceed", lang, kind=kind_label(kind, lang), param=metric_label(r.metric, lang),
                 station=r.station.name(lang), within=pct(r.within_pct, lang), n=len(r.episodes),
                 longest=_hours(longest, lang))
        others = sorted({f"{metric_label(o.metric, lang)} ({o.station.name(lang)})" for o in failing[1:]})
        if others:
            text += " " + t("also_outside", lang, items="; ".join(others[:4]) + ("; …" if len(others) > 4 else ""))
        out.append(Headline("bad" if (r.within_pct or 0) < 90 else "warn", text))

    from rules.aqi import BANDS, band  # the band table belongs to the AQI module
    for station_id, days in report.aqi.items():
        values = [d.aqi for d in days if d.aqi is not None]
        if not values:
            continue
        counts = {b.label_vi if lang == "vi" else b.label_en: 0 for b in BANDS}
        for v in values:
            b = band(v)
            counts[b.label_vi if lang == "vi" else b.label_en] += 1
        text = ", ".join(f"{n} {'ngày' if lang == 'vi' else 'days'} {name.lower()}"
                         for name, n in counts.items() if n)
        worst = max(values)
        out.append(Headline("ok" if worst <= 100 else ("warn" if worst <= 150 else "bad"),
                            t("aqi_line", lang, station=report.site.stations[station_id].name(lang), bands=text)))

    for f in report.flood:
        if f.max_level is None:
            continue
        days = "/".join(str(d) for d in f.days_at_or_above) or "—"
        status = "ok" if not any(f.days_at_or_above) else ("bad" if f.days_at_or_above[-1] else "warn")
        out.append(Headline(status, t("flood_line", lang, station=f.station.name(lang),
                                      peak=num(f.max_level, lang, 2),
                                      day=f.max_day.strftime("%d/%m") if f.max_day else "—", days=days)))

    late = [w for w in report.waste if w.readings_above]
    if report.waste and not late:
        out.append(Headline("ok", t("waste_ok", lang, thr=f"{report.waste[0].threshold_pct:g}")))
    for w in sorted(late, key=lambda w: -w.hours_above)[:2]:
        out.append(Headline("bad" if w.longest_h >= 24 else "warn", t(
            "waste_line", lang, station=w.station.name(lang), thr=f"{w.threshold_pct:g}",
            hours=num(w.hours_above, lang, 0), n=len(w.episodes), longest=num(w.longest_h, lang, 0))))
    return out


def completeness_matrix(report: Report) -> tuple[list[str], np.ndarray]:
    ids = list(report.site.stations)
    return ids, np.vstack([report.completeness[s] for s in ids])
