"""Serial line source: microcontroller nodes write checksummed lines (protocol.py) on a serial port."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import serial

from edge.sources.base import Source
from edge.sources.serial_lines.protocol import MAX_LINE, FrameError, parse
from villagewatch.schema import Key, Map, Num, Str


class SerialLinesSource(Source):
    type_name: ClassVar[str] = "serial_lines"
    options_schema: ClassVar[Map] = Map([
        Key("port", Str(what="serial port"), doc="e.g. /dev/ttyUSB0"),
        Key("baudrate", Num(300, 2_000_000, integer=True), required=False, default=115200),
        Key("node", Str(what="node id"), required=False, default=None,
            doc="node id in the lines (default: the station id)"),
    ], name="serial_lines source options")

    @classmethod
    def bus_key(cls, options: dict[str, Any]) -> str:
        return options["port"]

    def __init__(self, key, bound, ctx):
        super().__init__(key, bound, ctx)
        self.by_node = {(b.options["node"] or b.station.id): b.station.id for b in bound}
        self.baudrate = bound[0].options["baudrate"]
        self._stop = threading.Event()
        self.opened = threading.Event()  # set while the port is open (status, tests)
        self.framing_errors = 0

    async def run(self, sink) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._read_loop, loop, sink)

    def _read_loop(self, loop: asyncio.AbstractEventLoop, sink) -> None:
        while not self._stop.is_set():
            try:
                with serial.Serial(self.key, self.baudrate, timeout=0.2) as port:
                    self.opened.set()
                    buf = b""
                    while not self._stop.is_set():
                        buf += port.read(port.in_waiting or 1)
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            if line.strip():
                                loop.call_soon_threadsafe(self._line, sink, line, self.ctx.now_ms())
                        if len(buf) > MAX_LINE:
                            loop.call_soon_threadsafe(self._framing, sink, None, "too_long", f"{len(buf)} bytes without newline")
                            buf = b""
            except (serial.SerialException, OSError) as exc:
                self.opened.clear()
                loop.call_soon_threadsafe(self._framing, sink, None, "port", f"{self.key}: {exc}")
                self._stop.wait(2.0)  # cable unplugged: try again, never give up

    def _framing(self, sink, station: str | None, kind: str, detail: str) -> None:
        if kind != "port":
            self.framing_errors += 1
        sink.error(self, station, kind, detail)

    def _line(self, sink, line: bytes, now_ms: int) -> None:
        try:
            frame = parse(line)
        except FrameError as exc:
            self._framing(sink, None, exc.kind, exc.detail)
            return
        station = self.by_node.get(frame.node)
        if station is None:
            self._framing(sink, None, "unknown_node", f"node {frame.node!r} is not bound to a station")
            return
        sink.reading(station, now_ms, frame.metrics)

    async def close(self) -> None:
        self._stop.set()
