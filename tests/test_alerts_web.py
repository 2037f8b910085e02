"""Inspector page in headless Chromium (Debian's /usr/bin/chromium via Playwright): log in, see the
alert, acknowledge it with a note, find it in history; a screenshot is saved as a test artifact."""

from __future__ import annotations

from pathlib import Path

from conftest import serve_app
from playwright.sync_api import sync_playwright

from alerts.settings import AlertsConfig, hash_password
from alerts.store import AlertStore
from alerts.web import create_app
from app.stack import free_port
from rules.engine import Engine
from rules.rulepack import load_rule_packs
from villagewatch.contract import Reading
from villagewatch.signin import COOKIE, AuthStore
from villagewatch.sites import load_site

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
T0 = 1_714_521_600_000




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
    stop = serve_app(create_app(store, config, {site.commune: site}, on_change=published.append,
                            auth=AuthStore(tmp_path / "auth.sqlite")), port)
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
            assert "oxy hòa tan (DO) 1,8 mg/L, thấp hơn mức tối thiểu 3 mg/L" in page.inner_text("main")
            # the active list shows severity, station, value vs limit, regulation, since when
            page.goto(base + "/")
            row = page.locator(f"tr[data-alert-id='{alert['id']}']")
            text = row.inner_text()
            assert "Khẩn cấp" in text and "Ao nuôi A3" in text and "1,8 mg/L / 3 mg/L" in text and "Ngưỡng vận hành ao nuôi" in text
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
            # on a phone the inspector's pages do not scroll sideways (the issue measured 585 px at 390)
            page.set_viewport_size({"width": 390, "height": 844})
            for path in ("/", f"/alert/{alert['id']}", "/history?station=ao-ca-tra-a3"):
                page.goto(base + path)
                assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
            page.screenshot(path=str(artifacts_dir / "alerts-inspector-history-390.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 800})
            # an operator of another commune sees nothing of this commune
            page.click("#logout")
            page.wait_for_url(f"{base}/login")
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


def test_inspector_page_shares_the_portal_sign_in(tmp_path):
    """A session made on the portal opens an `/alert/<id>` link of the inspector page (same store);
    logging out on the portal ends it there too, and the inspector's own login form is the shared one."""
    from test_portal_signin import PASSWORD, Client, _cookie, make_portal

    from villagewatch.sites import load_sites
    site_map = load_sites(REPO / "sites")
    site = site_map["tan-thuan-dong"]
    store = AlertStore(tmp_path / "alerts.sqlite")
    engine = Engine(load_rule_packs(), {site.commune: site}, start_ms=T0)
    for i, do in enumerate([5.0, 1.8, 1.8, 1.8]):
        for tr in engine.feed(Reading(site.commune, "ao-ca-tra-a3", T0 + i * 60_000, i, {"do": do}, "gw-ao-nuoi")):
            store.apply(tr)
    alert = store.active()[0]
    base, portal, stop_portal = make_portal(tmp_path, site_map)
    config = AlertsConfig(secret=b"s" * 32, users={
        "thanh": {"username": "thanh", "name": "Thanh", "password_hash": hash_password(PASSWORD),
                  "communes": [site.commune], "role": "inspector"}})
    port = free_port()
    stop_alerts = serve_app(create_app(store, config, site_map, auth=AuthStore(tmp_path / "auth.sqlite")), port)
    alerts_base = f"http://127.0.0.1:{port}"
    try:
        assert portal.signin.store.account("thanh").role == "inspector"  # seeded from the alerts YAML
        c = Client(base)
        assert c.login("thanh", PASSWORD)[0] == 303
        inspector = Client(alerts_base)
        inspector.jar.set_cookie(_cookie(COOKIE, c.cookie(COOKIE).value))
        status, _, page = inspector.request(f"/alert/{alert['id']}")
        assert status == 200 and f"Cảnh báo #{alert['id']}" in page
        assert c.request("/dang-xuat", {"csrf": c.token("/doi-mat-khau")})[0] == 303
        status, headers, _ = inspector.request(f"/alert/{alert['id']}")
        assert status == 302 and headers["Location"].startswith("/login?next=")
        # the inspector's login form: CSRF, shared sessions, local redirects only
        fresh = Client(alerts_base)
        status, headers, _ = fresh.login("thanh", PASSWORD, nxt="/\\evil.example", login_path="/login")
        assert status == 303 and headers["Location"] == "/" and fresh.cookie(COOKIE) is not None
        assert fresh.request("/login", {"username": "thanh", "password": PASSWORD})[0] == 403
        status, headers, _ = Client(alerts_base).login("thanh", PASSWORD, nxt=f"/alert/{alert['id']}", login_path="/login")
        assert status == 303 and headers["Location"] == f"/alert/{alert['id']}"
    finally:
        stop_alerts()
        stop_portal()
