"""Issue 15's acceptance in headless Chromium against `villagewatch portal` as a real process, with a
real Mosquitto + InfluxDB: a resident on a phone (390×844) files feedback with a photo and follows
it by code; an inspector on a desktop (1280×800) signs in, sees it arrive live, replies; the
resident sees the reply; an alert published on the broker recolours the map without reload. No
page scrolls sideways at 390 px. Screenshots go to test-artifacts/ (looked at by a person)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import eventually
from test_portal_api import COMMUNE, PUBLIC, _write
from test_portal_browser import FLAGS

from app.stack import free_port, port_open
from villagewatch import contract

REPO = Path(__file__).resolve().parent.parent
INSPECTOR_PASSWORD = "thanh-kiem-tra-2026"
LIVE_S = 5  # the bound for live updates


@pytest.fixture
def portal_with_inspector(stack, tmp_path):
    port = free_port()
    env = {**os.environ, **stack.env(), "VW_PORTAL_PORT": str(port), "VW_DATA_DIR": str(tmp_path / "var"),
           "VW_PORTAL_TILE_URL": "", "PYTHONPATH": str(REPO), "VW_NEW_PASSWORD": INSPECTOR_PASSWORD}
    made = subprocess.run([sys.executable, "-m", "app.cli", "portal-account", "add", "thanh",
                           "--role", "inspector", "--communes", COMMUNE, "--name", "Nguyễn Văn Thành"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "portal"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: port_open(port) or proc.poll() is not None, 30, "portal listening")
        assert proc.poll() is None, proc.stdout.read().decode()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def _no_sideways(page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def _photo(path: Path) -> Path:
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (800, 600), (120, 150, 90))
    ImageDraw.Draw(img).rectangle((200, 150, 600, 450), fill=(90, 70, 40))
    img.save(path, "JPEG")
    return path


@pytest.mark.integration
def test_portal_acceptance_resident_inspector_reply_and_live_alert(stack, portal_with_inspector, tmp_path,
                                                                   artifacts_dir):
    from playwright.sync_api import expect, sync_playwright

    base = portal_with_inspector
    shots = artifacts_dir
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN").new_page()
        desk = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN").new_page()

        # the inspector signs in first and keeps the queue open: new feedback shows up live
        desk.goto(f"{base}/xu-ly")
        assert "/dang-nhap" in desk.url
        desk.fill("input[name=username]", "thanh")
        desk.fill("input[name=password]", "sai-mat-khau")
        desk.click("button[type=submit]")
        expect(desk.locator("#login-error")).to_contain_text("Sai tên đăng nhập")
        desk.fill("input[name=username]", "thanh")
        desk.fill("input[name=password]", INSPECTOR_PASSWORD)
        desk.click("button[type=submit]")
        desk.wait_for_url(f"{base}/xu-ly")
        desk.screenshot(path=str(shots / "portal-queue-empty-1280.png"), full_page=True)

        # the resident, on a phone, files feedback with a photo and a place on the map
        phone.goto(f"{base}/")
        phone.wait_for_selector('#map[data-loaded="1"]')
        _no_sideways(phone)
        phone.select_option("select[name=category]", "nuoc_duc")
        phone.fill("textarea[name=text]", "Nước máy đục, có mùi lạ ở ấp 3 từ sáng nay.")
        phone.set_input_files("input[name=photo]", str(_photo(tmp_path / "anh.jpg")))
        phone.locator("#map").click(position={"x": 200, "y": 150})
        phone.fill("input[name=phone]", "0912 345 678")
        phone.click("#send")
        link = phone.locator("#tracking-link")
        expect(link).to_be_visible(timeout=10_000)
        code = link.text_content().strip()
        phone.screenshot(path=str(shots / "portal-feedback-sent-390.png"), full_page=True)
        link.click()
        phone.wait_for_url(f"{base}/phan-anh/{code}")
        expect(phone.locator("#status")).to_have_text("Mới tiếp nhận")
        _no_sideways(phone)

        expect(phone.locator("#no-reply")).to_be_visible()
        # ... and the inspector's open queue says so within seconds, without reload
        expect(desk.locator("#live-note")).to_be_visible(timeout=LIVE_S * 1000)
        desk.reload()
        desk.click(f"[data-code='{code}'] a")
        expect(desk.locator("#text")).to_contain_text("Nước máy đục")
        assert desk.locator("#photo").evaluate("img => img.complete && img.naturalWidth") > 0
        desk.select_option("#status-select", "in_progress")
        desk.select_option("#assignee", "thanh")
        desk.select_option("#station", PUBLIC)
        desk.fill("#reply", "Đã cử cán bộ lấy mẫu nước tại ấp 3 chiều nay.")
        desk.click("#save")
        expect(desk.locator("#status")).to_have_text("Đang xử lý")
        desk.screenshot(path=str(shots / "portal-queue-item-1280.png"), full_page=True)

        # the resident's open tracking page shows the reply by itself, within 5 s
        expect(phone.locator("#reply-text")).to_contain_text("Đã cử cán bộ lấy mẫu nước", timeout=LIVE_S * 1000)
        expect(phone.locator("#status")).to_have_text("Đang xử lý")
        # the resident follows by code (typed in, lower case) and sees the reply
        phone.goto(f"{base}/")
        phone.fill("input[name=ma]", code.lower())
        phone.click("form[action='/phan-anh'] button")
        phone.wait_for_url(f"{base}/phan-anh/{code}")
        expect(phone.locator("#reply")).to_contain_text("Đã cử cán bộ lấy mẫu nước")
        expect(phone.locator("#status")).to_have_text("Đang xử lý")
        _no_sideways(phone)
        phone.screenshot(path=str(shots / "portal-tracking-reply-390.png"), full_page=True)

        # a day of chlorine in InfluxDB (as the ingest writes it): the station page charts it
        now = int(time.time() * 1000)
        _write(stack, [f"telemetry,commune={COMMUNE},kind=water_supply,station={PUBLIC} "
                       f"chlorine={0.45 + 0.2 * math.sin(i / 20):.3f},seq={i}i {now - (288 - i) * 300_000}"
                       for i in range(288)])
        # live: an alert on the broker recolours the station on the open map; a reading updates
        # the open station page — both within 5 s, without reload
        phone.goto(f"{base}/")
        phone.wait_for_selector('#map[data-loaded="1"]')
        station_page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        station_page.goto(f"{base}/tram/{COMMUNE}/{PUBLIC}")
        _no_sideways(station_page)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect("127.0.0.1", stack.mosquitto.port)
        c.loop_start()
        try:
            marker = phone.locator(f"path.vw-{COMMUNE}--{PUBLIC}")
            cell = station_page.locator('tr[data-metric="chlorine"] .v')
            for pg in (phone, station_page):  # both pages listening (the server registers before it answers)
                pg.wait_for_function("window.vwStream && window.vwStream.readyState === 1", timeout=10_000)
            c.publish(contract.alerts_topic(COMMUNE, PUBLIC), json.dumps({
                "id": 41, "rule": "qcvn01-chlorine", "state": "firing", "severity": "critical", "limit": 0.2,
                "value": 0.08, "message_vi": "Clo dư tự do 0,08 mg/L, dưới 0,2 mg/L", "commune": COMMUNE,
                "station": PUBLIC}), qos=1).wait_for_publish(30)
            c.publish(contract.telemetry_topic(COMMUNE, PUBLIC), json.dumps(
                {"ts": int(time.time() * 1000), "seq": 7, "metrics": {"chlorine": 0.08}}), qos=1).wait_for_publish(30)
            expect(marker).to_have_attribute("data-state", "exceeded", timeout=LIVE_S * 1000)
            expect(cell).to_contain_text("0,08 mg/L", timeout=LIVE_S * 1000)
            assert marker.get_attribute("data-state") == "exceeded"
            assert "0,08 mg/L" in cell.text_content()
            expect(station_page.locator("#state")).to_have_attribute("data-state", "exceeded")
            expect(station_page.locator("#summary")).to_contain_text("Clo dư tự do 0,08 mg/L")
        finally:
            c.loop_stop()
            c.disconnect()
        chart = station_page.locator("#chart")
        assert int(chart.get_attribute("data-points")) >= 280 and chart.get_attribute("data-limits") == "2"
        station_page.click("button[data-range='604800000']")
        station_page.wait_for_function("document.querySelector('#chart').dataset.points !== undefined")
        phone.locator(f"li[data-station='{COMMUNE}/{PUBLIC}']").scroll_into_view_if_needed()
        phone.screenshot(path=str(shots / "portal-map-alert-390.png"), full_page=True)
        station_page.screenshot(path=str(shots / "portal-station-live-390.png"), full_page=True)

        # every page of the flow at 390 px: no sideways scrolling (staff pages too)
        staff_phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        staff_phone.goto(f"{base}/dang-nhap")
        _no_sideways(staff_phone)
        staff_phone.fill("input[name=username]", "thanh")
        staff_phone.fill("input[name=password]", INSPECTOR_PASSWORD)
        staff_phone.click("button[type=submit]")
        staff_phone.wait_for_url(f"{base}/")
        for name, path in (("map", "/"), ("queue", "/xu-ly"), ("queue-item", f"/xu-ly/{code}"),
                           ("pond", f"/tram/{COMMUNE}/ao-ca-tra-a1"), ("password", "/doi-mat-khau")):
            staff_phone.goto(base + path)
            if name == "map":
                staff_phone.wait_for_selector('#map[data-loaded="1"]')
            _no_sideways(staff_phone)
            staff_phone.screenshot(path=str(shots / f"portal-staff-{name}-390.png"), full_page=True)
        browser.close()
    for name in ("portal-feedback-sent-390.png", "portal-tracking-reply-390.png", "portal-queue-item-1280.png",
                 "portal-map-alert-390.png"):
        assert (shots / name).stat().st_size > 10_000, name
