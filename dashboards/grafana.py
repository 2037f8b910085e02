"""Small builders for Grafana's dashboard JSON model (schemaVersion 39+).

Plain dicts from small functions rather than grafana-foundation-sdk: the SDK has no InfluxDB
query builder (we would wrap raw JSON anyway), and its epoch-pinned builds change shape between
Grafana versions; a few functions we test against the JSON model are easier to keep right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE_UID = "villagewatch-influxdb"
DATASOURCE_TYPE = "influxdb"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
GRID_WIDTH = 24

GREEN, YELLOW, ORANGE, RED, PURPLE, MAROON, GREY = (
    "green", "yellow", "orange", "red", "purple", "#7e0023", "#8e8e8e")


def rgb(r: int, g: int, b: int) -> str:
    return f"#{r:02x}{g:02x}{b:02x}"


def target(ref_id: str, query: str, result_format: str = "time_series") -> dict[str, Any]:
    """A raw InfluxQL query: the one shape that works on InfluxDB 1.x, 2.x (v1 API) and 3.x."""
    return {"refId": ref_id, "datasource": dict(DATASOURCE), "query": query, "rawQuery": True,
            "resultFormat": result_format}


def thresholds(base_color: str, steps: list[tuple[float, str]]) -> dict[str, Any]:
    ordered = sorted(steps, key=lambda s: s[0])
    return {"mode": "absolute",
            "steps": [{"color": base_color, "value": None}] + [{"color": c, "value": v} for v, c in ordered]}


def value_mappings(texts: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """Numeric codes shown as words with colours, e.g. {0: ("Bình thường", "green")}."""
    return [{"type": "value", "options": {str(code): {"text": text, "color": color, "index": i}}}
            for i, (code, (text, color)) in enumerate(sorted(texts.items()))]


@dataclass
class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping into new rows."""

    x: int = 0
    y: int = 0
    row_height: int = 0
    panels: list[dict[str, Any]] = field(default_factory=list)

    def add(self, panel: dict[str, Any], w: int, h: int) -> dict[str, Any]:
        if self.x + w > GRID_WIDTH:
            self.newline()
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        panel["id"] = len(self.panels) + 1
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)
        return panel

    def newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x, self.row_height = 0, 0

    def row(self, title: str) -> None:
        self.newline()
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, GRID_WIDTH, 1)
        self.newline()


def panel(kind: str, title: str, targets: list[dict[str, Any]], *, unit: str = "", decimals: int | None = None,
          thresholds_: dict[str, Any] | None = None, threshold_style: str | None = None,
          description: str = "", options: dict[str, Any] | None = None, custom: dict[str, Any] | None = None,
          mappings: list[dict[str, Any]] | None = None, overrides: list[dict[str, Any]] | None = None,
          transformations: list[dict[str, Any]] | None = None, color_mode: str | None = None,
          min_: float | None = None, max_: float | None = None, interval: str | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit or "none"}
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if thresholds_:
        defaults["thresholds"] = thresholds_
    if mappings:
        defaults["mappings"] = mappings
    if color_mode:
        defaults["color"] = {"mode": color_mode}
    custom = dict(custom or {})
    if threshold_style:
        custom["thresholdsStyle"] = {"mode": threshold_style}
    if custom:
        defaults["custom"] = custom
    if kind == "stat":
        # Grafana's own defaults for what @grafana/schema's stat Options require (dashboards/typecheck.py)
        options = {"textMode": "auto", "justifyMode": "auto", "orientation": "auto", "wideLayout": True,
                   "showPercentChange": False, "percentChangeColorMode": "standard", **(options or {})}
    elif kind == "bargauge":
        options = {"maxVizHeight": 300, "minVizHeight": 16, "minVizWidth": 8, "namePlacement": "auto",
                   "sizing": "auto", "valueMode": "color",
                   "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False, "calcs": []},
                   **(options or {})}
    elif kind == "table":
        options = {"showHeader": True, "frameIndex": 0, **(options or {})}
    body: dict[str, Any] = {
        "type": kind, "title": title, "description": description, "datasource": dict(DATASOURCE),
        "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        body["transformations"] = transformations
    if interval:
        body["interval"] = interval
    return body


def timeseries(title: str, targets: list[dict[str, Any]], *, bars: bool = False, **kw: Any) -> dict[str, Any]:
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 60 if bars else 10,
              "spanNulls": False, "showPoints": "never"}
    custom.update(kw.pop("custom", {}) or {})
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
               "tooltip": {"mode": "multi", "sort": "none"}}
    return panel("timeseries", title, targets, custom=custom, options=options, **kw)


