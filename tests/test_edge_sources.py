"""Serial-line and MQTT-bridge sources: real pty serial port, real Mosquitto, documented payloads."""

from __future__ import annotations

import asyncio
import os
import tty

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.sources.base import Bound, SourceContext
from edge.sources.mqtt_bridge.mapping import MappingError, map_esphome, map_json
from edge.sources.mqtt_bridge.source import MqttBridgeSource
from edge.sources.serial_lines.protocol import FrameError, encode, parse
from edge.sources.serial_lines.source import SerialLinesSource
from villagewatch import contract
from villagewatch.schema import Ctx
from villagewatch.sites import Station

# Payload shapes from the projects' documentation:
# - Tasmota: tele/<topic>/SENSOR with a sensor object, e.g. BME280 Temperature/Humidity and TempUnit
#   (https://tasmota.github.io/docs/JSON-Status-Responses/ , StatusSNS/SENSOR messages)
# - ESPHome: <prefix>/sensor/<name>/state, value as text (esphome mqtt_component.h, default topic
#   "<prefix>/<component type>/<object id>/state": https://esphome.io/api/mqtt__component_8h_source.html)
# - ChirpStack v4: application/<id>/device/<devEui>/event/up, JSON of integration.UplinkEvent with
#   deviceInfo, time, rxInfo and the decoded `object` (chirpstack/api/proto/integration/integration.proto)
TASMOTA = (b'{"Time":"2024-05-02T07:15:00","BME280":{"Temperature":31.4,"Humidity":74.2,'
           b'"DewPoint":26.1,"Pressure":1006.3},"PressureUnit":"hPa","TempUnit":"C"}')
CHIRPSTACK = (b'{"deduplicationId":"3ac7e3c4-4401-4b8d-9386-a5c902f9202d","time":"2024-05-02T00:15:00.123456+00:00",'
              b'"deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"ChirpStack",'
              b'"applicationId":"17c82e96-be03-4f38-aef3-f83d48582d97","applicationName":"ao-nuoi",'
              b'"deviceProfileId":"14855bf7-d10d-4aee-b618-ebfcb64dc7ad","deviceProfileName":"do-node",'
              b'"deviceName":"ao-a1","devEui":"0101010101010101","tags":{}},'
              b'"devAddr":"00189440","adr":true,"dr":1,"fCnt":10,"fPort":1,"confirmed":false,'
              b'"data":"AZwCHg==","object":{"do":4.12,"temperature":29.4,"battery":3.61},'
              b'"rxInfo":[{"gatewayId":"0016c001f153a14c","uplinkId":4217106255,"rssi":-97,"snr":7.5}],'
              b'"txInfo":{"frequency":923200000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":10}}}}')


def station(sid: str, metrics: tuple[str, ...]) -> Station:
    return Station("xa-thu", sid, "pond", sid, "", 10.0, 105.0, "gw", 1.0, metrics)


class CollectingSink:
    def __init__(self):
        self.readings: list[tuple[str, int, dict]] = []
        self.errors: list[tuple[str | None, str]] = []

    def reading(self, station_id, ts_ms, metrics, flags=None):
        self.readings.append((station_id, ts_ms, metrics))

    def error(self, source, station_id, kind, detail):
        source.errors[kind] += 1
        self.errors.append((station_id, kind))


async def run_until(source, sink, done, timeout=60.0):
    task = asyncio.create_task(source.run(sink))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done():
            assert loop.time() < deadline, (sink.readings, sink.errors)
            assert not task.done() or task.exception() is None, task.exception()
            await asyncio.sleep(0.02)
    finally:
        await source.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ------------------------------------------------------------------ serial lines

def test_line_protocol_roundtrip_and_errors():
    assert parse(encode("ao-a1", {"do": 5.42, "temp": 28.1})).metrics == {"do": 5.42, "temp": 28.1}
    for bad, kind in [(b"$VW,ao-a1,do=5.42*00", "checksum"), (b"VW,ao-a1,do=1*00", "no_start"),
                      (b"$VW,ao-a1,do=5.42", "no_checksum"), (b"\xff\xfe", "not_ascii")]:
        with pytest.raises(FrameError) as exc:
            parse(bad)
        assert exc.value.kind == kind


def test_serial_lines_on_a_pty_count_framing_errors_and_keep_going():
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    opts = SerialLinesSource.options_schema({"port": port, "baudrate": 9600}, Ctx("test"))
    opts_b = SerialLinesSource.options_schema({"port": port, "node": "n7"}, Ctx("test"))
    src = SerialLinesSource(port, [Bound(station("ao-a1", ("do", "temp")), opts),
                                   Bound(station("ao-b", ("ph",)), opts_b)], SourceContext())
    sink = CollectingSink()

    async def main():
        async def feed():
            # pyserial flushes the input when it opens the port: write only once it is open
            assert await asyncio.to_thread(src.opened.wait, 60), "the source never opened the port"
            os.write(master, encode("ao-a1", {"do": 5.42, "temp": 28.1}))
            os.write(master, b"$VW,ao-a1,do=9.99*00\n")  # corrupted on the wire
            os.write(master, b"\x00\x13garbage\n")
            os.write(master, encode("unknown", {"do": 1.0}))
            os.write(master, encode("n7", {"ph": 7.1}))
        feeder = asyncio.create_task(feed())
        await run_until(src, sink, lambda: len(sink.readings) >= 2 and len(sink.errors) >= 3)
        await feeder

    asyncio.run(main())
    assert [(s, m) for s, _, m in sink.readings] == [("ao-a1", {"do": 5.42, "temp": 28.1}), ("ao-b", {"ph": 7.1})]
    assert src.errors == {"checksum": 1, "no_start": 1, "unknown_node": 1}
    assert src.framing_errors == 3
    os.close(master)
    os.close(slave)


