"""A minimal Modbus RTU master on pyserial: exact error classes (timeout, crc, exception, bad frame).

Why not pymodbus' client: the gateway must tell "no answer" from "answer with a bad CRC" from
"device exception" to report them per device, and must never turn a failed read into a value;
one blocking request at a time on one port makes the timing (timeout, inter-frame gap) explicit.
pymodbus is used for the device simulator (simulator.py) and in the tests.
"""

from __future__ import annotations

import struct
import time

import serial

from edge.sources.base import SourceError

EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 5: "acknowledge", 6: "server device busy",
              10: "gateway path unavailable", 11: "gateway target failed to respond"}


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return struct.pack("<H", crc)


class RtuMaster:
    def __init__(self, port: str, baudrate: int = 9600, parity: str = "N", timeout_s: float = 0.5,
                 retries: int = 1, inter_frame_s: float = 0.01):
        self.port, self.baudrate, self.parity = port, baudrate, parity
        self.timeout_s, self.retries = timeout_s, retries
        # the spec's 3.5 character silence, never shorter than what the profile asks
        char_s = 11 / baudrate
        self.inter_frame_s = max(inter_frame_s, 3.5 * char_s)
        self.ser: serial.Serial | None = None
        self.last_io = 0.0

    def open(self) -> None:
        try:
            self.ser = serial.Serial(self.port, self.baudrate, parity=self.parity, bytesize=8, stopbits=1,
                                     timeout=self.timeout_s)
        except (serial.SerialException, OSError) as exc:
            raise SourceError("port", f"cannot open {self.port}: {exc}") from exc

    def close(self) -> None:
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def read_registers(self, address: int, function: int, start: int, count: int) -> list[int]:
        """Read ``count`` registers; retries on timeout/CRC, raises SourceError with the last failure."""
        last: SourceError | None = None
        for _ in range(self.retries + 1):
            try:
                return self._transact(address, function, start, count)
            except SourceError as exc:
                if exc.kind == "exception":
                    raise  # the device answered: asking again will not change its mind
                last = exc
        assert last is not None
        raise last

    def _transact(self, address: int, function: int, start: int, count: int) -> list[int]:
        if self.ser is None:
            self.open()
        ser = self.ser
        gap = self.inter_frame_s - (time.monotonic() - self.last_io)
        if gap > 0:
            time.sleep(gap)
        ser.reset_input_buffer()
        pdu = struct.pack(">BBHH", address, function, start, count)
        ser.write(pdu + crc16(pdu))
        ser.flush()
        try:
            head = ser.read(3)
            if len(head) < 3:
                raise SourceError("timeout", f"device {address}: no answer within {self.timeout_s * 1000:.0f} ms")
            if head[1] == function | 0x80:
                rest = ser.read(2)
                frame = head + rest
                if len(rest) < 2 or crc16(frame[:3]) != frame[3:5]:
                    raise SourceError("crc", f"device {address}: exception frame with bad CRC")
                code = head[2]
                raise SourceError("exception", f"device {address}: Modbus exception {code} "
                                  f"({EXCEPTIONS.get(code, 'unknown')})")
            need = head[2] + 2
            rest = ser.read(need)
            frame = head + rest
            if len(rest) < need:
                raise SourceError("timeout", f"device {address}: answer cut after {len(frame)} bytes")
            if crc16(frame[:-2]) != frame[-2:]:
                raise SourceError("crc", f"device {address}: CRC mismatch")
            if head[0] != address or head[1] != function or head[2] != 2 * count:
                raise SourceError("bad_frame", f"device {address}: unexpected answer {frame.hex()}")
            return list(struct.unpack(f">{count}H", frame[3:-2]))
        finally:
            self.last_io = time.monotonic()
