"""Re-notify and escalation inside the running ``AlertService``, against a real Mosquitto and InfluxDB
(``stack`` fixture), a real webhook receiver (aiohttp on 127.0.0.1) and the real inspector page for
the acknowledgement. Short real intervals (1 s re-notify, 2.5 s escalation); every wait is a
condition with a deadline.

Two pond DO alerts fire together:
- A (pond A3, live readings) stays unacknowledged: reminders every ``renotify_s`` to the first list,
  the escalation after ``escalate_after_s`` to both lists, then reminders to both lists; an inspector
  acknowledges it on the page and everything stops.
- B (pond A1, readings an edge gateway spooled ~8 minutes ago) is acknowledged after its first
  reminder, before its escalation is due: it is never escalated. Its timing counts from when people
  were told, not from the readings' timestamps (else it would be escalated on arrival).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from conftest import wait_for

from alerts.service import AlertService
from alerts.settings import AlertsConfig, hash_password
from app.stack import free_port
from rules.rulepack import load_rule_packs
from villagewatch import contract
from villagewatch.config import load_settings
from villagewatch.sites import load_site

REPO = Path(__file__).resolve().parent.parent
POND_A, POND_B = "ao-ca-tra-a3", "ao-ca-tra-a1"
# long enough that the test's own steps (log in, acknowledge B between its first reminder and its
# escalation) fit on a loaded 2-core machine: with 1 s / 2.5 s the window for B's acknowledgement was 1.5 s
RENOTIFY_S, ESCALATE_S = 3.0, 7.5
TICK_S = 0.25  # the service's tick: reminders are due on the first tick after their interval
SLACK_S = TICK_S + 1.5  # tick granularity + dispatch + HTTP on a busy 2-core machine (< RENOTIFY_S)


def two_ponds():
    site = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
    stations = {sid: site.stations[sid] for sid in (POND_A, POND_B)}
    gw = site.stations[POND_A].gateway
    return {site.commune: replace(site, stations=stations, gateways={gw: site.gateways[gw]})}



@pytest.mark.integration
def test_renotify_escalation_and_acknowledgement_in_the_running_service(stack, tmp_path):
    sites = two_ponds()
    commune = next(iter(sites))
    received: list[dict] = []  # webhook bodies with the list they reached and the arrival time

    async def receiver(request: web.Request) -> web.Response:
        body = await request.json()
        if body["rule"] == "pond-do-low":
            received.append({**body, "_list": request.match_info["list"], "_rx_ms": time.time() * 1000})
        return web.json_response({"ok": True})

    def got(alert_id: int, lst: str | None = None) -> list[dict]:
        return [m for m in received if m["id"] == alert_id and (lst is None or m["_list"] == lst)]

    def events(alert_id: int, lst: str) -> list[str]:
        return [m["event"] for m in got(alert_id, lst)]

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-pond-nodes")
    pub.connect("127.0.0.1", int(stack.mqtt_url.rsplit(":", 1)[1]))
    pub.loop_start()

    def publish(station: str, ts_ms: int, do: float, seq: int) -> None:
        r = contract.Reading(commune, station, ts_ms, seq, {"do": do, "ph": 7.4, "temp": 29.0, "nh4": 0.4,
                                                             "battery": 3.9, "rssi": -70}, "gw-ao-nuoi")
        pub.publish(r.topic, r.to_payload(), qos=1).wait_for_publish(30)

    async def acknowledge(base: str, alert_id: int, note: str) -> int:
        """Log in and acknowledge on the inspector page, as an inspector would; returns the time."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{base}/login") as resp:  # the login form carries its CSRF token
                login_token = re.search(r'name="csrf" value="([^"]+)"', await resp.text()).group(1)
            async with s.post(f"{base}/login", data={"username": "thanh", "password": "mat-khau-thanh",
                                                     "next": f"/alert/{alert_id}", "csrf": login_token}) as resp:
                page = await resp.text()
            token = re.search(rf'action="/alert/{alert_id}/ack"[^>]*><input type="hidden" name="csrf" value="([^"]+)"',
                              page).group(1)
            ack_ms = int(time.time() * 1000)
            async with s.post(f"{base}/alert/{alert_id}/ack", data={"csrf": token, "note": note}) as resp:
                assert resp.status == 200 and "Đã tiếp nhận" in await resp.text()
        return ack_ms

    async def scenario() -> None:
        app = web.Application()
        app.add_routes([web.post("/hook/{list}", receiver)])
        runner = web.AppRunner(app)
        await runner.setup()
        hook_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", hook_port).start()
        hook = f"http://127.0.0.1:{hook_port}/hook"
        page_port = free_port()
        config = AlertsConfig(
            public_url=f"http://127.0.0.1:{page_port}", http_port=page_port, secret=b"s" * 32,
            renotify_s=RENOTIFY_S, escalate_after_s=ESCALATE_S, retries=2, retry_backoff_s=0.2,
            channels={"truc-ban": {"type": "webhook", "url": f"{hook}/first", "timeout_s": 5},
                      "pho-chu-tich": {"type": "webhook", "url": f"{hook}/second", "timeout_s": 5}},
            routes=[{"communes": [commune], "min_severity": "warning", "notify": ["truc-ban"],
                     "escalate_to": ["pho-chu-tich"]}],
            users={"thanh": {"username": "thanh", "name": "Nguyễn Văn Thành",
                             "password_hash": hash_password("mat-khau-thanh"), "communes": ["*"]}})
        svc = AlertService(load_settings(env={**stack.env(), "VW_DATA_DIR": str(tmp_path)}), config, sites, load_rule_packs(),
                           tmp_path / "alerts.sqlite", client_id="alerts-escalation-test")
        await svc.start()
        try:
            await asyncio.wait_for(svc.connected.wait(), 60)
            now = int(time.time() * 1000)
            # A: DO 1.5 held for the rule's 120 s, the last reading just now
            publish(POND_A, now - 125_000, 1.5, 1)
            publish(POND_A, now - 1_000, 1.5, 2)
            # B: the same, but spooled by the gateway: stamped ~8 minutes ago, then a live reading
            publish(POND_B, now - 600_000, 1.5, 1)
            publish(POND_B, now - 470_000, 1.5, 2)
            publish(POND_B, now - 500, 1.5, 3)
            await wait_for(lambda: len(svc.store.active()) == 2, 10, "both alerts firing")
            by_station = {a["station"]: a for a in svc.store.active()}
            a_id, b_id = by_station[POND_A]["id"], by_station[POND_B]["id"]
            assert by_station[POND_B]["fired_ms"] == now - 470_000  # the data's time is kept for the record

            # B: its first reminder comes RENOTIFY_S after people were told — not at once
            await wait_for(lambda: events(b_id, "first") == ["firing", "renotify"], 10, "B's first reminder")
            fired_b, reminder_b = got(b_id, "first")
            assert RENOTIFY_S * 1000 - 100 <= reminder_b["_rx_ms"] - fired_b["_rx_ms"] <= (RENOTIFY_S + SLACK_S) * 1000
            assert "NHẮC LẠI" in reminder_b["text"] and "REMINDER" in reminder_b["text"]
            assert got(b_id, "second") == []
            ack_b = await acknowledge(config.public_url, b_id, "đã bật máy sục khí ao A1")
            assert ack_b - fired_b["_rx_ms"] < ESCALATE_S * 1000  # acknowledged before its escalation

            # A: reminders to the first list, the escalation to both lists, then reminders to both
            await wait_for(lambda: events(a_id, "second") == ["escalation", "renotify"], 15,
                           "A escalated, then a reminder to the escalation list")
            ack_a = await acknowledge(config.public_url, a_id, "cán bộ đã đến ao A3")
            first = got(a_id, "first")
            kinds = [m["event"] for m in first]
            assert kinds[0] == "firing" and kinds[-2:] == ["escalation", "renotify"]
            assert set(kinds[1:-2]) == {"renotify"} and 1 <= len(kinds[1:-2]) <= 2, kinds
            fired_a = first[0]["_rx_ms"]
            escalation = next(m for m in got(a_id, "second") if m["event"] == "escalation")
            assert ESCALATE_S * 1000 - 100 <= escalation["_rx_ms"] - fired_a <= (ESCALATE_S + SLACK_S) * 1000
            assert "CHUYỂN CẤP" in escalation["text"] and "ESCALATION" in escalation["text"]
            # a reminder comes RENOTIFY_S after the previous message to the list (the escalation
            # counts as one); the escalation keeps its own clock
            gaps = [b["_rx_ms"] - a["_rx_ms"] for a, b in zip(first, first[1:], strict=False) if b["event"] == "renotify"]
            assert all(RENOTIFY_S * 1000 - 150 <= g <= (RENOTIFY_S + SLACK_S) * 1000 for g in gaps), gaps

            # after both acknowledgements: quiet for longer than an escalation period, ticks running
            until = max(ack_a, ack_b) + int(ESCALATE_S * 1000) + 500
            await wait_for(lambda: svc.last_tick_ms >= until, 10, "ticks after the acknowledgements")
            await wait_for(lambda: not svc.dispatcher.inflight and not svc.store.pending_notifications(until), 5,
                           "outbox drained")
            # ack_* is taken before the POST: a message already on its way may arrive a little after it; a
            # reminder the acknowledgement failed to stop would come RENOTIFY_S later (and again)
            late = [m for m in received if m["_rx_ms"] > (ack_a if m["id"] == a_id else ack_b) + SLACK_S * 1000]
            assert late == [], late
            assert events(b_id, "first") == ["firing", "renotify"] and got(b_id, "second") == []
            for alert_id, note in ((a_id, "cán bộ đã đến ao A3"), (b_id, "đã bật máy sục khí ao A1")):
                alert = svc.store.get(alert_id)
                assert alert["state"] == "acknowledged" and alert["acked_by"] == "Nguyễn Văn Thành"
                assert alert["ack_note"] == note
                assert [e["state"] for e in svc.store.events(alert_id)] == ["firing", "acknowledged"]
            assert svc.store.get(b_id)["escalated_ms"] is None
        finally:
            await svc.stop()
            await runner.cleanup()

    try:
        asyncio.run(scenario())
    finally:
        pub.loop_stop()