# ------------------------------------------------------------------ MQTT bridge

def test_documented_payloads_map_to_contract_telemetry():
    ts, m = map_json(TASMOTA, {"air_temp": "BME280.Temperature", "humidity": "BME280.Humidity"})
    assert ts is None and m == {"air_temp": 31.4, "humidity": 74.2}
    ts, m = map_json(CHIRPSTACK, {"do": "object.do", "temp": "object.temperature", "battery": "object.battery",
                                  "rssi": "rxInfo.0.rssi"})
    assert ts == contract.parse_ts("2024-05-02T00:15:00.123+00:00")
    assert m == {"do": 4.12, "temp": 29.4, "battery": 3.61, "rssi": -97.0}
    assert map_esphome("ao-a2/sensor/oxy_hoa_tan/state", b"5.10",
                       {"do": "ao-a2/sensor/oxy_hoa_tan/state"}) == {"do": 5.1}
    with pytest.raises(MappingError):
        map_esphome("t", b"nan", {"do": "t"})
    # what the gateway publishes for them passes the contract's own validation
    reading = contract.Reading("xa-thu", "ao-a1", ts, 3, m, "gw")
    decoded = contract.decode_telemetry("xa-thu", "ao-a1", reading.to_payload(), ts + 1000)
    assert decoded.reading is not None and not decoded.rejections


@pytest.mark.integration
def test_bridge_reads_tasmota_esphome_chirpstack_from_a_real_broker(stack):
    broker = stack.mqtt_url
    schema = MqttBridgeSource.options_schema
    bound = [
        Bound(station("kk-a", ("air_temp", "humidity")), schema(
            {"broker": broker, "format": "tasmota", "topic": "tele/tasmota_C26D46/SENSOR",
             "fields": {"air_temp": "BME280.Temperature", "humidity": "BME280.Humidity"}}, Ctx("t"))),
        Bound(station("ao-a2", ("do",)), schema(
            {"broker": broker, "format": "esphome", "fields": {"do": "ao-a2/sensor/oxy_hoa_tan/state"}}, Ctx("t"))),
        Bound(station("ao-a1", ("do", "temp", "rssi")), schema(
            {"broker": broker, "format": "chirpstack",
             "topic": "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up",
             "fields": {"do": "object.do", "temp": "object.temperature", "rssi": "rxInfo.0.rssi"}}, Ctx("t"))),
        Bound(station("kk-b", ("air_temp",)), schema(
            {"broker": broker, "format": "tasmota", "topic": "tele/tasmota_hong/SENSOR",
             "fields": {"air_temp": "AM2301.Temperature"}}, Ctx("t"))),
    ]
    src = MqttBridgeSource(broker, bound, SourceContext())
    sink = CollectingSink()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", stack.mosquitto.port)
    pub.loop_start()

    async def main():
        async def feed():
            # retained, so the order of subscribe and publish does not matter
            pub.publish("tele/tasmota_C26D46/SENSOR", TASMOTA, qos=1, retain=True)
            pub.publish("ao-a2/sensor/oxy_hoa_tan/state", b"5.10", qos=1, retain=True)
            pub.publish(bound[2].options["topic"], CHIRPSTACK, qos=1, retain=True)
            pub.publish("tele/tasmota_hong/SENSOR", b"{not json", qos=1, retain=True)
        await feed()
        await run_until(src, sink, lambda: len(sink.readings) >= 3 and sink.errors)

    asyncio.run(main())
    pub.loop_stop()
    got = {s: m for s, _, m in sink.readings}
    assert got["kk-a"] == {"air_temp": 31.4, "humidity": 74.2}
    assert got["ao-a2"] == {"do": 5.1}
    assert got["ao-a1"] == {"do": 4.12, "temp": 29.4, "rssi": -97.0}
    assert sink.errors == [("kk-b", "bad_payload")]


def _sources_in(node):
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for v in node.values():
            yield from _sources_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from _sources_in(v)


def test_every_sample_config_validates_against_its_source_schema():
    from pathlib import Path

    from edge.processing import PROCESSING_KEYS, PROCESSING_SCHEMA
    from edge.sources import SOURCES, source_class
    from villagewatch.schema import load_yaml

    root = Path(__file__).resolve().parent.parent / "edge" / "sources"
    for type_name in SOURCES:
        sample = root / type_name / "sample.yaml"
        assert (root / type_name / "README.md").is_file()
        found = list(_sources_in(load_yaml(sample)))
        assert found, f"{sample} has no source mapping"
        for src in found:
            cls = source_class(src["type"])
            cls.options_schema({k: v for k, v in src.items() if k not in (*PROCESSING_KEYS, "type")}, Ctx(str(sample)))
            PROCESSING_SCHEMA({k: v for k, v in src.items() if k in PROCESSING_KEYS}, Ctx(str(sample)))


def test_pilot_site_gateways_pass_the_check(stack, tmp_path, monkeypatch):
    from pathlib import Path

    from app.cli import main

    monkeypatch.setenv("VW_MQTT_URL", stack.mqtt_url)  # --check also connects to the broker

    site = str(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
    for gw in ("gw-trung-tam", "gw-ao-nuoi", "gw-dong-ruong"):
        assert main(["edge", "--site", site, "--gateway", gw,
                     "--data-dir", str(tmp_path / gw), "--check"]) == 0
    assert main(["edge", "--site", site, "--gateway", "gw-ao-nuio",
                 "--data-dir", str(tmp_path / "x"), "--check"]) == 2
