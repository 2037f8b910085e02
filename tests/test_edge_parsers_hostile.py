"""Hostile bytes from a local device never escape the edge's parsers as anything but a counted error.

An exception escaping paho's ``on_message`` stops its network thread, and with it every later
message of the bridge: one bad device would silence all of them. Property tests over arbitrary
bytes and arbitrary JSON, plus the shapes that broke the standard library's parser before.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sources.mqtt_bridge.mapping import MappingError, map_esphome, map_json
from edge.sources.serial_lines.protocol import FrameError, checksum, parse

FIELDS = {"temp": "BME280.Temperature", "do": "object.do", "rssi": "rxInfo.0.rssi"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@given(st.binary(max_size=2048))
def test_bridge_mapping_of_arbitrary_bytes_is_a_reading_or_a_mapping_error(payload):
    for call in (lambda: map_json(payload, FIELDS), lambda: map_esphome("t/sensor/x/state", payload, {"temp": "t/sensor/x/state"})):
        try:
            out = call()
        except MappingError:
            continue
        metrics = out[1] if isinstance(out, tuple) else out
        assert all(math.isfinite(v) for v in metrics.values())


@settings(max_examples=300)
@given(json_values, json_values, json_values)
def test_bridge_mapping_of_arbitrary_json_shapes(a, b, c):
    body = {"BME280": {"Temperature": a}, "object": {"do": b}, "rxInfo": [{"rssi": c}], "time": c}
    try:
        payload = json.dumps(body, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return
    try:
        ts, metrics = map_json(payload, FIELDS)
    except MappingError:
        return
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert ts is None or isinstance(ts, int)


@pytest.mark.parametrize("payload", [
    b"[" * 200_000,                                    # deeper than the parser's recursion limit
    b'{"object": {"do": ' + b"9" * 400 + b"}}",       # an integer too large for a float
    b'{"object": {"do": 1e999}}',                      # parses to inf
    b'{"object": {"do": "NaN"}}',
    b'{"time": "99999-01-01T00:00:00Z", "object": {"do": 5}}',
    b"x" * (70 * 1024),
])
def test_bridge_mapping_known_poison(payload):
    try:
        ts, metrics = map_json(payload, FIELDS)
    except MappingError:
        return
    assert all(math.isfinite(v) for v in metrics.values())


@given(st.binary(max_size=600))
def test_serial_line_of_arbitrary_bytes_is_a_frame_or_a_frame_error(line):
    try:
        frame = parse(line)
    except FrameError:
        return
    assert all(math.isfinite(v) for v in frame.metrics.values())


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="$*"), max_size=300))
def test_serial_line_with_a_valid_checksum_around_any_ascii_body(body):
    line = f"${body}*{checksum(body)}\n".encode()
    try:
        frame = parse(line)
    except FrameError:
        return
    assert frame.metrics and all(math.isfinite(v) for v in frame.metrics.values())


def test_bridge_keeps_reading_after_poison_from_a_real_broker(stack):
    """Poison first, then a good message on the same topic: the good one still arrives."""
    import asyncio

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from test_edge_sources import CollectingSink, run_until, station

    from edge.sources.base import Bound, SourceContext
    from edge.sources.mqtt_bridge.source import MqttBridgeSource
    from villagewatch.schema import Ctx

    topic = "application/app/device/0101/event/up"
    options = MqttBridgeSource.options_schema(
        {"broker": stack.mqtt_url, "format": "chirpstack", "topic": topic,
         "fields": {"do": "object.do"}}, Ctx("t"))
    src = MqttBridgeSource(stack.mqtt_url, [Bound(station("ao-a1", ("do",)), options)], SourceContext())

    class OrderedSink(CollectingSink):
        """Keeps the order of readings and errors: the proof is a good reading *after* a poison."""

        def __init__(self):
            super().__init__()
            self.events: list[str] = []

        def reading(self, *args, **kwargs):
            super().reading(*args, **kwargs)
            self.events.append("reading")

        def error(self, *args, **kwargs):
            super().error(*args, **kwargs)
            self.events.append("error")

        def good_after_poison(self):
            return "error" in self.events and "reading" in self.events[self.events.index("error"):]

    sink = OrderedSink()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", stack.mosquitto.port)
    pub.loop_start()
    poison = [b"[" * 200_000, b'{"object": {"do": ' + b"9" * 400 + b"}}"]

    # not retained, and the source subscribes when it connects: publish poison + good in rounds
    # until a good reading arrives after a poison (the source may subscribe between a round's
    # poison and its good message, so the first reading alone proves nothing)
    async def driver():
        runner = asyncio.create_task(run_until(src, sink, sink.good_after_poison, timeout=60))
        while not runner.done():
            for p in poison:
                pub.publish(topic, p, qos=1)
            pub.publish(topic, b'{"object": {"do": 4.5}}', qos=1)
            await asyncio.wait([runner], timeout=0.5)
        await runner

    asyncio.run(driver())
    pub.loop_stop()
    assert sink.readings[0][0] == "ao-a1" and sink.readings[0][2] == {"do": 4.5}
    kinds = {k for _, k in sink.errors}
    assert kinds == {"bad_payload"}, sink.errors