def query_variable(name: str, label: str, query: str, *, multi: bool, include_all: bool,
                   current: str | None = None) -> dict[str, Any]:
    var: dict[str, Any] = {
        "type": "query", "name": name, "label": label, "datasource": dict(DATASOURCE),
        "query": query, "definition": query, "refresh": 1, "multi": multi, "includeAll": include_all,
        "sort": 1, "hide": 0, "options": [], "regex": "",
    }
    if current is not None:
        var["current"] = {"selected": True, "text": current, "value": current}
    elif include_all:
        var["current"] = {"selected": True, "text": "All", "value": "$__all"}
    return var


def custom_variable(name: str, label: str, options: list[tuple[str, str]], *, multi: bool,
                    include_all: bool, all_text: str = "All", current: str | None = None) -> dict[str, Any]:
    """A fixed list shown by name, matched by id: Grafana's custom-variable "text : value" pairs
    (Grafana ≥ 7.3), so a reader picks "Ao nuôi A1 (cá tra)", never "ao-ca-tra-a1", while queries
    still get the id. Commas inside a name are escaped as Grafana's parser expects."""
    for text, value in options:
        if " : " in text or " : " in value or "," in value:
            raise ValueError(f"variable {name}: {text!r} / {value!r} cannot be written as a custom option")
    query = ",".join(f"{text.replace(',', chr(92) + ',')} : {value}" for text, value in options)
    var: dict[str, Any] = {
        "type": "custom", "name": name, "label": label, "query": query, "multi": multi,
        "includeAll": include_all, "hide": 0,
        "options": [{"selected": False, "text": text, "value": value} for text, value in options],
    }
    by_value = dict((v, t) for t, v in options)
    if current is not None:
        var["current"] = {"selected": True, "text": by_value.get(current, current), "value": current}
    elif include_all:
        var["current"] = {"selected": True, "text": all_text, "value": "$__all"}
    return var


def custom_values(query: str) -> list[str]:
    """The values of a custom variable's query, parsed as Grafana does (unescaped commas split
    options; "text : value" gives the value)."""
    parts = re.split(r"(?<!\\),", query)
    return [p.split(" : ", 1)[-1].strip().replace("\\,", ",") for p in parts if p.strip()]


def influx_annotation(name: str, query: str, *, text_column: str, tags_columns: str,
                      color: str = "red") -> dict[str, Any]:
    """An InfluxQL annotation query. ``query``/``*Column`` are what Grafana's InfluxDB datasource
    reads for InfluxQL annotations; ``target`` carries the same for newer annotation editors."""
    return {"name": name, "datasource": dict(DATASOURCE), "enable": True, "iconColor": color,
            "query": query, "textColumn": text_column, "tagsColumn": tags_columns, "titleColumn": "",
            "target": {"refId": "Anno", "query": query, "rawQuery": True, "resultFormat": "table",
                       "textColumn": text_column, "tagsColumn": tags_columns}}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], *, variables: list[dict[str, Any]],
              annotations: list[dict[str, Any]], tags: list[str], time_from: str = "now-24h",
              description: str = "", links: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
               "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
               "type": "dashboard"}
    return {
        "uid": uid, "title": title, "description": description, "tags": tags,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "timezone": "browser", "refresh": "1m", "time": {"from": time_from, "to": "now"},
        "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [builtin, *annotations]},
        "templating": {"list": variables}, "links": links or [], "panels": panels,
    }
