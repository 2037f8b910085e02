"""Feedback queue for operators and inspectors: list (new / in progress / resolved), one item with
its photo, assign, reply (shown to the resident on the tracking page), link to an alert or a
station. Scoped: an account only ever sees feedback of its communes (others answer 404).

Notifications: a new feedback and every change are pushed as a ``feedback`` SSE event to signed-in
pages of that commune, and a new one is also published on MQTT ``vw/v1/<commune>/_feedback/<code>``
(QoS 1, JSON) — the same broker the alert notifications start from, so the alerts service (or any
subscriber) can route it to e-mail/Telegram with its channels. The portal does not import the
alerts service's notifiers: they are bound to the alerts configuration and its outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from portal.feedback import CATEGORIES, MAX_REPLY_CHARS, STATUSES, STATUSES_EN
from villagewatch import contract
from villagewatch.signin import Account
from villagewatch.textfmt import number


def _portal(request: web.Request) -> Any:
    from portal.app import APP_KEY
    return request.app[APP_KEY]


def _item_for(request: web.Request, account: Account) -> dict:
    item = _portal(request).feedback.get(request.match_info["code"])
    if item is None or not account.sees(item["commune"]):
        raise web.HTTPNotFound(text="không tìm thấy phản ánh / no such feedback")
    return item


def _local(ms: int | None, tz: str = "Asia/Ho_Chi_Minh") -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


async def queue_page(request: web.Request) -> web.Response:
    p = _portal(request)
    account = p.signin.require(request).account
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        status = None
    items = p.feedback.queue(account.commune_filter(), status)
    counts = {s: len(p.feedback.queue(account.commune_filter(), s)) for s in STATUSES}
    return aiohttp_jinja2.render_template("queue.html", request, {
        "items": items, "status": status, "statuses": STATUSES, "statuses_en": STATUSES_EN, "counts": counts,
        "categories": CATEGORIES, "local": _local, "sites": p.sites})


_FIELD_WORDS = {"status": "Trạng thái", "assignee": "Giao cho", "station": "Trạm liên quan",
                "alert_id": "Cảnh báo liên quan", "reply": "Trả lời"}


def _event_words(e: dict, site: Any = None, staff: list[Account] | None = None) -> dict:
    """"status: in_progress" as a person reads it: "Trạng thái: Đang xử lý"; ids (station, account)
    become the names a person knows."""
    field_name, _, value = e["what"].partition(": ")
    if field_name == "status":
        value = STATUSES.get(value, value)
    elif field_name == "station" and site is not None and value in site.stations:
        value = site.stations[value].name_vi
    elif field_name == "assignee":
        value = next((a.display for a in staff or [] if a.username == value), value)
    return {**e, "what": f"{_FIELD_WORDS.get(field_name, field_name)}: {value}"}


def _staff_names(p: Any, commune: str) -> list[Account]:
    return [a for a in p.signin.store.accounts() if a.sees(commune)]


async def item_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    p = _portal(request)
    account = p.signin.require(request).account
    item = _item_for(request, account)
    site = p.sites.get(item["commune"])
    staff = _staff_names(p, item["commune"])
    station = site.stations.get(item["station"]) if site and item["station"] else None
    return aiohttp_jinja2.render_template("queue_item.html", request, {
        "item": item, "events": [_event_words(e, site, staff) for e in p.feedback.events(item["code"])],
        "station_name": station.name_vi if station else item["station"],
        "statuses": STATUSES, "statuses_en": STATUSES_EN,
        "category": CATEGORIES.get(item["category"], item["category"]), "local": _local,
        "stations": list(site.stations.values()) if site else [], "staff": staff,
        "error": error, "coords": (f"{number(item['lat'], 5)}; {number(item['lon'], 5)}"
                                   if item["lat"] is not None and item["lon"] is not None else "")}, status=status)


async def item_update(request: web.Request) -> web.Response:
    p = _portal(request)
    account = p.signin.require(request).account
    item = _item_for(request, account)
    form = await p.signin.check_form(request)
    changes: dict[str, Any] = {}
    status = str(form.get("status", item["status"]))
    if status not in STATUSES:
        return await item_page(request, "Trạng thái không hợp lệ / unknown status", 400)
    changes["status"] = status
    assignee = str(form.get("assignee", "")).strip() or None
    if assignee is not None and assignee not in {a.username for a in _staff_names(p, item["commune"])}:
        return await item_page(request, "Người được giao không thuộc xã này / assignee cannot see this commune", 400)
    changes["assignee"] = assignee
    station = str(form.get("station", "")).strip() or None
    site = p.sites.get(item["commune"])
    if station is not None and (site is None or station not in site.stations):
        return await item_page(request, "Trạm không thuộc xã này / station not in this commune", 400)
    changes["station"] = station
    raw_alert = str(form.get("alert_id", "")).strip().lstrip("#")
    if raw_alert and not (raw_alert.isdigit() and 0 < int(raw_alert) < 2**53):
        return await item_page(request, "Mã cảnh báo phải là số / alert id must be a number", 400)
    changes["alert_id"] = int(raw_alert) if raw_alert else None
    reply = str(form.get("reply", "")).strip()
    if len(reply) > MAX_REPLY_CHARS:
        return await item_page(request, f"Trả lời dài quá {MAX_REPLY_CHARS} ký tự / reply too long", 400)
    changes["reply"] = reply or item["reply"]  # an empty box keeps the last reply (clearing it is not an action)
    updated = p.feedback.update(item["code"], account.display, changes)
    p.fan_out_staff(updated["commune"], ("feedback", _event_body(updated)))
    raise web.HTTPSeeOther(f"/xu-ly/{updated['code']}")


def _event_body(item: dict) -> dict:
    return {"commune": item["commune"], "code": item["code"], "status": item["status"],
            "category": item["category"], "assignee": item["assignee"], "has_reply": bool(item["reply"])}


async def item_photo(request: web.Request) -> web.Response:
    p = _portal(request)
    item = _item_for(request, p.signin.require(request).account)
    data = p.feedback.photo(item["code"]) if item["has_photo"] else None
    if not data:
        raise web.HTTPNotFound(text="không có ảnh / no photo")
    # re-encoded JPEG by us; nosniff so it is never read as anything else
    return web.Response(body=data, content_type="image/jpeg",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})


def notify_new(p: Any, code: str) -> None:
    """A new feedback: SSE to staff pages of the commune and an MQTT event for notifiers."""
    item = p.feedback.get(code)
    if item is None:
        return
    p.fan_out_staff(item["commune"], ("feedback", _event_body(item)))
    if p.mqtt is not None:
        body = {**_event_body(item), "text": item["text"][:280], "created_ms": item["created_ms"],
                "url": f"{p.signin.public_url}/xu-ly/{code}"}
        p.mqtt.publish(contract.feedback_topic(item["commune"], code), contract.encode_json(body), qos=1)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/xu-ly", queue_page)
    app.router.add_get("/xu-ly/{code}", item_page)
    app.router.add_post("/xu-ly/{code}", item_update)
    app.router.add_get("/xu-ly/{code}/anh", item_photo)
