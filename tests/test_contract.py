"""Unit tests of the wire contract (villagewatch/contract.py) and the line-protocol serializer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from villagewatch import contract, lineproto

NOW = 1_780_000_000_000


def decode(body, station="ao-1", now=NOW):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return contract.decode_telemetry("xa-1", station, payload, now)


def test_topics_and_parse_roundtrip():
    t = contract.telemetry_topic("tan-thuan-dong", "ao-ca-tra-a1")
    assert t == "vw/v1/tan-thuan-dong/ao-ca-tra-a1/telemetry"
    assert contract.parse_topic(t) == contract.TopicInfo("telemetry", "tan-thuan-dong", station="ao-ca-tra-a1")
    g = contract.gateway_status_topic("xa", "gw-1")
    assert g == "vw/v1/xa/_gw/gw-1/status"
    assert contract.parse_topic(g).gateway == "gw-1"
    assert contract.parse_topic(contract.station_status_topic("xa", "s1")).kind == "station_status"
    assert contract.alerts_topic("xa", "s1") == "vw/v1/xa/_alerts/s1"
    assert contract.shared_subscription("ingest", contract.TELEMETRY_SUBSCRIPTION) == "$share/ingest/vw/v1/+/+/telemetry"


@pytest.mark.parametrize("bad", ["Xa", "_gw", "", "a" * 65, "a b", "-a", "xã"])
def test_ids_are_checked(bad):
    with pytest.raises(ValueError):
        contract.telemetry_topic(bad, "s1")
    with pytest.raises(contract.TopicError):
        contract.parse_topic(f"vw/v1/{bad}/s1/telemetry")


def test_reserved_segments_cannot_be_ids():
    assert not contract.valid_id("_alerts")
    assert contract.valid_id("a" * 64)


def test_valid_payload_roundtrip_and_rfc3339():
    r = contract.Reading("xa-1", "ao-1", NOW - 1000, 5, {"do": 4.25}, "gw-1", {"do": ["spike"]})
    d = contract.decode_telemetry("xa-1", "ao-1", r.to_payload(), NOW)
    assert d.rejections == [] and d.reading == r
    d = decode({"ts": "2026-05-28T20:26:39.5+07:00", "seq": 0, "metrics": {"ph": 7}})
    assert d.reading.ts_ms == 1_779_974_799_500
    assert d.reading.metrics == {"ph": 7.0}


@pytest.mark.parametrize("body,reason", [
    (b"\xff", contract.R_BAD_UTF8),
    (b"[1,2", contract.R_BAD_JSON),
    ([1, 2], contract.R_BAD_TYPE),
    ({"ts": NOW, "seq": -1, "metrics": {"ph": 7}}, contract.R_BAD_TYPE),
    ({"ts": NOW, "seq": True, "metrics": {"ph": 7}}, contract.R_BAD_TYPE),
    ({"ts": True, "seq": 1, "metrics": {"ph": 7}}, contract.R_BAD_TYPE),
    ({"ts": "2026-05-28T20:26:39", "seq": 1, "metrics": {"ph": 7}}, contract.R_BAD_TYPE),
    ({"seq": 1, "metrics": {"ph": 7}}, contract.R_TS_MISSING),
    ({"ts": NOW + 301_000, "seq": 1, "metrics": {"ph": 7}}, contract.R_TS_FUTURE),
    ({"ts": 946_684_799_999, "seq": 1, "metrics": {"ph": 7}}, contract.R_TS_TOO_OLD),
    ({"ts": NOW, "seq": 1, "metrics": {}}, contract.R_NO_METRICS),
    ({"ts": NOW, "seq": 1, "metrics": {"ph": 7}, "gw": "GW 1"}, contract.R_BAD_TYPE),
    (b'{"ts": %d, "seq": 1, "metrics": {"ph": Infinity}}' % NOW, contract.R_NON_FINITE),
    ({"ts": NOW, "seq": 1, "metrics": {"ph": 14.01}}, contract.R_OUT_OF_RANGE),
    ({"ts": NOW, "seq": 1, "metrics": {"ph": None}}, contract.R_BAD_TYPE),
    ({"ts": NOW, "seq": 1, "metrics": {"ph": False}}, contract.R_BAD_TYPE),
    ({"ts": NOW, "seq": 1, "metrics": {"PH": 7}}, contract.R_UNKNOWN_METRIC),
])
def test_rejection_rules(body, reason):
    d = decode(body)
    assert d.reading is None
    assert [r.reason for r in d.rejections] == [reason]
    assert d.rejections[0].detail


def test_oversized_payload():
    d = decode(b"{" + b" " * contract.MAX_PAYLOAD_BYTES + b"}")
    assert d.rejections[0].reason == contract.R_TOO_LARGE


def test_edges_are_accepted():
    assert decode({"ts": NOW + 300_000, "seq": 0, "metrics": {"ph": 14}}).reading is not None
    assert decode({"ts": contract.MIN_TS_MS, "seq": 0, "metrics": {"ph": 0}}).reading is not None


def test_partly_good_message_keeps_good_metrics():
    d = decode({"ts": NOW, "seq": 3, "metrics": {"do": 5, "ph": 99, "xyz": 1}, "flags": {"do": ["spike"], "ph": ["x"]}})
    assert d.reading.metrics == {"do": 5.0}
    assert d.reading.flags == {"do": ["spike"]}
    assert sorted(r.metric for r in d.rejections) == ["ph", "xyz"]


def test_required_metric_registry():
    required = {"ph": "", "do": "mg/L", "temp": "°C", "turbidity": "NTU", "ec": "µS/cm", "salinity": "‰",
                "chlorine": "mg/L", "nh4": "mg/L", "cod": "mg/L", "bod5": "mg/L", "tss": "mg/L", "pm25": "µg/m³",
                "pm10": "µg/m³", "air_temp": "°C", "humidity": "%", "rain": "mm", "wind": "m/s", "noise": "dBA",
                "level": "m", "fill": "%", "bin_temp": "°C", "battery": "V", "rssi": "dBm"}
    for name, unit in required.items():
        m = contract.METRICS[name]
        assert m.unit == unit and m.lo < m.hi and m.label_vi and m.label_en


def test_protocol_doc_lists_every_metric_and_reason():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name, m in contract.METRICS.items():
        assert re.search(rf"\| `{name}` \|[^\n]*{re.escape(m.unit) if m.unit else ''}", doc), name
    for reason in contract.REJECTION_REASONS:
        assert f"`{reason}`" in doc, reason


def test_line_protocol_escaping_and_idempotent_point():
    r = contract.Reading("xa 1", "ao,1", NOW, 7, {"do": 4.5, "ph": 7.0}, flags={"do": ["spike", "flatline"]})
    line = lineproto.telemetry_line(r, "pond")
    assert line == ('telemetry,commune=xa\\ 1,kind=pond,station=ao\\,1 do=4.5,ph=7.0,seq=7i,'
                    'flags="do:spike,flatline" 1780000000000')
    assert lineproto.telemetry_line(r, "pond") == line
    assert lineproto.line("m", {"a": "x=y"}, {"s": 'q"\\'}, 1) == 'm,a=x\\=y s="q\\"\\\\" 1'
    with pytest.raises(ValueError):
        lineproto.format_field(float("nan"))
