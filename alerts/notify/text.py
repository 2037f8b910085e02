"""The text of a notification: Vietnamese first, English below, with a link to the alert.

The subject names the rule as a reader knows it (``rules.messages.rule_title``, stored with the
alert), never its id, and every value carries its unit (villagewatch.textfmt)."""

from __future__ import annotations

from dataclasses import dataclass

from rules.messages import SEVERITY_LABELS, bilingual, local_time, metric_label
from villagewatch import contract, textfmt

EVENT_LABELS = {
    "firing": ("CẢNH BÁO", "ALERT"),
    "renotify": ("NHẮC LẠI — chưa ai tiếp nhận", "REMINDER — not acknowledged"),
    "escalation": ("CHUYỂN CẤP — chưa ai tiếp nhận", "ESCALATION — not acknowledged"),
    "resolved": ("ĐÃ KẾT THÚC", "RESOLVED"),
    # an alert recorded from late data (docs/alerts.md "Late data"): told once, with its start and end
    "historical": ("LỊCH SỬ — dữ liệu đến muộn", "HISTORICAL — late data"),
    "retracted": ("ĐÃ RÚT LẠI — dữ liệu đến muộn cho thấy cảnh báo không xảy ra",
                  "WITHDRAWN — late data shows the alert did not happen"),
}


def value_text(alert: dict, value: float | None, lang: str = "vi") -> str:
    """A value of the alert's metric with its unit and the metric's decimals ("1,8 mg/L")."""
    m = contract.METRICS.get(alert.get("metric") or "")
    return textfmt.quantity(value, m.unit if m else None, m.decimals if m else 2, lang)


def title(alert: dict, lang: str = "vi") -> str:
    """The rule's reader name; alerts recorded before titles were stored fall back to the metric."""
    stored = alert.get(f"title_{lang}")
    if stored:
        return stored
    if alert.get("metric") in contract.METRICS:
        return metric_label(alert["metric"], lang)
    return bilingual(alert.get("column") or alert.get("regulation") or "", lang)


@dataclass
class Message:
    subject: str
    text: str
    url: str
    alert: dict
    event: str

    def payload(self) -> dict:
        """JSON body for webhooks: the alert fields of the MQTT message plus the event and link."""
        a = self.alert
        return {"event": self.event, "id": a["id"], "rule": a["rule"], "metric": a["metric"],
                "value": a["value"], "limit": a["limit"], "severity": a["severity"], "state": a["state"],
                "ts": a["resolved_ms"] if self.event == "resolved" else a["fired_ms"],
                "started_ms": a["started_ms"], "ended_ms": a["resolved_ms"], "late": bool(a.get("late")),
                "commune": a["commune"], "station": a["station"], "regulation": a["regulation"],
                "message_vi": a["message_vi"], "message_en": a["message_en"], "url": self.url,
                "text": self.text}


def build_message(alert: dict, event: str, public_url: str) -> Message:
    sev_vi, sev_en = SEVERITY_LABELS[alert["severity"]]
    ev_vi, ev_en = EVENT_LABELS[event]
    url = f"{public_url}/alert/{alert['id']}"
    ended = event in ("resolved", "historical") and alert["resolved_ms"]
    start = alert["started_ms"] or alert["fired_ms"]
    unverified_vi = "\n(Ngưỡng chưa được kiểm chứng với văn bản gốc)" if alert["unverified"] else ""
    unverified_en = "\n(Limit not yet verified against the official text)" if alert["unverified"] else ""
    late_vi = ("\nCảnh báo lịch sử: dữ liệu đến muộn (thiết bị gửi lại sau khi mất kết nối); "
               "chỉ thông báo một lần." if alert.get("late") else "")
    late_en = ("\nHistorical alert: the data arrived late (sent again after an outage); told once."
               if alert.get("late") else "")
    vi = (f"[{ev_vi} · {sev_vi}] {alert['message_vi']}\n"
          f"Quy chuẩn: {bilingual(alert['regulation'], 'vi')}, {bilingual(alert['table'], 'vi')}, "
          f"{bilingual(alert['column'], 'vi')}; thời gian lấy trung bình: {bilingual(alert['averaging'], 'vi')}"
          f"{unverified_vi}{late_vi}\n"
          f"Bắt đầu lúc: {local_time(start)} (giờ Việt Nam)"
          + (f"\nKết thúc lúc: {local_time(alert['resolved_ms'])}" if ended else "")
          + f"\nXem và tiếp nhận: {url}")
    en = (f"[{ev_en} · {sev_en}] {alert['message_en']}\n"
          f"Regulation: {bilingual(alert['regulation'], 'en')}, {bilingual(alert['table'], 'en')}, "
          f"{bilingual(alert['column'], 'en')}; averaging: {bilingual(alert['averaging'], 'en')}{unverified_en}{late_en}\n"
          f"Since: {local_time(start)} (Vietnam time)"
          + (f"\nEnded: {local_time(alert['resolved_ms'])}" if ended else "")
          + f"\nOpen and acknowledge: {url}")
    shown_vi = value_text(alert, alert["value"], "vi")
    if alert["limit"] is not None:
        shown_vi += f" / {value_text(alert, alert['limit'], 'vi')}"
    subject = f"[{ev_vi}] {alert['station_name_vi']}: {title(alert, 'vi')} = {shown_vi} / [{ev_en}]"
    return Message(subject, vi + "\n\n———\n\n" + en, url, alert, event)
