"""Headless Chromium at 390×844: no horizontal scrolling; a published reading shows up without reload."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from test_portal_api import COMMUNE, PRIVATE, PUBLIC, portal  # noqa: F401 - fixture

from villagewatch import contract
from villagewatch.sites import load_sites

FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.integration
def test_portal_station_page_live_on_phone(stack, portal, artifacts_dir, site_dir):  # noqa: F811
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{portal}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        public = [st.id for st in load_sites(site_dir)[COMMUNE].stations.values() if st.public]
        assert len(public) >= 5
        for station in public:
            assert page.locator(f'a[href="/tram/{COMMUNE}/{station}"]').count() == 1
        assert page.locator(f'a[href="/tram/{COMMUNE}/{PRIVATE}"]').count() == 0
        _assert_map_markers(page, public)
        page.screenshot(path=str(artifacts_dir / "portal-index-390.png"), full_page=True)
        page.goto(f"{portal}/tram/{COMMUNE}/{PUBLIC}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect("127.0.0.1", stack.mosquitto.port)
        c.loop_start()
        try:
            # the page's EventSource may still be connecting: publish until the cell changes
            cell = page.locator('tr[data-metric="chlorine"] .v')
            deadline = time.monotonic() + 60  # a loaded machine: Chromium and the portal share 2 cores
            while "0,77" not in (cell.text_content() or "") and time.monotonic() < deadline:
                c.publish(contract.telemetry_topic(COMMUNE, PUBLIC),
                          json.dumps({"ts": int(time.time() * 1000), "seq": 1, "metrics": {"chlorine": 0.77}}))
                try:
                    page.wait_for_function("document.querySelector('tr[data-metric=\"chlorine\"] .v')"
                                           ".textContent.includes('0,77')", timeout=500)
                except PlaywrightTimeout:  # not yet: publish again until the deadline
                    pass
            assert "0,77" in cell.text_content() and "mg/L" in cell.text_content()
        finally:
            c.loop_stop()
            c.disconnect()
        page.screenshot(path=str(artifacts_dir / "portal-station-390.png"), full_page=True)
        browser.close()


def _assert_map_markers(page, public: list[str]) -> None:
    """One Leaflet marker per public station of the site files, none for a private one."""
    page.wait_for_selector('#map[data-loaded="1"]', timeout=60_000)
    assert page.locator("path.vw-marker").count() == len(public)
    for station in public:
        marker = page.locator(f"path.vw-{COMMUNE}--{station}")
        assert marker.count() == 1
        assert marker.get_attribute("data-state") in {"ok", "warn", "exceeded", "offline", "no_data"}
    assert page.locator(f"path.vw-{COMMUNE}--{PRIVATE}").count() == 0
    assert page.locator("path.vw-outline").count() == 1  # the commune outline from the site file


@pytest.mark.integration
def test_portal_map_desktop_one_marker_per_public_station(stack, portal, artifacts_dir, site_dir):  # noqa: F811
    from playwright.sync_api import sync_playwright

    public = [st.id for st in load_sites(site_dir)[COMMUNE].stations.values() if st.public]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{portal}/")
        _assert_map_markers(page, public)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.screenshot(path=str(artifacts_dir / "portal-index-1280.png"), full_page=True)
        browser.close()
