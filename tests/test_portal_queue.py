"""Feedback queue against a real Mosquitto: residents file, staff of the commune see, assign, reply and
link; the resident sees the reply; another commune's operator sees nothing of it (list, item,
photo, stream); a new feedback is published on MQTT for notifiers and pushed to staff pages."""

from __future__ import annotations

import json
import threading
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from test_portal_api import _jpeg_with_exif, _multipart
from test_portal_scoping import TAP, A, B, _stream, scoped, two_communes  # noqa: F401 - fixtures
from test_portal_signin import PASSWORD, Client

from villagewatch import contract


def _file(base: str, commune: str, text: str, photo: bytes | None = None) -> str:
    body, ctype = _multipart({"commune": commune, "category": "mui_hoi", "text": text}, photo)
    req = urllib.request.Request(f"{base}/api/v1/feedback", data=body, method="POST", headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return json.loads(resp.read())["code"]


def _read_event(resp, name: str) -> dict:
    event = None
    while True:
        line = resp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])


@pytest.mark.integration
def test_portal_feedback_queue_assign_reply_link_and_scope(stack, scoped):  # noqa: F811
    base, portal = scoped
    store = portal.signin.store
    store.put_account("op-b", "operator", [B], PASSWORD)
    op_a, op_b, insp, resident = Client(base), Client(base), Client(base), Client(base)
    for c, user in ((op_a, "op-a"), (op_b, "op-b"), (insp, "insp")):
        assert c.login(user, PASSWORD)[0] == 303
    # notifications: MQTT event for notifiers, SSE event to staff pages of that commune only
    got: list[tuple[str, dict]] = []
    arrived = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.on_message = lambda _c, _u, m: (got.append((m.topic, json.loads(m.payload))), arrived.set())
    sub.connect("127.0.0.1", stack.mosquitto.port)
    sub.subscribe(f"{contract.TOPIC_ROOT}/+/_feedback/+", qos=1)
    sub.loop_start()
    stream_a, stream_b = _stream(base, op_a), _stream(base, op_b)
    try:
        assert subscribed.wait(30)
        code_a = _file(base, A, "Mùi hôi từ kênh ấp 2", _jpeg_with_exif())
        assert arrived.wait(30)
        code_b = _file(base, B, "Rác thải ở chợ")
        assert _read_event(stream_a, "feedback")["code"] == code_a
        assert _read_event(stream_b, "feedback")["code"] == code_b  # B's stream: A's event was never sent
        assert got[0][0] == f"{contract.TOPIC_ROOT}/{A}/_feedback/{code_a}"
        assert got[0][1]["code"] == code_a and got[0][1]["url"].endswith(f"/xu-ly/{code_a}")
    finally:
        sub.loop_stop()
        sub.disconnect()
        stream_a.close()
        stream_b.close()

    # scope: the list, the item and the photo of B are not there for A's operator
    _, _, page = op_a.request("/xu-ly")
    assert code_a in page and code_b not in page
    assert op_a.request(f"/xu-ly/{code_b}")[0] == 404 and op_a.request(f"/xu-ly/{code_b}/anh")[0] == 404
    _, _, page = insp.request("/xu-ly?status=new")
    assert code_a in page and code_b in page
    assert resident.request("/xu-ly")[0] == 302  # residents follow by code only
    status, headers, photo = op_a.request(f"/xu-ly/{code_a}/anh")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"

    # refusals leave the item unchanged
    token = insp.token(f"/xu-ly/{code_a}")
    base_form = {"csrf": token, "status": "in_progress", "assignee": "", "station": "", "alert_id": "", "reply": ""}
    assert insp.request(f"/xu-ly/{code_a}", {**base_form, "csrf": ""})[0] == 403
    assert insp.request(f"/xu-ly/{code_a}", {**base_form, "assignee": "op-b"})[0] == 400  # cannot see A
    assert insp.request(f"/xu-ly/{code_a}", {**base_form, "station": "khong-co"})[0] == 400
    assert insp.request(f"/xu-ly/{code_a}", {**base_form, "alert_id": "12; DROP"})[0] == 400
    assert insp.request(f"/xu-ly/{code_a}", {**base_form, "status": "closed"})[0] == 400
    assert op_b.request(f"/xu-ly/{code_a}", {**base_form, "csrf": op_b.token("/xu-ly")})[0] == 404
    assert portal.feedback.get(code_a)["status"] == "new"

    reply = "Đã cử cán bộ kiểm tra kênh ấp 2 chiều nay."
    status, headers, _ = insp.request(f"/xu-ly/{code_a}", {**base_form, "assignee": "op-a", "station": TAP,
                                                          "alert_id": "#12", "reply": reply})
    assert status == 303 and headers["Location"] == f"/xu-ly/{code_a}"
    item = portal.feedback.get(code_a)
    assert (item["status"], item["assignee"], item["station"], item["alert_id"], item["reply"]) == (
        "in_progress", "op-a", TAP, 12, reply)
    _, _, page = op_a.request(f"/xu-ly/{code_a}")
    assert "Giao cho: op-a" in page and "Trạng thái: Đang xử lý" in page and "Trả lời: " in page  # history
    # a person reads station names, not ids, in the item and its history
    assert "Trạm liên quan: Nhà máy nước Tân Thuận" in page and f"Trạm liên quan: {TAP}" not in page
    assert f">{TAP}</a>" not in page
    _, _, page = resident.request(f"/phan-anh/{code_a.lower()}")
    assert reply in page and "Đang xử lý" in page
    _, _, page = op_a.request("/xu-ly?status=in_progress")
    assert code_a in page and code_b not in page
    status, _, body = resident.request(f"/api/v1/feedback/{code_a}")
    shown = json.loads(body)
    assert status == 200 and shown["reply"] == reply and shown["status"] == "in_progress"
    assert not {"phone", "lat", "lon", "text", "assignee"} & set(shown)  # the code shows status and reply only
    assert resident.request("/api/v1/feedback/NOPE1234")[0] == 404
