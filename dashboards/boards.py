"""The six dashboards of a commune. Each builder returns (panels, stations the board is about)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboards import grafana as g
from dashboards import queries as Q
from dashboards.context import BoardContext, unit_of
from rules import aqi
from villagewatch import contract
from villagewatch.sites import Station
from villagewatch.storage import GatewayStatus as GW
from villagewatch.storage import IngestStats as IS

Board = tuple[list[dict[str, Any]], list[Station]]

# The value an operator looks at first for each kind of station (overview "latest values").
KEY_METRICS = {"water_supply": "chlorine", "river": "do", "pond": "do", "air": "pm25",
               "weather": "rain", "waste": "fill", "flood_gauge": "level"}
# Aggregation per metric when a panel shows many readings per pixel: lows of dissolved oxygen and
# highs of pollution and water level matter; a mean would hide the pre-dawn DO collapse.
AGGREGATE = {"do": "min", "pm25": "max", "pm10": "max", "level": "max", "fill": "max",
             "turbidity": "max", "noise": "max"}


def metric_panels(c: BoardContext, layout: g.Layout, stations: list[Station], metric: str, *,
                  w: int = 8, h: int = 8, title_suffix: str = "", description: str = "",
                  threshold_style: str = "line") -> None:
    """One time-series panel per group of stations that share the same limits for ``metric``."""
    groups: dict[str, list[Station]] = {}
    for s in c.with_metric(metric, stations):
        groups.setdefault(repr(c.limits.bounds(s, metric)), []).append(s)
    for members in groups.values():
        first = members[0]
        label = c.metric_label(metric)
        title = f"{c.name(first)} — {label}" if len(members) == 1 else f"{label}{title_suffix}"
        limits_text = c.limits.describe(first, metric, c.lang)
        desc = "\n".join(x for x in (description, limits_text) if x)
        target = g.target("A", Q.series(metric, Q.stations_regex(s.id for s in members),
                                        AGGREGATE.get(metric, "mean")))
        target["alias"] = "$tag_station"
        layout.add(g.timeseries(title, [target], unit=unit_of(metric),
                                decimals=contract.METRICS[metric].decimals,
                                thresholds_=c.limits.thresholds(first, metric),
                                threshold_style=threshold_style if c.limits.bounds(first, metric) else None,
                                description=desc, overrides=c.station_names(members)), w, h)


# --------------------------------------------------------------------------- overview

STATE_CODES = {0: ("state_ok", g.GREEN), 1: ("state_warning", g.ORANGE), 2: ("state_alarm", g.RED),
               3: ("state_offline", g.GREY)}


def overview(c: BoardContext) -> Board:
    layout = g.Layout()
    stations = list(c.site.stations.values())
    markers = [g.target(f"S{i:02d}", Q.station_marker(s.id, s.lat, s.lon), "table")
               for i, s in enumerate(stations)]
    offline_rules = "|".join(t.data["id"] for t in c.limits.rules.templates
                             if t.data["kind"] in ("stale", "gateway_offline")) or "-"
    not_offline = f'"rule" !~ /^({offline_rules})$/'
    markers += [
        g.target("WARN", Q.station_state(1, f'"severity" =~ /^(info|warning)$/ AND {not_offline}'), "table"),
        g.target("ALARM", Q.station_state(2, f'"severity" = \'critical\' AND {not_offline}'), "table"),
        g.target("OFFLINE", Q.station_state(3, f'"rule" =~ /^({offline_rules})$/'), "table"),
    ]
    mappings = g.value_mappings({code: (c.t(key), color) for code, (key, color) in STATE_CODES.items()})
    # a station without an open alert has no state row: it is shown as OK
    mappings.append({"type": "special", "options": {"match": "null", "result": {
        "text": c.t("state_ok"), "color": g.GREEN, "index": len(mappings)}}})
    geomap = g.panel(
        "geomap", c.t("map"), markers, description=c.t("map_desc"), mappings=mappings,
        thresholds_=g.thresholds(g.GREEN, [(1, g.ORANGE), (2, g.RED), (3, g.GREY)]),
        overrides=c.station_names(stations),
        transformations=[
            {"id": "merge", "options": {}},
            # one row per station: its position, last reading and worst state
            {"id": "groupBy", "options": {"fields": {
                "station": {"operation": "groupby"},
                "lat": {"operation": "aggregate", "aggregations": ["lastNotNull"]},
                "lon": {"operation": "aggregate", "aggregations": ["lastNotNull"]},
                "Time": {"operation": "aggregate", "aggregations": ["max"]},
                "state": {"operation": "aggregate", "aggregations": ["max"]}}}},
            {"id": "organize", "options": {"renameByName": {
                "lat (lastNotNull)": "lat", "lon (lastNotNull)": "lon", "state (max)": "state",
                "Time (max)": c.t("last_seen")}}},
        ],
        options={
            "view": {"id": "coords", "lat": c.site.center[0] if c.site.center else stations[0].lat,
                     "lon": c.site.center[1] if c.site.center else stations[0].lon, "zoom": 14},
            "controls": {"showZoom": True, "mouseWheelZoom": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [{"type": "markers", "name": c.t("map"), "tooltip": True,
                        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                        "config": {"showLegend": True, "style": {
                            "size": {"fixed": 10}, "opacity": 0.9,
                            "color": {"field": "state", "fixed": g.GREEN},
                            "text": {"field": "station", "mode": "field"},
                            "textConfig": {"fontSize": 11, "offsetY": -14}}}}],
            "tooltip": {"mode": "details"},
        })
    layout.add(geomap, 14, 14)
    layout.add(active_alerts_table(c), 10, 14)

    layout.row(c.t("latest"))
    for s in stations:
        metric = KEY_METRICS.get(s.kind)
        if metric not in s.metrics:
            metric = s.metrics[0]
        desc = c.limits.describe(s, metric, c.lang)
        stat = g.panel("stat", f"{c.name(s)} — {c.metric_label(metric)}",
                       [g.target("A", Q.latest(metric, Q.station_eq(s.id)))],
                       unit=unit_of(metric), decimals=contract.METRICS[metric].decimals,
                       thresholds_=c.limits.thresholds(s, metric) or g.thresholds(g.GREEN, []),
                       description=desc, color_mode="thresholds",
                       options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "background", "graphMode": "area", "textMode": "value_and_name",
                                "justifyMode": "auto", "orientation": "auto"})
        layout.add(stat, 6, 4)

    layout.row(c.t("completeness"))
    by_interval: dict[float, list[Station]] = {}
    for s in stations:
        by_interval.setdefault(s.interval_s, []).append(s)
    targets = [g.target(f"I{i}", Q.completeness(Q.stations_regex(x.id for x in group), 86_400 / interval))
               for i, (interval, group) in enumerate(sorted(by_interval.items()))]
    for tg in targets:
        tg["alias"] = "$tag_station"
    gauge = g.panel("bargauge", c.t("completeness"), targets, unit="percent", decimals=0, min_=0, max_=100,
                    description=c.t("completeness_desc"), overrides=c.station_names(stations),
                    thresholds_=g.thresholds(g.RED, [(80, g.ORANGE), (95, g.GREEN)]),
                    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                             "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True})
    gauge["timeFrom"] = "24h"  # expected counts are per 24 h
    layout.add(gauge, 24, max(6, len(stations)))
    return layout.panels, stations


def active_alerts_table(c: BoardContext) -> dict[str, Any]:
    return g.panel("table", c.t("active_alerts"), [g.target("A", Q.active_alerts(c.lang), "table")],
                   overrides=c.station_names(c.site.stations.values()) + [
                       {"matcher": {"id": "byName", "options": "severity"},
                        "properties": [{"id": "displayName", "value": c.t("col_severity")},
                                       {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                                       {"id": "mappings", "value": g.value_mappings({
                                           0: ("info", g.YELLOW), 1: ("warning", g.ORANGE),
                                           2: ("critical", g.RED)})}]},
                       {"matcher": {"id": "byName", "options": "rule"},
                        "properties": [{"id": "displayName", "value": c.t("col_rule")}]},
                       {"matcher": {"id": "byName", "options": "message"},
                        "properties": [{"id": "displayName", "value": c.t("col_message")}]}],
                   options={"showHeader": True, "frameIndex": 0, "sortBy": [{"displayName": "Time", "desc": True}]})


# --------------------------------------------------------------------------- water

def water(c: BoardContext) -> Board:
    layout = g.Layout()
    supply, rivers, ponds = c.stations("water_supply"), c.stations("river"), c.stations("pond")
    if supply:
        layout.row(c.t("supply"))
        for s in supply:
            for metric in s.metrics:
                metric_panels(c, layout, [s], metric, w=6 if len(s.metrics) > 3 else 8)
    if rivers:
        layout.row(c.t("rivers"))
        metrics = list(dict.fromkeys(m for s in rivers for m in s.metrics))
        for metric in metrics:
            metric_panels(c, layout, rivers, metric, w=6, h=7, title_suffix=f" — {c.t('rivers')}")
    if ponds:
        layout.row(c.t("ponds"))
        metric_panels(c, layout, ponds, "do", w=24, h=9, title_suffix=f" — {c.t('ponds')}",
                      description=c.t("do_min_note"), threshold_style="line+area")
        for metric in dict.fromkeys(m for s in ponds for m in s.metrics if m not in ("do", "battery", "rssi")):
            metric_panels(c, layout, ponds, metric, title_suffix=f" — {c.t('ponds')}")
    return layout.panels, supply + rivers + ponds


# --------------------------------------------------------------------------- air and weather

def aqi_thresholds(pollutant: str) -> dict[str, Any]:
    """VN_AQI band colours at the concentrations where each band starts (rules/aqi.py)."""
    bps = aqi.BREAKPOINTS[pollutant]
    return g.thresholds(aqi.BANDS[0].hex, [(float(bps[i]), band.hex) for i, band in enumerate(aqi.BANDS) if i])


def air(c: BoardContext) -> Board:
    layout = g.Layout()
    air_st, weather_st = c.stations("air"), c.stations("weather")
    both = air_st + weather_st
    for metric in ("pm25", "pm10"):
        sts = c.with_metric(metric, air_st)
        if not sts:
            continue
        tg = g.target("A", Q.series(metric, Q.stations_regex(s.id for s in sts), "mean"))
        tg["alias"] = "$tag_station"
        layout.add(g.timeseries(f"{c.metric_label(metric)} — {c.t('aqi_bands')}", [tg], unit=unit_of(metric),
                                thresholds_=aqi_thresholds(metric), threshold_style="area",
                                description=c.t("aqi_bands"), overrides=c.station_names(sts),
                                min_=0), 12, 8)
    for metric in ("pm25", "pm10"):
        # QCVN 05 limits PM as a 24-hour mean, so the comparison panel shows daily means
        for s in c.with_metric(metric, air_st):
            tg = g.target("A", Q.daily_mean(metric, Q.station_eq(s.id)))
            layout.add(g.timeseries(f"{c.name(s)} — {c.metric_label(metric)} (24 h)", [tg], bars=True,
                                    unit=unit_of(metric), thresholds_=c.limits.thresholds(s, metric),
                                    threshold_style="line", description=c.limits.describe(s, metric, c.lang),
                                    interval="1d"), 6, 7)
    layout.newline()
    rain = c.with_metric("rain", both)
    if rain:
        tg = g.target("A", Q.hourly_sum("rain", Q.stations_regex(s.id for s in rain)))
        tg["alias"] = "$tag_station"
        layout.add(g.timeseries(f"{c.metric_label('rain')} — {c.t('rain_hourly')}", [tg], bars=True,
                                unit=unit_of("rain"), overrides=c.station_names(rain)), 8, 8)
    for metric in ("air_temp", "humidity", "wind"):
        metric_panels(c, layout, both, metric)
    metric_panels(c, layout, air_st + weather_st, "noise", w=12, description=c.t("noise_limits"))
    return layout.panels, both


# --------------------------------------------------------------------------- waste

def waste(c: BoardContext) -> Board:
    layout = g.Layout()
    bins = c.with_metric("fill", c.stations("waste"))
    if not bins:
        return layout.panels, bins
    ids = Q.stations_regex(s.id for s in bins)
    limits = c.limits.thresholds(bins[0], "fill")
    fill_now = g.target("A", Q.latest("fill", ids), "table")
    layout.add(g.panel("bargauge", c.t("fill_now"), [fill_now], unit="percent", min_=0, max_=100,
                       decimals=0, thresholds_=limits, description=c.limits.describe(bins[0], "fill", c.lang),
                       overrides=c.station_names(bins),
                       options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^fill$/", "values": True},
                                "orientation": "horizontal", "displayMode": "lcd", "showUnfilled": True}),
               12, 8)
    ttf = g.target("A", Q.time_to_full_hours(ids), "table")
    layout.add(g.panel("table", c.t("time_to_full"), [ttf], unit="h", decimals=1,
                       description=c.t("time_to_full_desc"), overrides=c.station_names(bins)), 12, 8)
    collect_at = min((b.value for b in c.limits.bounds(bins[0], "fill") if b.side == "above"), default=None)
    transformations = [{"id": "sortBy", "options": {"sort": [{"field": "fill", "desc": True}]}}]
    if collect_at is not None:
        # the same level the alert engine warns at; the query returns every bin so the panel
        # can be proven to read data, and Grafana keeps the ones at or above the level
        transformations.insert(0, {"id": "filterByValue", "options": {
            "type": "include", "match": "any",
            "filters": [{"fieldName": "fill", "config": {"id": "greaterOrEqual",
                                                           "options": {"value": collect_at}}}]}})
    collect = g.panel("table", c.t("collect_now"), [g.target("A", Q.latest("fill", ids), "table")],
                      unit="percent", decimals=0, thresholds_=limits, transformations=transformations,
                      description=c.limits.describe(bins[0], "fill", c.lang), overrides=c.station_names(bins))
    layout.add(collect, 12, 8)
    metric_panels(c, layout, bins, "fill", w=12, title_suffix=f" — {c.t('fill_history')}")
    metric_panels(c, layout, bins, "bin_temp", w=12)
    return layout.panels, bins


# --------------------------------------------------------------------------- flood

def flood(c: BoardContext) -> Board:
    layout = g.Layout()
    gauges = c.with_metric("level", c.stations("flood_gauge", "river"))
    for s in gauges:
        layout.add(g.panel("stat", f"{c.name(s)} — {c.metric_label('level')}",
                           [g.target("A", Q.latest("level", Q.station_eq(s.id)))], unit=unit_of("level"),
                           decimals=2, thresholds_=c.limits.thresholds(s, "level"), color_mode="thresholds",
                           description=c.limits.describe(s, "level", c.lang),
                           options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                    "colorMode": "background", "graphMode": "area"}), 6, 8)
        metric_panels(c, layout, [s], "level", w=18, h=8, threshold_style="line+area",
                      description=c.t("flood_levels"))
    return layout.panels, gauges


# --------------------------------------------------------------------------- devices

def devices(c: BoardContext) -> Board:
    layout = g.Layout()
    stations = list(c.site.stations.values())
    seen = g.panel("table", c.t("last_seen"), [g.target("A", Q.last_seen(Q.stations_regex(s.id for s in stations)),
                                                         "table")],
                   overrides=c.station_names(stations) + [
                       {"matcher": {"id": "byName", "options": "Time"},
                        "properties": [{"id": "unit", "value": "dateTimeFromNow"},
                                       {"id": "displayName", "value": c.t("last_seen")}]}],
                   options={"showHeader": True, "frameIndex": 0, "sortBy": [{"displayName": c.t("last_seen"), "desc": False}]})
    layout.add(seen, 8, 12)
    metric_panels(c, layout, stations, "battery", w=8, h=12, title_suffix="")
    metric_panels(c, layout, stations, "rssi", w=8, h=12, title_suffix="")
    for field, key in ((GW.QUEUE_DEPTH, "queue_depth"), ("dropped", "dropped")):
        query = Q.gateway_series(field) if field == GW.QUEUE_DEPTH else Q.gateway_drops()
        tg = g.target("A", query)
        tg["alias"] = "$tag_gateway"
        names = [{"matcher": {"id": "byName", "options": gw.id},
                  "properties": [{"id": "displayName", "value": gw.name_vi}]} for gw in c.site.gateways.values()]
        layout.add(g.timeseries(c.t(key), [tg], unit="none", decimals=0, overrides=names,
                                bars=field == "dropped"), 12, 8)
    for field, key in ((IS.RECEIVED, "ingest_rate"), (IS.REJECTED, "ingest_rejects")):
        targets = [g.target("A", Q.ingest_rate(field))]
        if field == IS.RECEIVED:
            targets.append(g.target("B", Q.ingest_rate(IS.WRITTEN)))
        layout.add(g.timeseries(c.t(key), targets, unit="none", decimals=0), 12, 8)
    return layout.panels, stations


BOARDS: dict[str, Callable[[BoardContext], Board]] = {
    "overview": overview, "water": water, "air": air, "waste": waste, "flood": flood, "devices": devices,
}
