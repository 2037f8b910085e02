"""The `alerts` measurement: one point per lifecycle transition (Grafana annotations, reports).

Shape (docs/protocol.md, "Storage"): tags commune, station, rule, severity; fields state
(pending|firing|acknowledged|resolved), value, limit, metric, message_vi, message_en, regulation,
alert_id, note. ``state`` is a field, not a tag: dashboards select ``last("state")`` per alert, which
InfluxQL only allows on fields. The dashboards' tests write their sample points with this function,
so the producer and the queries cannot drift apart.
"""

from __future__ import annotations

from villagewatch import lineproto, storage


def alert_line(*, commune: str, station: str, rule: str, severity: str, state: str, ts_ms: int,
               value: float | None = None, limit: float | None = None, metric: str = "",
               message_vi: str = "", message_en: str = "", regulation: str = "", alert_id: int = 0,
               note: str | None = None) -> str:
    a = storage.Alerts
    fields: dict[str, object] = {a.STATE: state, a.ALERT_ID: int(alert_id), a.METRIC: metric or "",
                                 a.MESSAGE_VI: message_vi, a.MESSAGE_EN: message_en, a.REGULATION: regulation}
    if value is not None:
        fields[a.VALUE] = float(value)
    if limit is not None:
        fields[a.LIMIT] = float(limit)
    if note:
        fields[a.NOTE] = note
    tags = {a.COMMUNE: commune, a.STATION: station, a.RULE: rule, a.SEVERITY: severity}
    return lineproto.line(a.MEASUREMENT, tags, fields, int(ts_ms))
