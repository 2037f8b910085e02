"""What an inspector reads about an alert, scanned like the rule messages (tests/test_rules_messages.py):
the inspector pages (active list, history, detail) and every notification text, for alerts of several
rule kinds made by the real engine and store — live, resolved, historical (late data) and retracted.
The Vietnamese must hold no English ids, no decimal point between digits, and every value its unit."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser

from aiohttp.test_utils import TestClient, TestServer
from test_rules_messages import DECIMAL_POINT, HYPHENATED_ID, IDS, RULESET, SITE

from alerts.notify.text import EVENT_LABELS, build_message, value_text
from alerts.settings import AlertsConfig, hash_password
from alerts.store import AlertStore
from alerts.web import create_app
from rules.engine import Engine
from villagewatch import contract
from villagewatch.signin import COOKIE, AuthStore

C = SITE.commune
T0 = 1_714_521_600_000  # 2024-05-01 07:00 (Asia/Ho_Chi_Minh)
MIN = 60_000
PASSWORD = "mật-khẩu-đủ-dài-2024"


def feed(engine: Engine, store: AlertStore, station: str, series: list[tuple[int, dict]]) -> None:
    for i, (minute, metrics) in series:
        out = engine.feed(contract.Reading(C, station, T0 + minute * MIN, i, metrics))
        store.apply_all(out, lambda tr: [("webhook", "http://127.0.0.1:9/")], T0 + minute * MIN)


def sample_store(tmp_path) -> AlertStore:
    store = AlertStore(tmp_path / "alerts.sqlite")
    engine = Engine(RULESET, {C: SITE}, start_ms=T0, emit_corrections=True)
    seq = iter(range(1, 10_000))
    pond = [(m, {"do": 1.8 if 3 <= m <= 6 else 5.2, "battery": 3.2}) for m in range(12)]
    feed(engine, store, "ao-ca-tra-a3", [(next(seq), p) for p in pond])
    # historical: an excursion whose last low reading comes after the recovery
    a1 = [(m, {"do": 1.8 if 3 <= m <= 5 else 5.2}) for m in range(10) if m != 5] + [(5, {"do": 1.8})]
    feed(engine, store, "ao-ca-tra-a1", [(next(seq), p) for p in a1])
    # retracted: a reading in range arrives late, in the middle of the low spell
    a2 = [(m, {"do": 1.8 if 3 <= m <= 5 else 5.2}) for m in range(10)]
    feed(engine, store, "ao-ca-tra-a2", [(next(seq), p) for p in a2])
    feed(engine, store, "ao-ca-tra-a2", [(next(seq), (4.5, {"do": 5.2}))])
    feed(engine, store, "nmn-tan-thuan", [(next(seq), (m, {"chlorine": 0.05 if m < 15 else 0.5, "ph": 9.1}))
                                          for m in range(18)])
    feed(engine, store, "rac-ap-1", [(next(seq), (m * 5, {"fill": 97.4, "bin_temp": 66.25})) for m in range(4)])
    feed(engine, store, "muc-nuoc-song-tien", [(next(seq), (m, {"level": 2.45})) for m in range(8)])
    return store


class VietnameseText(HTMLParser):
    """The page's text outside the English lines (``class="en"``), style and script."""

    def __init__(self) -> None:
        super().__init__()
        self.skip: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        english = "en" in (dict(attrs).get("class") or "").split()
        if (self.skip or tag in ("style", "script") or english) and tag not in ("br", "input", "meta"):
            self.skip.append(tag)

    def handle_endtag(self, tag):
        if self.skip and self.skip[-1] == tag:
            self.skip.pop()

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def vietnamese(page: str) -> str:
    p = VietnameseText()
    p.feed(page)
    return " ".join(p.parts)


def scan(where: str, text: str) -> None:
    assert not HYPHENATED_ID.findall(text), (where, HYPHENATED_ID.findall(text), text)
    words = set(re.findall(r"[\w-]+", text))
    assert not (IDS & words), (where, IDS & words, text)
    for m in DECIMAL_POINT.finditer(text):
        assert len(m.group(1)) == 3, f"decimal point in {where}: {text}"  # only a thousands dot


def with_units(alert: dict) -> list[str]:
    """The alert's value and limit as a reader must see them (with the metric's unit)."""
    return [value_text(alert, v) for v in (alert["value"], alert["limit"]) if v is not None]


def test_inspector_pages_and_notifications_speak_vietnamese_with_units(tmp_path):
    store = sample_store(tmp_path)
    alerts = store.history()
    by_rule = {a["rule"] for a in alerts}
    assert {"pond-do-low", "health-battery-low", "waste-fill-critical", "flood-level-3"} <= by_rule, by_rule
    assert any(a["late"] for a in alerts) and any(a["state"] == "retracted" for a in alerts)
    assert any(a["state"] == "firing" for a in alerts) and any(a["state"] == "resolved" for a in alerts)

    for a in alerts:
        for event in EVENT_LABELS:
            msg = build_message(a, event, "https://canhbao.example.vn")
            vi_text = msg.text.split("\n\n———\n\n")[0]
            vi_subject = msg.subject.rsplit(" / [", 1)[0]
            scan(f"{a['rule']} {event} text", vi_text)
            scan(f"{a['rule']} {event} subject", vi_subject)
            assert a["rule"] not in msg.subject
            for shown in with_units(a):
                assert shown in vi_subject, f"value without unit in the subject: {msg.subject}"

    config = AlertsConfig(secret=b"s" * 32, public_url="http://127.0.0.1", users={
        "thanh": {"username": "thanh", "name": "Thanh", "password_hash": hash_password(PASSWORD),
                  "communes": [C], "role": "inspector"}})
    auth = AuthStore(tmp_path / "auth.sqlite")

    async def pages() -> dict[str, str]:
        app = create_app(store, config, {C: SITE}, auth=auth)
        token, _ = auth.login("thanh", PASSWORD, "127.0.0.1")
        out = {}
        async with TestClient(TestServer(app)) as client:
            client.session.cookie_jar.update_cookies({COOKIE: token})
            for path in ["/", "/history"] + [f"/alert/{a['id']}" for a in alerts]:
                resp = await client.get(path, allow_redirects=False)
                assert resp.status == 200, (path, resp.status)
                out[path] = await resp.text()
        return out

    got = asyncio.run(pages())
    for path, page in got.items():
        scan(path, vietnamese(page))
    for a in alerts:
        row = re.search(rf'<tr[^>]*data-alert-id="{a["id"]}".*?</tr>', got["/history"], re.S)
        assert row, a["id"]
        row_text = vietnamese(row.group(0))
        assert " / ".join(with_units(a)) in row_text or not with_units(a), row_text
        detail = vietnamese(got[f"/alert/{a['id']}"])
        for shown in with_units(a):
            assert shown in detail, (a["rule"], shown, detail)
        if a["late"]:
            assert "lịch sử" in row_text and "lịch sử" in detail
        if a["state"] == "retracted":
            assert "Đã rút lại" in row_text
    assert "1,8 mg/L / 3 mg/L" in vietnamese(got["/"]) or "1,8 mg/L / 3 mg/L" in vietnamese(got["/history"])
