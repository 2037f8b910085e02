"""Report settings from reports/report.yaml, validated by the project's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from villagewatch.contract import METRICS
from villagewatch.schema import Key, ListOf, Map, Num, OneOf, validate_file
from villagewatch.sites import STATION_KINDS

DEFAULT_CONFIG = Path(__file__).resolve().parent / "report.yaml"

SCHEMA = Map([
    Key("min_window_coverage", Num(0, 1), doc="share of expected readings for a valid window"),
    Key("episode_gap_intervals", Num(1, 100)),
    Key("episode_merge_minutes", Num(0, 24 * 60)),
    Key("waste_full_pct", Num(0, 100)),
    Key("aqi_kinds", ListOf(OneOf(*STATION_KINDS))),
    Key("day_min_hours", Num(1, 24, integer=True), doc="hours with readings for a day to be judged met"),
    Key("day_min_windows_pct", Num(0, 100), doc="valid windows (% of the day's) for a day to be judged met"),
    Key("month_min_days_pct", Num(0, 100), doc="days met (% of days in force) for the month to be met"),
    Key("plot_skip_metrics", ListOf(OneOf(*METRICS)), required=False, default=list),
], name="report settings")


def load_report_config(path: str | Path = DEFAULT_CONFIG) -> dict[str, Any]:
    return validate_file(path, SCHEMA)
