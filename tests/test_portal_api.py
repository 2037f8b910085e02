"""Portal API against a real Mosquitto + InfluxDB, the portal as a real `villagewatch portal` process."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from conftest import clear_of_local_midnight, eventually
from PIL import Image

from app.stack import free_port, port_open
from villagewatch import contract

REPO = Path(__file__).resolve().parent.parent
COMMUNE = "tan-thuan-dong"
PUBLIC = "nmn-tan-thuan"
PRIVATE = "ao-ca-tra-a1"


def _write(stack, lines: list[str]) -> None:
    url = f"{stack.influx_url}/write?db={stack.influx_db}&precision=ms"
    stack.influx_query(f"CREATE DATABASE {stack.influx_db}", method="POST")
    req = urllib.request.Request(url, data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 204


@pytest.fixture
def portal(stack, tmp_path):
    port = free_port()
    env = {**os.environ, **stack.env(), "VW_PORTAL_PORT": str(port), "VW_DATA_DIR": str(tmp_path / "var"),
           "VW_PORTAL_TILE_URL": "",  # no tiles: tests never reach the internet (the map works without)
           "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "portal"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: port_open(port) or proc.poll() is not None, 30, "portal listening")
        assert proc.poll() is None, proc.stdout.read().decode()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _multipart(fields: dict[str, str], photo: bytes | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    if photo is not None:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
                  f'Content-Type: image/jpeg\r\n\r\n'.encode() + photo + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _post_feedback(base: str, fields: dict[str, str], photo: bytes | None = None) -> tuple[int, dict]:
    body, ctype = _multipart(fields, photo)
    req = urllib.request.Request(f"{base}/api/v1/feedback", data=body, method="POST",
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_portal_stations_public_only_with_latest_and_series_downsampled(stack, portal):
    clear_of_local_midnight()  # "đạt quy chuẩn hôm nay": the readings must fall in the portal's today
    now = int(time.time() * 1000)
    lines = [f"telemetry,commune={COMMUNE},kind=water_supply,station={PUBLIC} chlorine={0.3 + i / 10000},seq={i}i "
             f"{now - (3000 - i) * 1000}" for i in range(3000)]
    lines.append(f"telemetry,commune={COMMUNE},kind=pond,station={PRIVATE} do=4.5,seq=1i {now}")
    _write(stack, lines)
    stations = _get(f"{portal}/api/v1/stations?commune={COMMUNE}")
    ids = {s["station"] for s in stations}
    assert PUBLIC in ids and PRIVATE not in ids  # ponds are private by default
    st = next(s for s in stations if s["station"] == PUBLIC)
    assert set(st) >= {"commune", "station", "name_vi", "name_en", "kind", "lat", "lon", "state", "last_ts", "latest"}
    assert st["latest"]["chlorine"] == {"value": pytest.approx(0.3 + 2999 / 10000), "unit": "mg/L",
                                        "ts": now - 1000, "text": "0,6 mg/L"}  # textfmt: decimal comma
    # chlorine 0.3–0.6 today sits inside QCVN 01-1's 0.2–1.0 mg/L band, clear of its edges
    assert st["last_ts"] == now - 1000 and st["state"] == "ok"
    assert st["summary_vi"] == "Nước máy: đạt quy chuẩn hôm nay"
    series = _get(f"{portal}/api/v1/stations/{COMMUNE}/{PUBLIC}/series?metric=chlorine"
                  f"&from={now - 4000 * 1000}&to={now}")
    assert 0 < len(series) <= 2000
    assert all(0.3 <= v <= 0.6 for _, v in series)
    short = _get(f"{portal}/api/v1/stations/{COMMUNE}/{PUBLIC}/series?metric=chlorine&from={now - 10_500}&to={now}")
    assert [v for _, v in short] == pytest.approx([0.3 + i / 10000 for i in range(2990, 3000)])
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{portal}/api/v1/stations/{COMMUNE}/{PRIVATE}/series?metric=do")
    assert err.value.code == 404


@pytest.mark.integration
def test_portal_stream_forwards_public_readings_not_private(stack, portal):
    resp = urllib.request.urlopen(f"{portal}/api/v1/stream?commune={COMMUNE}", timeout=30)
    assert resp.readline().startswith(b": connected")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", stack.mosquitto.port)
    c.loop_start()
    try:
        clear_of_local_midnight()  # the summary says "hôm nay" of a reading stamped now
        now = int(time.time() * 1000)
        # The portal subscribes (QoS 0, not retained) in the background after it opens its port: a
        # single publish could come before its subscription and the stream would wait for ever.
        # So rounds until the first event; in each, the private reading first: if it leaked it would
        # be the first event read.
        first_event = threading.Event()

        def rounds() -> None:
            while not first_event.is_set():
                c.publish(contract.telemetry_topic(COMMUNE, PRIVATE),
                          json.dumps({"ts": now, "seq": 1, "metrics": {"do": 4.0}}), qos=1).wait_for_publish(30)
                c.publish(contract.telemetry_topic(COMMUNE, PUBLIC),
                          json.dumps({"ts": now, "seq": 2, "metrics": {"chlorine": 0.42}}), qos=1).wait_for_publish(30)
                first_event.wait(0.5)  # pacing between rounds, not synchronisation

        publisher = threading.Thread(target=rounds, daemon=True)
        publisher.start()
        event = data = None
        try:
            while data is None:
                line = resp.readline().decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
        finally:
            first_event.set()
            publisher.join(30)
        assert event == "reading"
        assert data == {"commune": COMMUNE, "station": PUBLIC, "ts": now, "metrics": {"chlorine": 0.42},
                        "texts": {"chlorine": "0,42 mg/L"}, "state": "ok",
                        "summary_vi": "Nước máy: đạt quy chuẩn hôm nay",
                        "summary_en": "Tap water: within the regulation today"}
    finally:
        c.loop_stop()
        c.disconnect()
        resp.close()


def _jpeg_with_exif() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SECRET-CAMERA"  # Make
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.integration
def test_portal_feedback_photo_stripped_tracking_and_refusals(stack, portal, tmp_path):
    photo = _jpeg_with_exif()
    assert b"SECRET-CAMERA" in photo
    status, body = _post_feedback(portal, {"commune": COMMUNE, "category": "nuoc_duc",
                                           "text": "Nước máy đục ở ấp 3",
                                           "lat": "10,4330", "lon": "105.662"}, photo)
    assert status == 201, body
    code = body["code"]
    with urllib.request.urlopen(f"{portal}/phan-anh/{code}", timeout=30) as resp:
        page = resp.read().decode()
    assert "Nước máy đục" in page and "Mới tiếp nhận" in page
    import sqlite3
    db = sqlite3.connect(tmp_path / "var" / "portal.sqlite")
    stored = db.execute("SELECT photo FROM feedback WHERE code = ?", (code,)).fetchone()[0]
    assert stored[:2] == b"\xff\xd8" and b"SECRET-CAMERA" not in stored
    before = db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    refused = [
        ({"commune": COMMUNE, "category": "khac", "text": "x"}, b"not an image at all", 400),
        ({"commune": COMMUNE, "category": "khac", "text": "<script>alert(1)</script>"}, None, 400),
        ({"commune": COMMUNE, "category": "nope", "text": "x"}, None, 400),
    ]
    for fields, ph, want in refused:
        status, body = _post_feedback(portal, fields, ph)
        assert status == want and body["error"], (fields, status, body)
    status, body = _post_feedback(portal, {"commune": COMMUNE, "category": "khac", "text": "x"},
                                  b"\xff\xd8" + b"0" * (5 * 1024 * 1024 + 10))
    assert status == 413, body
    assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == before  # nothing stored
    # per-address limit: 5 per hour, 5 requests were made above (1 accepted + 4 refused)
    status, body = _post_feedback(portal, {"commune": COMMUNE, "category": "khac", "text": "x"})
    assert status == 429


def _local_ms(day: date, hh: int, mm: int) -> int:
    return int(datetime.combine(day, dt_time(hh, mm), ZoneInfo("Asia/Ho_Chi_Minh")).timestamp() * 1000)


@pytest.mark.integration
def test_portal_open_data_daily_means_by_local_day_csv_and_json(stack, portal):
    """Daily means per local (Asia/Ho_Chi_Minh) day: 00:10 local is 17:10 UTC the day before, so a
    UTC grouping would move that reading into the previous day and the means below would differ."""
    clear_of_local_midnight()  # the portal computes its own "today": both must be the same day
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    d1, d2, d3 = (today - timedelta(days=n) for n in (1, 2, 3))
    tags = f"telemetry,commune={COMMUNE},kind=water_supply,station={PUBLIC}"
    _write(stack, [
        f"{tags} chlorine=0.2,seq=1i {_local_ms(d1, 0, 10)}",
        f"{tags} chlorine=0.4,turbidity=1.5,seq=2i {_local_ms(d1, 23, 50)}",
        f"{tags} chlorine=0.6,seq=3i {_local_ms(d2, 23, 59)}",
        f"{tags} chlorine=0.9,seq=4i {_local_ms(d3, 12, 0)}",  # outside days=3 (today, d1, d2)
        f"telemetry,commune={COMMUNE},kind=pond,station={PRIVATE} do=4.5,seq=1i {_local_ms(d1, 12, 0)}",
    ])
    base = f"{portal}/api/v1/stations/{COMMUNE}/{PUBLIC}"
    body = _get(f"{base}/daily.json?days=3")
    assert body["commune"] == COMMUNE and body["station"] == PUBLIC and body["timezone"] == "Asia/Ho_Chi_Minh"
    got = {(r["date"], r["metric"]): (r["mean"], r["count"], r["unit"]) for r in body["daily"]}
    assert got == {
        (d2.isoformat(), "chlorine"): (pytest.approx(0.6), 1, "mg/L"),
        (d1.isoformat(), "chlorine"): (pytest.approx(0.3), 2, "mg/L"),
        (d1.isoformat(), "turbidity"): (pytest.approx(1.5), 1, contract.METRICS["turbidity"].unit),
    }
    with urllib.request.urlopen(f"{base}/daily.csv?days=3", timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(resp.read().decode())))
    assert [(r["date"], r["metric"], r["unit"], float(r["mean"]), int(r["count"])) for r in rows] == [
        (d2.isoformat(), "chlorine", "mg/L", pytest.approx(0.6), 1),
        (d1.isoformat(), "chlorine", "mg/L", pytest.approx(0.3), 2),
        (d1.isoformat(), "turbidity", contract.METRICS["turbidity"].unit, pytest.approx(1.5), 1),
    ]
    wider = _get(f"{base}/daily.json?days=4")["daily"]
    assert {"date": d3.isoformat(), "metric": "chlorine", "unit": "mg/L", "mean": 0.9, "count": 1} in wider
    for suffix in ("daily.csv", "daily.json"):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(f"{portal}/api/v1/stations/{COMMUNE}/{PRIVATE}/{suffix}")
        assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{base}/daily.json?days=0")
    assert err.value.code == 400
