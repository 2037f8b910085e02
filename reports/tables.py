"""The report's tables as rows of cells, shared by the CSV, HTML and PDF writers.

``machine=True`` gives plain numbers (decimal point, ISO times) for CSV; otherwise numbers are
formatted for reading in the chosen language.
"""

from __future__ import annotations

from reports.limits import pick_lang
from reports.model import Report
from reports.texts import kind_label, metric_label, metric_unit, num, t

Table = tuple[list[str], list[list]]


def _n(value: float | None, lang: str, machine: bool, decimals: int = 1):
    if value is None:
        return "" if machine else "—"
    return round(value, 4) if machine else num(value, lang, decimals)


def _time(report: Report, ts_ms: int, machine: bool) -> str:
    local = report.month.local(ts_ms)
    return local.isoformat(timespec="minutes") if machine else local.strftime("%d/%m %H:%M")


def results_table(report: Report, lang: str, machine: bool = False) -> Table:
    header = [t(k, lang) for k in ("station", "kind", "parameter", "unit", "regulation", "table", "column",
                                   "averaging", "limit", "readings", "expected", "completeness", "judged",
                                   "within", "episodes", "outside_h", "peak")]
    if machine:
        header = ["station_id"] + header + ["rule_id", "unverified"]
    rows = []
    for r in report.rows:
        lim = r.limit
        peak = None
        if r.episodes:
            peaks = [e.peak for e in r.episodes]
            peak = max(peaks) if lim.hi is not None and max(peaks) > lim.hi else min(peaks)
        cells = [
            r.station.name(lang), kind_label(r.station.kind, lang), metric_label(r.metric, lang),
            metric_unit(r.metric),
            pick_lang(lim.regulation, lang) if lim else "",
            pick_lang(lim.table, lang) if lim else "",
            lim.column_text(lang) if lim else "",
            (lim.averaging_text(lang) + (f", {lim.hours_text()}" if lim.hours else "")) if lim else "",
            (lim.describe() + ("*" if lim.unverified else "")) if lim else "",
            r.readings, r.expected, _n(r.completeness_pct, lang, machine),
            r.judged if lim else ("" if machine else "—"),
            _n(r.within_pct, lang, machine) if lim else ("" if machine else "—"),
            len(r.episodes) if lim else ("" if machine else "—"),
            _n(r.outside_s / 3600, lang, machine) if lim else ("" if machine else "—"),
            _n(peak, lang, machine, 2),
        ]
        if machine:
            cells = [r.station.id] + cells + [lim.rule_id if lim else "", int(lim.unverified) if lim else ""]
        rows.append(cells)
    return header, rows


def episodes_table(report: Report, lang: str, machine: bool = False, per_row: int | None = None) -> Table:
    """Episodes of every limited row, longest first within a row (``per_row`` caps them for paper)."""
    header = [t(k, lang) for k in ("station", "parameter", "limit", "start", "end", "duration_h", "peak")]
    if machine:
        header = ["station_id", "rule_id"] + header
    rows = []
    for r in report.limited_rows():
        episodes = sorted(r.episodes, key=lambda e: -e.duration_s)
        shown = episodes if per_row is None else episodes[:per_row]
        for e in sorted(shown, key=lambda e: e.start_ms):
            cells = [r.station.name(lang), metric_label(r.metric, lang),
                     f"{r.limit.describe()} ({r.limit.averaging_text(lang)})",
                     _time(report, e.start_ms, machine), _time(report, e.end_ms, machine),
                     _n(e.duration_s / 3600, lang, machine, 2), _n(e.peak, lang, machine, 2)]
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
        header = ["station_id"] + header
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
                     _n(None if level is None or level != level else float(level), lang, machine, 2)]
            if machine:
                cells = [station_id] + cells
            rows.append(cells)
    return header, rows


def waste_table(report: Report, lang: str, machine: bool = False) -> Table:
    thr = f"{report.waste[0].threshold_pct:g}" if report.waste else ""
    header = [t("station", lang), t("hours_above", lang, thr=thr), t("times_above", lang), t("longest_h", lang),
              t("pct_above", lang)]
    rows = [[w.station.name(lang), _n(w.hours_above, lang, machine), len(w.episodes),
             _n(w.longest_h, lang, machine), _n(w.pct_time_above, lang, machine)] for w in report.waste]
    return header, rows


def flood_table(report: Report, lang: str, machine: bool = False) -> Table:
    levels = report.flood[0].levels if report.flood else []
    header = [t("station", lang), t("level_max", lang), t("date", lang)] + [
        t("days_at_level", lang, level=f"{lim.column_text(lang).split(',')[0]} ({lim.hi:g} m)") for lim in levels]
    rows = [[f.station.name(lang), _n(f.max_level, lang, machine, 2),
             f.max_day.isoformat() if f.max_day else ""] + list(f.days_at_or_above) for f in report.flood]
    return header, rows
