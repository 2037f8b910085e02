"""Figures of the report (matplotlib, Agg): time series with limits, VN_AQI calendar, completeness map.

DejaVu Sans, bundled with matplotlib, has the Vietnamese glyphs (ạ, ư, ở ...); fonts without them
would print boxes in the PDF.
"""

from __future__ import annotations

import calendar as cal
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports.model import Report  # noqa: E402
from reports.texts import kind_label, metric_label, metric_unit, t  # noqa: E402
from rules.aqi import BANDS, band  # noqa: E402
from villagewatch.textfmt import number  # noqa: E402

plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 9,
                     "figure.dpi": 100, "savefig.dpi": 110})

A4_PORTRAIT = (8.27, 11.69)
LIMIT_COLOURS = ("#c0392b", "#e67e22", "#8e44ad", "#16a085")


def _axis_numbers(ax, lang: str) -> None:
    """Tick labels with the reader's decimal sign (decimal comma in Vietnamese)."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _pos: number(x, 3, lang)))


def _local_dates(report: Report, starts_ms: np.ndarray) -> list[datetime]:
    tz = report.month.tz
    return [datetime.fromtimestamp(t / 1000, tz).replace(tzinfo=None) for t in starts_ms]


def plotted_metrics(report: Report, station_id: str) -> list[str]:
    st = report.site.stations[station_id]
    skip = set(report.settings.get("plot_skip_metrics", []))
    return [m for m in st.metrics if m not in skip]


def timeseries_figure(report: Report, station_id: str, lang: str) -> Figure:
    """One panel per metric: hourly mean, min–max band, and each limit as a line."""
    st = report.site.stations[station_id]
    metrics = plotted_metrics(report, station_id)
    fig = plt.figure(figsize=A4_PORTRAIT)
    fig.suptitle(f"{st.name(lang)} — {kind_label(st.kind, lang)}\n{t('timeseries', lang)}", fontsize=10)
    prof = report.profile.get(station_id)
    axes = fig.subplots(max(len(metrics), 1), 1, sharex=True, squeeze=False)[:, 0]
    month_start = datetime(report.month.year, report.month.month, 1)
    month_end = datetime(*(report.month.days[-1].timetuple()[:3])).replace(hour=23, minute=59)
    for ax, metric in zip(axes, metrics, strict=False):
        unit = metric_unit(metric)
        ax.set_title(f"{metric_label(metric, lang)}{f' ({unit})' if unit else ''}", loc="left")
        if prof is not None and f"mean_{metric}" in prof.values:
            x = _local_dates(report, prof.starts_ms)
            mean = prof.values[f"mean_{metric}"]
            ax.fill_between(x, prof.values[f"min_{metric}"], prof.values[f"max_{metric}"],
                            color="#9ecae1", alpha=0.5, linewidth=0, step="post")
            ax.plot(x, mean, color="#08519c", linewidth=0.7, drawstyle="steps-post")
        else:
            ax.text(0.5, 0.5, t("no_data", lang), transform=ax.transAxes, ha="center", color="grey")
        for i, row in enumerate(r for r in report.rows_of(station_id) if r.metric == metric and r.limit):
            lim = row.limit
            colour = LIMIT_COLOURS[i % len(LIMIT_COLOURS)]
            label = f"{lim.describe(lang)}{'*' if lim.unverified else ''} — {lim.regulation.split(' / ')[0]} ({lim.averaging_text(lang)}"
            label += f", {lim.hours_text()})" if lim.hours else ")"
            for value in (lim.lo, lim.hi):
                if value is not None:
                    ax.axhline(value, color=colour, linestyle="--", linewidth=0.9, label=label)
                    label = None
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=6, framealpha=0.8)
        ax.grid(alpha=0.3)
        _axis_numbers(ax, lang)
        ax.set_xlim(month_start, month_end)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%d/%m"))
    axes[-1].xaxis.set_major_locator(mdates.DayLocator(interval=3))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def aqi_calendar_figure(report: Report, lang: str) -> Figure:
    """One month calendar per air station: each day coloured by its VN_AQI band, value written in."""
    stations = list(report.aqi)
    fig = plt.figure(figsize=(A4_PORTRAIT[0], 3.2 * max(len(stations), 1) + 1.2))
    fig.suptitle(f"{t('aqi_calendar', lang)} — {report.month.month:02d}/{report.month.year}", fontsize=11)
    weekdays = (["T2", "T3", "T4", "T5", "T6", "T7", "CN"] if lang == "vi"
                else ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    weeks = cal.Calendar(firstweekday=0).monthdayscalendar(report.month.year, report.month.month)
    axes = fig.subplots(max(len(stations), 1), 1, squeeze=False)[:, 0]
    for ax, station_id in zip(axes, stations, strict=False):
        by_day = {d.day.day: d for d in report.aqi[station_id]}
        ax.set_title(report.site.stations[station_id].name(lang), loc="left")
        for row, week in enumerate(weeks):
            for col, day in enumerate(week):
                if day == 0:
                    continue
                d = by_day.get(day)
                value = d.aqi if d else None
                colour = band(value).hex if value is not None else "#dddddd"
                ax.add_patch(plt.Rectangle((col, -row), 0.95, 0.95, color=colour, ec="white"))
                dark = value is not None and band(value).rgb in ((143, 63, 151), (126, 0, 35), (255, 0, 0))
                ax.text(col + 0.06, -row + 0.78, str(day), fontsize=6, color="white" if dark else "black")
                ax.text(col + 0.48, -row + 0.35, "—" if value is None else str(value), fontsize=9,
                        ha="center", weight="bold", color="white" if dark else "black")
        ax.set_xlim(-0.05, 7)
        ax.set_ylim(-len(weeks) + 0.9, 1.2)
        for col, name in enumerate(weekdays):
            ax.text(col + 0.48, 1.02, name, ha="center", fontsize=7)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=b.hex) for b in BANDS]
    labels = [f"{b.lo}–{b.hi} {b.label_vi if lang == 'vi' else b.label_en}" for b in BANDS]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig


def completeness_figure(report: Report, lang: str) -> Figure:
    """Stations × days, red where readings are missing."""
    from reports.summary import completeness_matrix
    ids, matrix = completeness_matrix(report)
    fig = plt.figure(figsize=(A4_PORTRAIT[0], 1.6 + 0.32 * len(ids)))
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap(["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"]).with_extremes(
        under="#eeeeee")  # grey: days not yet due
    image = ax.imshow(np.where(np.isnan(matrix), -1, matrix), aspect="auto", cmap=cmap, vmin=0, vmax=100,
                      interpolation="nearest")
    ax.set_yticks(range(len(ids)), [report.site.stations[s].name(lang)[:38] for s in ids], fontsize=6.5)
    ax.set_xticks(range(len(report.month.days)), [str(d.day) for d in report.month.days], fontsize=6)
    ax.set_xlabel(t("date", lang))
    ax.set_title(t("completeness_map", lang), loc="left")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix[i, j]
            if not np.isnan(v) and v < 99.5:
                ax.text(j, i, number(v, 0, lang), ha="center", va="center", fontsize=5,
                        color="white" if v < 50 else "black")
    fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    fig.tight_layout()
    return fig


def flood_figure(report: Report, lang: str) -> Figure | None:
    if not report.flood:
        return None
    fig = plt.figure(figsize=(A4_PORTRAIT[0], 3.0 * len(report.flood)))
    axes = fig.subplots(len(report.flood), 1, squeeze=False)[:, 0]
    days = [datetime(d.year, d.month, d.day) for d in report.month.days]
    for ax, f in zip(axes, report.flood, strict=True):
        ax.bar(days, f.daily_max, color="#4292c6", width=0.8)
        for i, lim in enumerate(f.levels):
            ax.axhline(lim.hi, color=LIMIT_COLOURS[i % len(LIMIT_COLOURS)], linestyle="--", linewidth=1,
                       label=f"{lim.column_text(lang)}: {number(lim.hi, 2, lang)} m")
        held = t("level_held", lang, minutes=f"{f.hold_s / 60:g}")
        ax.set_title(f"{t('flood', lang)} — {f.station.name(lang)}\n{held}", loc="left")
        finite = f.daily_max[~np.isnan(f.daily_max)]
        if finite.size:
            top = max([float(finite.max())] + [lim.hi for lim in f.levels])
            ax.set_ylim(max(0.0, float(finite.min()) - 0.3), top + 0.2)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d/%m"))
        ax.legend(fontsize=6, loc="upper left")
        ax.grid(alpha=0.3)
        _axis_numbers(ax, lang)
    fig.tight_layout()
    return fig
