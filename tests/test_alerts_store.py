"""Lifecycle store: one open alert per condition, re-notify while unacknowledged, escalation once,
state and outbox survive reopening the SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.settings import AlertsConfig, hash_password, verify_password
from alerts.store import AlertStore, StoreError
from rules.engine import Engine
from rules.rulepack import load_rule_packs
from villagewatch.contract import Reading
from villagewatch.sites import load_site

SITE = load_site(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
T0 = 1_714_521_600_000


def firing_transition():
    e = Engine(load_rule_packs(), {SITE.commune: SITE}, start_ms=T0)
    out = [t for i, v in enumerate([5.0, 1.5, 1.5, 1.5])
           for t in e.feed(Reading(SITE.commune, "ao-ca-tra-a1", T0 + i * 60_000, i, {"do": v}))]
    return next(t for t in out if t.state == "firing")


def test_lifecycle_renotify_escalation_and_restart(tmp_path):
    config = AlertsConfig(routes=[{"communes": ["*"], "min_severity": "warning", "notify": ["mail:a@x.vn"],
                                   "escalate_to": ["mail:boss@x.vn"]}])
    tr = firing_transition()
    store = AlertStore(tmp_path / "a.sqlite")
    alert = store.apply(tr, config.targets(tr.commune, tr.rule.severity))
    assert alert["state"] == "firing" and store.apply(tr, [("mail", "a@x.vn")]) is None  # no duplicate
    fired = alert["fired_ms"]
    assert store.due(fired + 10_000, renotify_s=60, escalate_after_s=300) == []
    assert [k for _, k in store.due(fired + 61_000, 60, 300)] == ["renotify"]
    assert store.due(fired + 62_000, 60, 300) == []
    assert [k for _, k in store.due(fired + 301_000, 60, 300)] == ["escalation"]
    assert config.targets(tr.commune, "critical", escalation=True) == [("mail", "boss@x.vn")]
    assert config.targets(tr.commune, "info") == []
    store.close()

    store = AlertStore(tmp_path / "a.sqlite")  # restart
    assert store.open_keys() == [tr.key]
    assert [n["event"] for n in store.notifications()] == ["firing"]
    store.acknowledge(alert["id"], "Thành", "đang xử lý", fired + 400_000)
    assert store.due(fired + 10_000_000, 60, 300) == []  # acknowledged: no more reminders
    with pytest.raises(StoreError):
        store.acknowledge(alert["id"], "Thành", "", fired + 400_001)
    done = store.resolve(alert["id"], "Thành", "đã sục khí", fired + 500_000)
    assert done["state"] == "resolved" and store.open_keys() == []
    assert [e["state"] for e in store.events(alert["id"])] == ["firing", "acknowledged", "resolved"]


def test_password_hash_roundtrip():
    h = hash_password("mat-khau-dai")
    assert h.startswith("scrypt$") and verify_password("mat-khau-dai", h) and not verify_password("khac", h)


def test_reminder_queued_before_an_acknowledgement_is_not_sent(tmp_path):
    """A reminder waiting in the outbox (e.g. for a retry) when the alert is acknowledged is dropped;
    the firing message itself still goes out. Real webhook receiver (aiohttp on 127.0.0.1)."""
    import asyncio

    from aiohttp import web

    from alerts.notify import Dispatcher
    from app.stack import free_port

    async def scenario() -> tuple[list[str], list[dict]]:
        seen: list[str] = []

        async def hook(request: web.Request) -> web.Response:
            seen.append((await request.json())["event"])
            return web.json_response({"ok": True})

        app = web.Application()
        app.add_routes([web.post("/hook", hook)])
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        config = AlertsConfig(channels={"hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}},
                              routes=[{"communes": ["*"], "min_severity": "warning", "notify": ["hook"],
                                       "escalate_to": []}])
        store = AlertStore(tmp_path / "a.sqlite")
        tr = firing_transition()
        alert = store.apply(tr, config.targets(tr.commune, tr.rule.severity), now_ms=T0)
        store.enqueue(alert["id"], "renotify", [("hook", "")], T0 + 1)
        store.enqueue(alert["id"], "escalation", [("hook", "")], T0 + 2)
        store.acknowledge(alert["id"], "Thành", "", T0 + 3)
        dispatcher = Dispatcher(store, config, now_ms=lambda: T0 + 10)
        await asyncio.gather(*dispatcher.drain())
        rows = store.notifications(alert["id"])
        store.close()
        await runner.cleanup()
        return seen, rows

    seen, rows = asyncio.run(scenario())
    assert seen == ["firing"]
    assert [(r["event"], r["status"]) for r in rows] == [("firing", "sent"), ("renotify", "cancelled"),
                                                         ("escalation", "cancelled")]


def test_notification_clock_is_the_service_clock_not_the_data_time(tmp_path):
    """Fired from spooled readings an hour old: reminders and escalation count from when people
    were told (``now_ms`` of ``apply``), and the first message is queued for now."""
    store = AlertStore(tmp_path / "a.sqlite")
    tr = firing_transition()
    told = tr.ts_ms + 3_600_000
    alert = store.apply(tr, [("mail", "a@x.vn")], now_ms=told)
    assert alert["fired_ms"] == tr.ts_ms and alert["notified_ms"] == told
    assert [n["next_ms"] for n in store.notifications()] == [told]
    assert store.due(told + 1_000, renotify_s=60, escalate_after_s=300) == []
    assert [k for _, k in store.due(told + 300_000, 60, 300)] == ["escalation"]
    # the escalation told the first list too: their next reminder is a full interval later
    assert store.due(told + 359_000, 60, 300) == []
    assert [k for _, k in store.due(told + 360_000, 60, 300)] == ["renotify"]
