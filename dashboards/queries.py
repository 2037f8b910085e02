"""InfluxQL for the panels. Raw InfluxQL only: one query set for InfluxDB 1.x, 2.x (v1 API), 3.x.

Every query filters on ``$commune`` and, where it lists stations, on ``$station`` too, so the
template variables narrow every panel. Station lists come from the site file, not from the
``kind`` tag, so a reading written without ``kind`` is still drawn.
"""

from __future__ import annotations

from collections.abc import Iterable

from villagewatch import storage

TEL = storage.Telemetry
T = TEL.MEASUREMENT


def q(name: str) -> str:
    """Quote an identifier for InfluxQL."""
    return '"' + name.replace('"', '\\"') + '"'


ST, SEQ = q(TEL.STATION), q(TEL.SEQ)
COMMUNE = f"{q(TEL.COMMUNE)} =~ /^$commune$/"
STATION_VAR = f"{ST} =~ /^$station$/"

# Measurements other parts of the platform write; villagewatch/storage.py names them for both sides.
GATEWAY_STATUS = storage.GatewayStatus.MEASUREMENT
INGEST_STATS = storage.IngestStats.MEASUREMENT
ALERTS = storage.Alerts.MEASUREMENT
A = storage.Alerts


def stations_regex(ids: Iterable[str]) -> str:
    return ST + ' =~ /^(' + "|".join(sorted(ids)) + ')$/'


def station_eq(station_id: str) -> str:
    return f"{ST} = '{station_id}'"


def where(*conditions: str) -> str:
    return " AND ".join((COMMUNE, *conditions))


def series(metric: str, station_filter: str, agg: str = "mean", by_station: bool = True) -> str:
    group = f'GROUP BY time($__interval), {ST} fill(null)' if by_station else \
        "GROUP BY time($__interval) fill(null)"
    return (f"SELECT {agg}({q(metric)}) AS {q(metric)} FROM {q(T)} "
            f"WHERE {where(station_filter, STATION_VAR, '$timeFilter')} {group}")


def latest(metric: str, station_filter: str) -> str:
    return (f"SELECT last({q(metric)}) AS {q(metric)} FROM {q(T)} "
            f"WHERE {where(station_filter, STATION_VAR, '$timeFilter')} GROUP BY {ST}")


def hourly_sum(metric: str, station_filter: str) -> str:
    return (f"SELECT sum({q(metric)}) AS {q(metric)} FROM {q(T)} "
            f"WHERE {where(station_filter, STATION_VAR, '$timeFilter')} GROUP BY time(1h), {ST} fill(0)")


def station_marker(station_id: str, lat: float, lon: float) -> str:
    """Position of one station for the geomap. Coordinates live in the site file, not in the
    database, so they ride along as constants; ``last(seq)`` keeps the time of the last reading."""
    return (f'SELECT last({SEQ}) AS {SEQ}, last({SEQ}) * 0 + {lat} AS "lat", last({SEQ}) * 0 + {lon} AS "lon" '
            f"FROM {q(T)} WHERE {where(station_eq(station_id), STATION_VAR, 'time >= now() - 30d')} "
            f'GROUP BY {ST}')


def completeness(station_filter: str, expected_per_day: float) -> str:
    """Percent of the readings expected in 24 hours that arrived (the panel pins its range to 24 h)."""
    return (f'SELECT count({SEQ}) / {expected_per_day:g} * 100 AS "completeness" FROM {q(T)} '
            f"WHERE {where(station_filter, STATION_VAR, '$timeFilter')} GROUP BY {ST}")


def daily_mean(metric: str, station_filter: str) -> str:
    return (f"SELECT mean({q(metric)}) AS {q(metric)} FROM {q(T)} "
            f"WHERE {where(station_filter, STATION_VAR, '$timeFilter')} GROUP BY time(1d) fill(null)")


def time_to_full_hours(station_filter: str) -> str:
    """(100 − fill now) / fill rate of the last 6 hours, per bin. A bin emptied inside the window
    has a negative rate; non_negative_derivative drops that hour instead of giving a negative time."""
    inner = ('SELECT mean("fill") AS "f", non_negative_derivative(mean("fill"), 1h) AS "r" '
             f"FROM {q(T)} WHERE {where(station_filter, STATION_VAR, 'time >= now() - 6h')} "
             f'GROUP BY time(1h), {ST}')
    return 'SELECT (100 - last("f")) / mean("r") AS "hours" FROM (' + inner + ') GROUP BY ' + ST


