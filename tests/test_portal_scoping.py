"""Operator scoping with two communes, against a real Mosquitto + InfluxDB: an operator of commune A
never sees commune B's stations, alerts or feedback — in pages, the API and the SSE stream — while
residents see public stations of both and an inspector with `*` sees everything."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from test_portal_signin import PASSWORD, Client, make_portal

from villagewatch import contract
from villagewatch.config import Settings
from villagewatch.sites import load_sites

REPO = Path(__file__).resolve().parent.parent
A, B = "tan-thuan-dong", "my-hiep"
POND = "ao-ca-tra-a1"  # private by default (kind pond)
TAP = "nmn-tan-thuan"  # public


@pytest.fixture
def two_communes(tmp_path) -> dict:
    folder = tmp_path / "sites"
    folder.mkdir()
    shutil.copy(REPO / "sites" / f"{A}.yaml", folder / f"{A}.yaml")
    text = (REPO / "sites" / f"{A}.yaml").read_text()
    text = re.sub(r"^commune: .*$", f"commune: {B}", text, count=1, flags=re.M)
    text = text.replace("Xã Tân Thuận Đông", "Xã Mỹ Hiệp")
    (folder / f"{B}.yaml").write_text(text)
    return load_sites(folder)


@pytest.fixture
def scoped(stack, tmp_path, two_communes):
    settings = Settings(mqtt_url=stack.mqtt_url, influx_url=stack.influx_url, influx_db=stack.influx_db,
                        data_dir=str(tmp_path / "var"))
    base, portal, stop = make_portal(tmp_path / "var", two_communes, settings)
    store = portal.signin.store
    store.put_account("op-a", "operator", [A], PASSWORD)
    store.put_account("insp", "inspector", ["*"], PASSWORD)
    assert portal.subscribed.wait(30), "portal did not subscribe to the broker"
    yield base, portal
    stop()


def _api(client: Client, path: str):
    status, _, body = client.request(path)
    assert status == 200, (path, status, body[:200])
    return json.loads(body)


def _stream(base: str, client: Client | None, commune: str = ""):
    headers = {}
    if client is not None:
        headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    resp = urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/stream?commune={commune}",
                                                         headers=headers), timeout=30)
    assert resp.readline().startswith(b": connected")
    return resp


def _events(resp, until_station: str) -> list[dict]:
    """Events read until one of ``until_station`` arrives (published last, so anything leaked before it shows)."""
    out, event = [], None
    while True:
        line = resp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            out.append({"event": event, **data})
            if data.get("station") == until_station and data.get("commune") == A and event == "reading":
                return out


@pytest.mark.integration
def test_portal_operator_of_a_never_sees_commune_b(stack, scoped, two_communes):
    base, portal = scoped
    resident, op, insp = Client(base), Client(base), Client(base)
    assert op.login("op-a", PASSWORD)[0] == 303 and insp.login("insp", PASSWORD)[0] == 303

    def ids(client: Client, query: str = "") -> set[tuple[str, str]]:
        return {(s["commune"], s["station"]) for s in _api(client, f"/api/v1/stations{query}")}

    every = {(c, s) for c, site in two_communes.items() for s in site.stations}
    public = {(c, s) for c, site in two_communes.items() for s, st in site.stations.items() if st.public}
    a_all = {(c, s) for c, s in every if c == A}
    assert ids(resident) == public and (A, POND) not in public
    assert ids(op) == a_all and (A, POND) in a_all
    assert ids(op, f"?commune={B}") == set()
    assert ids(insp) == every
    # pages and per-station API: B's station is "not found" for A's operator, A's pond is there
    for path in (f"/tram/{B}/{TAP}", f"/api/v1/stations/{B}/{TAP}/series?metric=chlorine",
                 f"/api/v1/stations/{B}/{TAP}/daily.json"):
        assert op.request(path)[0] == 404, path
        assert resident.request(path)[0] == 200, path
    assert op.request(f"/tram/{A}/{POND}")[0] == 200 and resident.request(f"/tram/{A}/{POND}")[0] == 404
    status, _, page = op.request("/")
    assert status == 200 and f"/tram/{A}/{POND}" in page and f"/tram/{B}/" not in page

    # the stream: B's reading and alert, A's pond reading, then A's tap reading (the end marker)
    streams = {name: _stream(base, c) for name, c in (("resident", None), ("op", op), ("insp", insp))}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", stack.mosquitto.port)
    c.loop_start()
    try:
        now = int(time.time() * 1000)
        msgs = [(contract.telemetry_topic(B, TAP), {"ts": now, "seq": 1, "metrics": {"chlorine": 0.5}}),
                (contract.alerts_topic(B, TAP), {"id": 7, "state": "firing", "commune": B, "station": TAP,
                                                "severity": "warning", "message_vi": "Clo thấp"}),
                (contract.telemetry_topic(A, POND), {"ts": now, "seq": 2, "metrics": {"do": 4.1}}),
                (contract.telemetry_topic(A, TAP), {"ts": now, "seq": 3, "metrics": {"chlorine": 0.4}})]
        for topic, body in msgs:
            c.publish(topic, json.dumps(body), qos=1).wait_for_publish(30)
        got = {name: _events(resp, TAP) for name, resp in streams.items()}
    finally:
        c.loop_stop()
        c.disconnect()
        for resp in streams.values():
            resp.close()
    seen = {name: [(e["event"], e["commune"], e["station"]) for e in evs] for name, evs in got.items()}
    assert seen["op"] == [("reading", A, POND), ("reading", A, TAP)]
    assert seen["resident"] == [("reading", B, TAP), ("alert", B, TAP), ("reading", A, TAP)]
    assert seen["insp"] == [("reading", B, TAP), ("alert", B, TAP), ("reading", A, POND), ("reading", A, TAP)]


@pytest.mark.integration
def test_portal_staff_overview_open_alerts_and_gateways_per_commune(stack, tmp_path, two_communes):
    """Open alerts are read back from InfluxDB at start (a restarted portal still colours the map);
    the staff panel lists gateways with their last report and alerts — of the account's communes only."""
    from test_portal_api import _write

    now = int(time.time() * 1000)
    _write(stack, [
        f'alerts,commune={A},station={TAP},rule=qcvn01-chlorine,severity=critical state="firing",alert_id=5i,'
        f'limit=0.2,value=0.1,message_vi="Clo dư thấp ở A" {now - 60_000}',
        f'alerts,commune={B},station={TAP},rule=qcvn01-chlorine,severity=critical state="firing",alert_id=6i,'
        f'limit=0.2,value=0.1,message_vi="Clo dư thấp ở B" {now - 60_000}',
        f'alerts,commune={A},station=song-tien-ben-do,rule=qcvn08-do,severity=warning state="firing",alert_id=7i,'
        f'message_vi="Đã xong" {now - 90_000}',
        f'alerts,commune={A},station=song-tien-ben-do,rule=qcvn08-do,severity=warning state="resolved",alert_id=7i,'
        f'message_vi="Đã xong" {now - 30_000}',
        f"gateway_status,commune={A},gateway=gw-trung-tam uptime_s=100 {now - 10_000}",
        f"gateway_status,commune={A},gateway=gw-ao-nuoi uptime_s=100 {now - 3_600_000}",
        f"telemetry,commune={A},kind=water_supply,station={TAP} chlorine=0.5,seq=1i {now - 5_000}",
    ])
    settings = Settings(mqtt_url=stack.mqtt_url, influx_url=stack.influx_url, influx_db=stack.influx_db,
                        data_dir=str(tmp_path / "var"))
    base, portal, stop = make_portal(tmp_path / "var", two_communes, settings)
    try:
        portal.signin.store.put_account("op-a", "operator", [A], PASSWORD)
        op, resident = Client(base), Client(base)
        assert op.login("op-a", PASSWORD)[0] == 303
        # the open alert makes the tap "vượt ngưỡng" although its latest chlorine (0.5) is fine
        tap = next(s for s in _api(resident, f"/api/v1/stations?commune={A}") if s["station"] == TAP)
        assert tap["state"] == "exceeded" and "Clo dư thấp ở A" in tap["summary_vi"]
        status, _, page = op.request("/")
        staff = page[page.index('id="staff"'):page.index("</section>")]
        assert "Clo dư thấp ở A" in staff and "Clo dư thấp ở B" not in staff and "Đã xong" not in staff
        assert 'data-gateway="tan-thuan-dong/gw-trung-tam" data-state="ok"' in staff
        assert 'data-gateway="tan-thuan-dong/gw-ao-nuoi" data-state="offline"' in staff
        assert 'data-gateway="tan-thuan-dong/gw-dong-ruong" data-state="no_data"' in staff
        assert f'data-gateway="{B}/' not in staff
        assert 'id="staff"' not in resident.request("/")[2]  # residents get no staff panel
    finally:
        stop()
