"""The `alerts` measurement: one point per lifecycle transition (Grafana annotations, reports).

Shape (docs/protocol.md, "Storage"): tags commune, station, rule, severity; fields state
(pending|firing|acknowledged|resolved), value, limit, metric, message_vi, message_en, regulation,
alert_id, note. ``state`` is a field, not a tag: dashboards select ``last("state")`` per alert, which
InfluxQL only allows on fields. The dashboards' tests write their sample points with this function,
so the producer and the queries cannot drift apart.
"""

from __future__ import annotations

from villagewatch import contract, lineproto


def alert_line(*, commune: str, station: str, rule: str, severity: str, state: str, ts_ms: int,
               value: float | None = None, limit: float | None = None, metric: str = "",
               message_vi: str = "", message_en: str = "", regulation: str = "", alert_id: int = 0,
               note: str | None = None) -> str:
    fields: dict[str, object] = {"state": state, "alert_id": int(alert_id), "metric": metric or "",
                                 "message_vi": message_vi, "message_en": message_en, "regulation": regulation}
    if value is not None:
        fields["value"] = float(value)
    if limit is not None:
        fields["limit"] = float(limit)
    if note:
        fields["note"] = note
    tags = {"commune": commune, "station": station, "rule": rule, "severity": severity}
    return lineproto.line(contract.MEASUREMENT_ALERTS, tags, fields, int(ts_ms))
