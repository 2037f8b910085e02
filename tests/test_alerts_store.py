"""Lifecycle store: one open alert per condition, re-notify while unacknowledged, escalation once,
state and outbox survive reopening the SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.engine import Engine
from alerts.rulepack import load_rule_packs
from alerts.settings import AlertsConfig, hash_password, verify_password
from alerts.store import AlertStore, StoreError
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
