"""Modbus RTU over RS-485: several devices (addresses) per bus, one owner per bus (port)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from edge.sources.base import Bound, Polled, PolledSource, SourceError
from edge.sources.modbus_rtu.profiles import DISTANCE, Profile, load_profile
from edge.sources.modbus_rtu.rtu import RtuMaster
from edge.sources.modbus_rtu.sanity import check_order
from villagewatch.schema import Ctx, Key, ListOf, Map, Num, OneOf, Str


def _profile(value: Any, ctx: Ctx) -> Profile:
    try:
        return load_profile(Str(what="profile name")(value, ctx))
    except Exception as exc:
        raise ctx.error(str(exc)) from exc


DEVICE = Map([
    Key("address", Num(1, 247, integer=True)),
    Key("profile", _profile, doc="file name in edge/sources/modbus_rtu/profiles/ or a path"),
], name="device")

DISTANCE_TO = Map([
    Key("metric", OneOf("fill", "level")),
    Key("empty_m", Num(0, 20), required=False, doc="fill: distance when the bin is empty"),
    Key("full_m", Num(0, 20), required=False, doc="fill: distance when the bin is full"),
    Key("sensor_level_m", Num(-10, 50), required=False, doc="level: elevation of the sensor face"),
], name="distance conversion")


class ModbusRtuSource(PolledSource):
    type_name: ClassVar[str] = "modbus_rtu"
    options_schema: ClassVar[Map] = Map([
        Key("port", Str(what="serial port"), doc="e.g. /dev/ttyUSB0"),
        Key("baudrate", OneOf(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), required=False, default=9600),
        Key("parity", OneOf("N", "E", "O"), required=False, default="N"),
        Key("timeout_ms", Num(20, 10_000), required=False, default=500),
        Key("retries", Num(0, 5, integer=True), required=False, default=1),
        Key("inter_frame_ms", Num(0, 1000), required=False, default=10),
        Key("devices", ListOf(DEVICE, min_len=1)),
        Key("distance_to", DISTANCE_TO, required=False),
    ], name="modbus_rtu source options")

    @classmethod
    def bus_key(cls, options: dict[str, Any]) -> str:
        return options["port"]

    def __init__(self, key, bound, ctx):
        super().__init__(key, bound, ctx)
        first = bound[0].options  # the bus settings of the first station on the port apply to all
        self.master = RtuMaster(first["port"], first["baudrate"], first["parity"], first["timeout_ms"] / 1000,
                                first["retries"], first["inter_frame_ms"] / 1000)
        self.device_errors: dict[int, dict[str, int]] = {}

    async def poll(self, b: Bound, now_ms: int) -> Polled:
        # blocking serial I/O in a worker thread; the scheduler awaits it, so requests never overlap
        return await asyncio.to_thread(self._read_station, b)

    def _read_station(self, b: Bound) -> Polled:
        metrics: dict[str, float] = {}
        flags: dict[str, list[str]] = {}
        order_errors: list[SourceError] = []
        failures: list[SourceError] = []
        for dev in b.options["devices"]:
            address, profile = dev["address"], dev["profile"]
            for fc, start, count, regs in profile.blocks():
                try:
                    words = self.master.read_registers(address, fc, start, count)
                except SourceError as exc:
                    errs = self.device_errors.setdefault(address, {})
                    errs[exc.kind] = errs.get(exc.kind, 0) + 1
                    failures.append(exc)
                    continue
                for r in regs:
                    i = r.address - start
                    raw = words[i:i + r.count]
                    metrics[r.metric] = r.decode(raw)
                    verdict = check_order(r, raw)
                    if verdict is not None:
                        # another brand's probe behind the same register map: not evidence
                        flags[r.metric] = ["suspect"]
                        order_errors.append(SourceError("decode_order", f"device {address}: "
                                                        + verdict.describe(profile.model)))
        if DISTANCE in metrics:
            d = metrics.pop(DISTANCE)
            moved = flags.pop(DISTANCE, None)
            conv_metric = (b.options.get("distance_to") or {}).get("metric")
            if moved and conv_metric:
                flags[conv_metric] = moved
            conv = b.options.get("distance_to")
            if conv and conv["metric"] == "fill" and conv.get("empty_m") is not None and conv.get("full_m") is not None:
                span = conv["empty_m"] - conv["full_m"]
                metrics["fill"] = min(100.0, max(0.0, (conv["empty_m"] - d) / span * 100)) if span else 0.0
            elif conv and conv["metric"] == "level" and conv.get("sensor_level_m") is not None:
                metrics["level"] = conv["sensor_level_m"] - d
        for exc in order_errors if failures else ():
            self.errors[exc.kind] += 1  # reported with the failure below
        if failures and not metrics:
            raise failures[0]
        if failures:
            # part of the station answered: send what was read, count the rest
            for exc in failures[1:]:
                self.errors[exc.kind] += 1
            raise SourceError(failures[0].kind, failures[0].detail, partial=metrics, flags=flags)
        return Polled(metrics, flags, order_errors)

    async def close(self) -> None:
        self.master.close()
