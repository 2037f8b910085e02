"""The text of a notification: Vietnamese first, English below, with a link to the alert."""

from __future__ import annotations

from dataclasses import dataclass

from rules.messages import SEVERITY_LABELS, bilingual, fmt_number, local_time

EVENT_LABELS = {
    "firing": ("CẢNH BÁO", "ALERT"),
    "renotify": ("NHẮC LẠI — chưa ai tiếp nhận", "REMINDER — not acknowledged"),
    "escalation": ("CHUYỂN CẤP — chưa ai tiếp nhận", "ESCALATION — not acknowledged"),
    "resolved": ("ĐÃ KẾT THÚC", "RESOLVED"),
}


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
                "commune": a["commune"], "station": a["station"], "regulation": a["regulation"],
                "message_vi": a["message_vi"], "message_en": a["message_en"], "url": self.url,
                "text": self.text}


def build_message(alert: dict, event: str, public_url: str) -> Message:
    sev_vi, sev_en = SEVERITY_LABELS[alert["severity"]]
    ev_vi, ev_en = EVENT_LABELS[event]
    url = f"{public_url}/alert/{alert['id']}"
    resolved = event == "resolved"
    unverified_vi = "\n(Ngưỡng chưa được kiểm chứng với văn bản gốc)" if alert["unverified"] else ""
    unverified_en = "\n(Limit not yet verified against the official text)" if alert["unverified"] else ""
    vi = (f"[{ev_vi} · {sev_vi}] {alert['message_vi']}\n"
          f"Quy chuẩn: {bilingual(alert['regulation'], 'vi')}, {bilingual(alert['table'], 'vi')}, "
          f"{bilingual(alert['column'], 'vi')}; thời gian lấy trung bình: {bilingual(alert['averaging'], 'vi')}"
          f"{unverified_vi}\n"
          f"Bắt đầu lúc: {local_time(alert['fired_ms'])} (giờ Việt Nam)"
          + (f"\nKết thúc lúc: {local_time(alert['resolved_ms'])}" if resolved and alert["resolved_ms"] else "")
          + f"\nXem và tiếp nhận: {url}")
    en = (f"[{ev_en} · {sev_en}] {alert['message_en']}\n"
          f"Regulation: {bilingual(alert['regulation'], 'en')}, {bilingual(alert['table'], 'en')}, "
          f"{bilingual(alert['column'], 'en')}; averaging: {bilingual(alert['averaging'], 'en')}{unverified_en}\n"
          f"Since: {local_time(alert['fired_ms'])} (Vietnam time)\nOpen and acknowledge: {url}")
    value = fmt_number(alert["value"], 2)
    subject = f"[{ev_vi}] {alert['station_name_vi']}: {alert['rule']} = {value} / [{ev_en}]"
    return Message(subject, vi + "\n\n———\n\n" + en, url, alert, event)
