"""The report's tables as rows of cells, shared by the CSV, HTML and PDF writers.

``machine=True`` gives plain numbers (decimal point, ISO times) for CSV — spreadsheets parse them —
with Vietnamese headers when ``lang="vi"``; otherwise every number is formatted for reading
(villagewatch.textfmt: decimal comma in Vietnamese, half-up, units on values and limits).
"""

from __future__ import annotations

from reports import judge
from reports.limits import pick_lang
from reports.model import Report
from reports.texts import kind_label, metric_label, metric_unit, num, qty, t

Table = tuple[list[str], list[list]]


def _n(value: float | None, lang: str, machine: bool, decimals: int = 1):
    if value is None:
        return "" if machine else "—"
    return round(value, 4) if machine else num(value, lang, decimals)


def _q(value: float | None, unit: str, lang: str, machine: bool, decimals: int = 2):
    """A value with its unit for reading; a plain number for CSV (the unit is in its own column)."""
    if value is None:
        return "" if machine else "—"
    return round(value, 4) if machine else qty(value, unit, lang, decimals)


def _time(report: Report, ts_ms: int, machine: bool) -> str:
    local = report.month.local(ts_ms)
    return local.isoformat(timespec="minutes") if machine else local.strftime("%d/%m %H:%M")


def verdict_text(verdict: str, lang: str) -> str:
    return t(verdict, lang)


def results_table(report: Report, lang: str, machine: bool = False) -> Table:
    """Every station × parameter × limit; the CSV has all columns, paper a readable subset."""
    if not machine:
        return _results_for_paper(report, lang)
    header = [t(k, lang) for k in ("station_id", "station", "kind", "parameter", "unit", "regulation", "table",
                                   "column", "averaging", "limit", "readings", "expected", "completeness",
                                   "excluded", "judged", "within", "episodes", "outside_h", "peak", "days_ok",
                                   "days_fail", "days_nodata", "verdict", "rolling", "rule_id", "unverified_col")]
    rows = []
    for r in report.rows:
        lim = r.limit
        rows.append([
            r.station.id, r.station.name(lang), kind_label(r.station.kind, lang), metric_label(r.metric, lang),
            metric_unit(r.metric),
            pick_lang(lim.regulation, lang) if lim else "",
            pick_lang(lim.table, lang) if lim else "",
            lim.column_text(lang) if lim else "",
            (lim.averaging_text(lang) + (f", {lim.hours_text()}" if lim.hours else "")) if lim else "",
            (lim.describe(lang) + ("*" if lim.unverified else "")) if lim else "",
            r.readings, r.expected, _n(r.completeness_pct, lang, True), r.excluded,
            r.judged if lim else "", _n(r.within_pct, lang, True) if lim else "",
            len(r.episodes) if lim else "", _n(r.outside_s / 3600, lang, True) if lim else "",
            _n(r.peak, lang, True, 2),
            r.count(judge.OK) if lim else "", r.count(judge.FAIL) if lim else "",
            r.count(judge.NODATA) if lim else "", verdict_text(r.verdict, lang) if lim else "",
            "" if r.rolling_fail_days is None else r.rolling_fail_days,
            lim.rule_id if lim else "", int(lim.unverified) if lim else "",
        ])
    return header, rows


def _results_for_paper(report: Report, lang: str) -> Table:
    header = [t("station", lang), t("parameter", lang), t("limit", lang), t("regulation", lang),
              t("completeness", lang), t("excluded", lang),
              ("Ngày đạt / không đạt / thiếu số liệu" if lang == "vi" else "Days met / not met / no data"),
              t("worst", lang), t("verdict", lang)]
    rows = []
    for r in report.rows:
        lim = r.limit
        if lim is None:
            continue  # parameters without a limit: availability only, in the CSV and the completeness map
        reg = pick_lang(lim.regulation, lang) + (", " + lim.averaging_text(lang) if lim.window_s else "")
        if lim.hours:
            reg += f", {lim.hours_text()}"
        rows.append([
            r.station.name(lang), metric_label(r.metric, lang),
            lim.describe(lang) + ("*" if lim.unverified else ""), reg,
            _n(r.completeness_pct, lang, False) + " %" if r.completeness_pct is not None else "—",
            r.excluded,
            f"{r.count(judge.OK)} / {r.count(judge.FAIL)} / {r.count(judge.NODATA)}",
            qty(r.peak, lim.unit, lang, 2) if r.peak is not None else "—",
            verdict_text(r.verdict, lang),
        ])
    return header, rows


