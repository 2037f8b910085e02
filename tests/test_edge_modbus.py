"""Modbus RTU source against pymodbus-simulated probes on a pty RS-485 bus (no hardware here).

Bus: address 1 and 3 = pH probes (profile ph-generic, holding registers, x100 / x10),
address 2 = optical DO probe (profile do-optical-generic, input registers, float32 word order CDAB),
address 4 answers with a broken CRC, address 5 has no device.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from edge.sources.base import Bound, SourceContext
from edge.sources.modbus_rtu.profiles import load_profile
from edge.sources.modbus_rtu.simulator import PtyBus
from edge.sources.modbus_rtu.source import ModbusRtuSource
from villagewatch.schema import ConfigError, Ctx
from villagewatch.sites import Station


def f32_cdab(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi]


class CollectingSink:
    """The gateway's sink interface, recording what the source hands over."""

    def __init__(self):
        self.readings: dict[str, list[dict]] = {}
        self.errors: list[tuple[str, str]] = []
        self.details: list[str] = []
        self.flags: dict[str, list[dict]] = {}

    def reading(self, station_id, ts_ms, metrics, flags=None):
        self.readings.setdefault(station_id, []).append(metrics)
        self.flags.setdefault(station_id, []).append(flags or {})

    def error(self, source, station_id, kind, detail):
        source.errors[kind] += 1
        self.errors.append((station_id, kind))
        self.details.append(detail)


def station(sid: str) -> Station:
    return Station("xa-thu", sid, "pond", sid, "", 10.0, 105.0, "gw", 1.0, ("ph", "temp", "do"))


@pytest.fixture
def bus():
    b = PtyBus({
        1: {3: [712, 281]},  # pH 7.12, 28.1 °C
        2: {4: f32_cdab(5.25) + f32_cdab(27.5)},  # DO 5.25 mg/L, 27.5 °C
        3: {3: [655, (-15) & 0xFFFF]},  # pH 6.55, -1.5 °C (signed)
        4: {3: [700, 250]},  # answers, but corrupted on the wire
    }, corrupt={4}).start()
    yield b
    b.stop()


def options(port: str, address: int, profile: str) -> dict:
    raw = {"port": port, "timeout_ms": 1000, "retries": 1, "inter_frame_ms": 5,
           "devices": [{"address": address, "profile": profile}]}
    return ModbusRtuSource.options_schema(raw, Ctx("test"))


def test_three_probes_two_profiles_values_scaling_and_errors(bus):
    bound = [Bound(station("ao-1"), options(bus.client_port, 1, "ph-generic")),
             Bound(station("ao-2"), options(bus.client_port, 2, "do-optical-generic")),
             Bound(station("ao-3"), options(bus.client_port, 3, "ph-generic")),
             Bound(station("ao-4"), options(bus.client_port, 4, "ph-generic")),
             Bound(station("ao-5"), options(bus.client_port, 5, "ph-generic"))]
    source = ModbusRtuSource(bus.client_port, bound, SourceContext(speed=1))
    sink = CollectingSink()

    async def one_round():
        task = asyncio.create_task(source.run(sink))
        deadline = asyncio.get_running_loop().time() + 60  # a loaded machine: costs time only on failure
        while len(sink.readings) < 3 or len(sink.errors) < 2:
            assert asyncio.get_running_loop().time() < deadline, (sink.readings, sink.errors)
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.close()

    asyncio.run(one_round())
    assert sink.readings["ao-1"][0] == pytest.approx({"ph": 7.12, "temp": 28.1})
    assert sink.readings["ao-2"][0] == pytest.approx({"do": 5.25, "temp": 27.5})
    assert sink.readings["ao-3"][0] == pytest.approx({"ph": 6.55, "temp": -1.5})
    # a bad CRC or silence is an error, never a reading
    assert "ao-4" not in sink.readings and "ao-5" not in sink.readings
    assert ("ao-4", "crc") in sink.errors
    assert ("ao-5", "timeout") in sink.errors
    assert source.errors["crc"] >= 1 and source.errors["timeout"] >= 1
    assert source.device_errors[4]["crc"] >= 1
    assert set(source.device_errors) == {4, 5}


def test_profiles_ship_for_the_issue_probe_kinds():
    metrics = {r.metric for name in ("ph-generic", "do-optical-generic", "ec-salinity-generic",
                                     "turbidity-generic", "water-temp-ds18b20-rs485", "ultrasonic-a02-rs485",
                                     "air-th-xy-md02", "pm-generic")
               for r in load_profile(name).registers}
    assert {"ph", "do", "ec", "salinity", "turbidity", "temp", "distance", "air_temp", "humidity",
            "pm25", "pm10"} <= metrics
    ec = next(r for r in load_profile("ec-salinity-generic").registers if r.metric == "ec")
    assert ec.decode([0x0001, 0x86A0]) == 100_000  # u32 big-endian words


def test_unknown_profile_is_a_config_error_with_the_list():
    with pytest.raises(ConfigError, match="ph-generic"):
        options("/dev/null", 1, "ph-genric")
