"""Run every query of generated dashboards on a real InfluxDB, substituted as Grafana would.

Grafana cannot run on these machines, so this is the proof that a panel shows data: each panel
target, each template-variable query and each annotation query must run without error and return
at least one row. A failure names the dashboard, the panel and the query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from dashboards.interpolate import TimeRange, interpolate, unresolved_variables
from villagewatch.influx import InfluxTarget, InfluxUnreachable, query_sync

MAX_DATA_POINTS = 800  # roughly a panel's width in pixels, as Grafana sends it


@dataclass
class Failure:
    dashboard: str
    panel: str
    ref: str
    query: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dashboard} › {self.panel} [{self.ref}]: {self.reason}\n    {self.query}"


@dataclass
class Result:
    queries: int = 0
    rows: int = 0
    failures: list[Failure] | None = None


class Influx:
    """The platform's InfluxDB client (villagewatch/influx.py), read side, series as InfluxDB's dicts."""

    def __init__(self, url: str, db: str, user: str | None = None, password: str | None = None,
                 token: str | None = None, target: InfluxTarget | None = None):
        self.target = target or InfluxTarget(url.rstrip("/"), db, user, password, token, timeout_s=60)

    @classmethod
    def from_settings(cls, settings: Any, url: str | None = None, db: str | None = None) -> Influx:
        target = InfluxTarget.from_settings(settings, timeout_s=60)
        return cls("", "", target=replace(target, url=(url or target.url).rstrip("/"), db=db or target.db))

    def query(self, q: str) -> list[dict[str, Any]]:
        """Series of the first statement; raises RuntimeError (InfluxError) with InfluxDB's message."""
        try:
            found = query_sync(self.target, q)
        except InfluxUnreachable as exc:
            raise ConnectionError(str(exc)) from exc  # the whole check stops: nothing answers
        return [{"tags": s.tags, "columns": s.columns, "values": s.values} for s in found]


def _rows(series: list[dict[str, Any]]) -> int:
    return sum(len(s.get("values") or []) for s in series)


def _relative(expr: str) -> str:
    return expr.removeprefix("now-")


def check_dashboard(dash: dict[str, Any], influx: Influx) -> Result:
    title = dash["title"]
    failures: list[Failure] = []
    result = Result(failures=failures)
    dash_range = TimeRange(_relative(dash["time"]["from"]))

    def run(panel: str, ref: str, raw: str, values: dict[str, list[str]], multi: dict[str, bool],
            time_range: TimeRange, min_interval: str | None = None) -> list[dict[str, Any]]:
        q = interpolate(raw, values, multi, time_range, MAX_DATA_POINTS, min_interval)
        result.queries += 1
        left = unresolved_variables(q)
        if left:
            failures.append(Failure(title, panel, ref, q, f"variables not substituted: {left}"))
            return []
        try:
            series = influx.query(q)
        except RuntimeError as exc:
            failures.append(Failure(title, panel, ref, q, f"query error: {exc}"))
            return []
        n = _rows(series)
        result.rows += n
        if n == 0:
            failures.append(Failure(title, panel, ref, q, "returned no data"))
        return series

    # template variables, in order, each seeing the ones before it (as Grafana refreshes them)
    values: dict[str, list[str]] = {}
    multi: dict[str, bool] = {}
    for var in dash["templating"]["list"]:
        series = run(f"variable ${var['name']}", var["name"], var["query"], values, multi, dash_range)
        options = [str(row[-1]) for s in series for row in s.get("values") or []]
        current = (var.get("current") or {}).get("value")
        if current and current != "$__all":
            values[var["name"]] = [current] if current in options else options[:1]
            multi[var["name"]] = bool(var.get("multi") or var.get("includeAll"))
        else:
            values[var["name"]] = options  # "All" selects every option
            multi[var["name"]] = True

    for ann in dash["annotations"]["list"]:
        if ann.get("builtIn"):
            continue
        run(f"annotation {ann['name']}", "Anno", ann["query"], values, multi, dash_range)

    for panel in _panels(dash["panels"]):
        if panel["type"] == "row":
            continue
        time_range = TimeRange(panel["timeFrom"]) if panel.get("timeFrom") else dash_range
        for tg in panel.get("targets", []):
            run(panel["title"], tg["refId"], tg["query"], values, multi, time_range, panel.get("interval"))
    return result


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for p in panels:
        yield p
        yield from p.get("panels", [])  # panels inside a collapsed row


def check_all(dashboards: Iterable[dict[str, Any]], influx: Influx) -> Result:
    total = Result(failures=[])
    for dash in dashboards:
        r = check_dashboard(dash, influx)
        total.queries += r.queries
        total.rows += r.rows
        total.failures.extend(r.failures or [])
    return total