def episodes_table(report: Report, lang: str, machine: bool = False, per_row: int | None = None) -> Table:
    """Episodes of every limited row, longest first within a row (``per_row`` caps them for paper)."""
    header = [t(k, lang) for k in ("station", "parameter", "limit", "start", "end", "duration_h", "peak")]
    if machine:
        header = [t("station_id", lang), t("rule_id", lang)] + header
    rows = []
    for r in report.limited_rows():
        episodes = sorted(r.episodes, key=lambda e: -e.duration_s)
        shown = episodes if per_row is None else episodes[:per_row]
        for e in sorted(shown, key=lambda e: e.start_ms):
            cells = [r.station.name(lang), metric_label(r.metric, lang),
                     f"{r.limit.describe(lang)}{'*' if r.limit.unverified else ''} ({r.limit.averaging_text(lang)})",
                     _time(report, e.start_ms, machine), _time(report, e.end_ms, machine),
                     _n(e.duration_s / 3600, lang, machine, 2), _q(e.peak, r.limit.unit, lang, machine, 2)]
            if machine:
                cells = [r.station.id, r.limit.rule_id] + cells
            rows.append(cells)
        if per_row is not None and len(episodes) > per_row and not machine:
            rows.append(["", "", "", t("more_episodes", lang, n=len(episodes) - per_row), "", "", ""])
    return header, rows


def daily_table(report: Report, lang: str, machine: bool = False) -> Table:
    """Per station and local day: completeness, VN_AQI (air), highest level (flood gauges)."""
    header = [t(k, lang) for k in ("station", "date", "completeness", "aqi", "level_max")]
    if machine:
        header = [t("station_id", lang)] + header
    flood = {f.station.id: f for f in report.flood}
    rows = []
    for station_id, st in report.site.stations.items():
        aqi_days = {d.day: d for d in report.aqi.get(station_id, [])}
        for i, day in enumerate(report.month.days):
            comp = report.completeness[station_id][i]
            aqi = aqi_days[day].aqi if day in aqi_days else None
            level = flood[station_id].daily_max[i] if station_id in flood else None
            cells = [st.name(lang), day.isoformat() if machine else day.strftime("%d/%m/%Y"),
                     _n(None if comp != comp else float(comp), lang, machine),
                     "" if aqi is None and machine else ("—" if aqi is None else aqi),
                     _q(None if level is None or level != level else float(level), "m", lang, machine, 2)]
            if machine:
                cells = [station_id] + cells
            rows.append(cells)
    return header, rows


def waste_table(report: Report, lang: str, machine: bool = False) -> Table:
    thr = num(report.waste[0].threshold_pct, lang, 0) if report.waste else ""
    unit_h = "giờ" if lang == "vi" else "h"
    header = [t("station", lang), t("hours_above", lang, thr=thr), t("times_above", lang), t("longest_h", lang),
              t("pct_above", lang), t("excluded", lang)]
    rows = [[w.station.name(lang), _q(w.hours_above, unit_h, lang, machine, 1), len(w.episodes),
             _q(w.longest_h, unit_h, lang, machine, 1),
             _q(w.pct_time_above, "%", lang, machine, 1), w.excluded] for w in report.waste]
    return header, rows


def flood_table(report: Report, lang: str, machine: bool = False) -> Table:
    levels = report.flood[0].levels if report.flood else []
    header = [t("station", lang), t("level_max", lang), t("date", lang)] + [
        t("days_at_level", lang, level=f"{lim.column_text(lang).split(',')[0]} ({'≥' if lim.hi_inclusive else '>'} "
                                       f"{qty(lim.hi, 'm', lang, 2)})") for lim in levels] + [t("excluded", lang)]
    rows = [[f.station.name(lang), _q(f.max_level, "m", lang, machine, 2),
             (f.max_day.isoformat() if machine else f.max_day.strftime("%d/%m/%Y")) if f.max_day else ""]
            + list(f.days_at_or_above) + [f.excluded] for f in report.flood]
    return header, rows