def last_seen(station_filter: str) -> str:
    return (f'SELECT last({SEQ}) AS {SEQ} FROM {q(T)} '
            f"WHERE {where(station_filter, STATION_VAR, 'time >= now() - 30d')} GROUP BY {ST}")


def gateway_series(field: str, agg: str = "max") -> str:
    return (f"SELECT {agg}({q(field)}) AS {q(field)} FROM {q(GATEWAY_STATUS)} "
            f"WHERE {where('$timeFilter')} GROUP BY time($__interval), {q(storage.GatewayStatus.GATEWAY)} fill(null)")


def gateway_drops() -> str:
    """``queue.drops`` of the gateway status (stored flattened as ``queue_drops``, storage.status_fields)
    counts readings dropped from the full spool since the spool was created: draw its increase per
    interval."""
    return (f'SELECT non_negative_difference(max({q(storage.GatewayStatus.QUEUE_DROPS)})) AS "dropped" '
            f'FROM {q(GATEWAY_STATUS)} '
            f"WHERE {where('$timeFilter')} GROUP BY time($__interval), {q(storage.GatewayStatus.GATEWAY)} fill(null)")


def ingest_rate(field: str) -> str:
    """Counters of the ingest service, per minute. ``ingest_stats`` has no commune tag: one
    ingest serves every commune."""
    return (f"SELECT non_negative_derivative(max({q(field)}), 1m) AS {q(field)} FROM {q(INGEST_STATS)} "
            f"WHERE $timeFilter GROUP BY time($__interval), {q(storage.IngestStats.INSTANCE)} fill(null)")


def commune_variable() -> str:
    return f'SHOW TAG VALUES FROM {q(T)} WITH KEY = {q(TEL.COMMUNE)}'


def station_variable(ids: Iterable[str]) -> str:
    return f'SHOW TAG VALUES FROM {q(T)} WITH KEY = {ST} WHERE {COMMUNE} AND {stations_regex(ids)}'


# --------------------------------------------------------------------------- alerts
# Storage of the alert engine (alerts/points.py, storage.Alerts): one point per state transition in
# measurement `alerts`, tags commune, station, rule, severity (info|warning|critical), fields state
# (pending|firing|acknowledged|resolved), value, message_vi, message_en, …
ALERT_OPEN = f"{q(A.STATE)} != 'resolved'"
ALERT_HISTORY = "time >= now() - 30d"
_BY_ALERT = f"GROUP BY {q(A.STATION)}, {q(A.RULE)}, {q(A.SEVERITY)}"


def _message(lang: str) -> str:
    return q(A.MESSAGE_VI if lang == "vi" else A.MESSAGE_EN)


def _alert_states() -> str:
    return (f'SELECT last({q(A.STATE)}) AS {q(A.STATE)} FROM {q(ALERTS)} '
            f"WHERE {where(STATION_VAR, ALERT_HISTORY)} {_BY_ALERT}")


def active_alerts(lang: str) -> str:
    inner = (f'SELECT last({q(A.STATE)}) AS {q(A.STATE)}, last({_message(lang)}) AS "message", '
             f'last({q(A.VALUE)}) AS {q(A.VALUE)} '
             f"FROM {q(ALERTS)} WHERE {where(STATION_VAR, ALERT_HISTORY)} {_BY_ALERT}")
    columns = ", ".join(q(c) for c in (A.STATION, A.RULE, A.SEVERITY, A.STATE, A.VALUE, "message"))
    return f'SELECT {columns} FROM ({inner}) WHERE {ALERT_OPEN}'


def station_state(code: int, condition: str) -> str:
    """Stations with an open alert matching ``condition`` (on the tags rule/severity), as the
    constant state ``code``; the geomap keeps each station's largest code."""
    return (f'SELECT count({q(A.STATE)}) * 0 + {code} AS {q(A.STATE)} FROM ({_alert_states()}) '
            f'WHERE {ALERT_OPEN} AND {condition} GROUP BY {q(A.STATION)}')


def alert_annotations(lang: str) -> str:
    return (f'SELECT {_message(lang)} AS "text", {q(A.STATE)}, {q(A.RULE)}, {q(A.SEVERITY)} FROM {q(ALERTS)} '
            f"WHERE {where(STATION_VAR, '$timeFilter')}")
