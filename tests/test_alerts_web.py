"""Inspector page in headless Chromium (Debian's /usr/bin/chromium via Playwright): log in, see the
alert, acknowledge it with a note, find it in history; a screenshot is saved as a test artifact."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web
from playwright.sync_api import sync_playwright

from alerts.engine import Engine
from alerts.rulepack import load_rule_packs
from alerts.settings import AlertsConfig, hash_password
from alerts.store import AlertStore
from alerts.web import create_app
from app.stack import free_port
from villagewatch.contract import Reading
from villagewatch.sites import load_site

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
T0 = 1_714_521_600_000


def serve(app: web.Application, port: int):
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(app)

    async def start():
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)

    def stop():
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return stop


def test_inspector_login_ack_history(tmp_path, artifacts_dir):
    # no skip: a missing browser must fail the run (scripts/bootstrap.sh test installs Debian's chromium)
    assert Path("/usr/bin/chromium").exists(), "Debian chromium is missing: apt-get install chromium"
    site = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
    store = AlertStore(tmp_path / "alerts.sqlite")
    engine = Engine(load_rule_packs(), {site.commune: site}, start_ms=T0)
    for i, do in enumerate([5.0, 1.8, 1.8, 1.8]):
        for tr in engine.feed(Reading(site.commune, "ao-ca-tra-a3", T0 + i * 60_000, i, {"do": do}, "gw-ao-nuoi")):
            store.apply(tr)
    alert = store.active()[0]
    published: list[dict] = []
    config = AlertsConfig(secret=b"s" * 32, users={
        "thanh": {"username": "thanh", "name": "Nguyễn Văn Thành", "password_hash": hash_password("mat-khau-1"),
                  "communes": [site.commune], "role": "inspector"},
        "khac": {"username": "khac", "name": "Xã khác", "password_hash": hash_password("mat-khau-2"),
                 "communes": ["xa-khac"], "role": "operator"}})
    port = free_port()
    stop = serve(create_app(store, config, {site.commune: site}, on_change=published.append), port)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="vi-VN")
            # a link from a notification asks for login, then opens the alert
            page.goto(f"{base}/alert/{alert['id']}")
            assert "/login" in page.url
            page.fill("input[name=username]", "thanh")
            page.fill("input[name=password]", "sai-mat-khau")
            page.click("button[type=submit]")
            assert "Sai tên đăng nhập hoặc mật khẩu" in page.content()
            page.fill("input[name=username]", "thanh")
            page.fill("input[name=password]", "mat-khau-1")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/alert/{alert['id']}")
            assert "oxy hòa tan (DO) 1,8 mg/L, dưới ngưỡng 3 mg/L" in page.inner_text("main")
            # the active list shows severity, station, value vs limit, regulation, since when
            page.goto(base + "/")
            row = page.locator(f"tr[data-alert-id='{alert['id']}']")
            text = row.inner_text()
            assert "Khẩn cấp" in text and "Ao nuôi A3" in text and "1,8 / 3" in text and "Ngưỡng vận hành ao nuôi" in text
            row.locator("a").click()
            page.fill("#ack-note", "Đã bật máy sục khí ao A3")
            page.click("#ack")
            page.wait_for_selector("text=Đã tiếp nhận")
            assert "Đã bật máy sục khí ao A3" in page.inner_text("main")
            # history with filters
            page.goto(f"{base}/history?station=ao-ca-tra-a3&state=acknowledged")
            assert page.locator(f"tr[data-alert-id='{alert['id']}']").count() == 1
            page.goto(f"{base}/history?station=ao-ca-tra-a3&state=resolved")
            assert page.locator(f"tr[data-alert-id='{alert['id']}']").count() == 0
            page.goto(f"{base}/history?station=ao-ca-tra-a3")
            page.screenshot(path=str(artifacts_dir / "alerts-inspector-history.png"), full_page=True)
            # an operator of another commune sees nothing of this commune
            page.goto(base + "/logout")
            page.fill("input[name=username]", "khac")
            page.fill("input[name=password]", "mat-khau-2")
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            assert page.locator("tr[data-alert-id]").count() == 0
            assert page.goto(f"{base}/alert/{alert['id']}").status == 404
            browser.close()
    finally:
        stop()
    a = store.get(alert["id"])
    assert a["state"] == "acknowledged" and a["acked_by"] == "Nguyễn Văn Thành" and a["ack_note"] == "Đã bật máy sục khí ao A3"
    assert [x["state"] for x in published] == ["acknowledged"]
    assert (artifacts_dir / "alerts-inspector-history.png").stat().st_size > 10_000
