"""A simulated ESP32 ROM serial bootloader on a pseudo-terminal.

STAND-IN: no ESP32 exists on this machine, so tests talk to this instead. It speaks the ROM
loader's side of esptool's serial protocol as documented by Espressif (SLIP framing; request
``<BBHI`` = direction 0, command, length, checksum; response ``<BBHI`` = direction 1, command,
length, value, then data and 4 status bytes as the ESP32 ROM sends them) for the commands that a
no-stub ``detect_chip → attach_flash → write_flash → verify_flash → reset`` uses:
SYNC 0x08, WRITE_REG 0x09, READ_REG 0x0a, SPI_SET_PARAMS 0x0b, SPI_ATTACH 0x0d,
CHANGE_BAUDRATE 0x0f, FLASH_BEGIN 0x02, FLASH_DATA 0x03, FLASH_END 0x04, SPI_FLASH_MD5 0x13.
Unsupported commands (GET_SECURITY_INFO 0x14, the stub's MEM_* upload) are answered with the
ROM's "invalid message" status, exactly like an ESP32 ROM.

The flash is a bytearray the test can inspect (e.g. parse the NVS partition that was written).
FLASH_END ("run user code", what esptool's soft reset sends) boots the "application": the
simulator prints a boot log on the serial line and calls ``on_boot(sim)``, where a test can act as
the firmware (read its NVS, connect to MQTT). ``silent=True`` plays a chip that is not in download
mode (BOOT button not held): it never answers, so esptool cannot connect.

Real pty limits: DTR/RTS reset lines do not exist on a pty (ioctl ENOTTY), so callers connect
with ``connect_mode="no-reset"`` and reset with ``reset_mode="soft-reset"``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import select
import struct
import threading
import time
import tty
from collections.abc import Callable

SYNC, WRITE_REG, READ_REG, SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x0F
FLASH_BEGIN, FLASH_DATA, FLASH_END, SPI_FLASH_MD5 = 0x02, 0x03, 0x04, 0x13

ESP32_MAGIC_REG, ESP32_MAGIC = 0x40001000, 0x00F01D83
SPI_BASE = 0x3FF42000
SPI_CMD_REG, SPI_USR2_REG, SPI_W0_REG = SPI_BASE + 0x00, SPI_BASE + 0x24, SPI_BASE + 0x80
FLASH_ID_WINBOND_4MB = 0x1640EF  # manufacturer 0xEF, device 0x4016 → 4 MB
ROM_INVALID_RECV_MSG, ROM_BAD_DATA_CHECKSUM = 0x05, 0x07


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class SimulatedEsp32RomLoader:
    def __init__(self, flash_size: int = 4 * 1024 * 1024, on_boot: Callable[[SimulatedEsp32RomLoader], None] | None = None,
                 silent: bool = False, corrupt_writes: bool = False):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: a UART is a byte pipe
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.flash = bytearray(b"\xff" * flash_size)
        self.regs: dict[int, int] = {}
        self.on_boot = on_boot
        self.silent = silent
        self.corrupt_writes = corrupt_writes  # flip a bit in written data: verify must catch it
        self.commands: list[int] = []
        self.boots = 0
        self._write: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rom-loader-sim", daemon=True)
        self._out_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimulatedEsp32RomLoader:
        self._thread.start()
        return self

    def stop(self) -> None:
        # Like the Modbus bus simulator: a descriptor number closed here is reused by the next file
        # this process opens, so no thread may read or write it afterwards. The reader is joined
        # (and the pair leaked if it is still alive); the "app" boot thread and on_boot callbacks
        # may still print: _send checks `_closed` under the same lock as the close.
        self._stop.set()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            return
        with self._out_lock:
            self._closed = True
            for fd in (self.master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> SimulatedEsp32RomLoader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serial output
    def console(self, line: str) -> None:
        """What the chip prints on its UART (boot log, application log)."""
        self._send(line.encode() + b"\r\n")

    def _send(self, data: bytes) -> None:
        with self._out_lock:
            if self._closed:
                return  # stopped: the chip is unplugged (and the fd number may belong to another file)
            view = memoryview(data)
            deadline = time.monotonic() + 2
            while view and time.monotonic() < deadline:
                try:
                    n = os.write(self.master, view)
                    view = view[n:]
                except BlockingIOError:
                    select.select([], [self.master], [], 0.05)  # nobody reading: a UART drops, we wait a bit
                except OSError as exc:
                    if exc.errno in (errno.EIO, errno.EBADF):
                        return
                    raise

    # ------------------------------------------------------------------ protocol
    def _run(self) -> None:
        frame = bytearray()
        in_frame = escaped = False
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            if self.silent:
                continue
            for b in chunk:
                if b == 0xC0:
                    if in_frame and frame:
                        self._handle(bytes(frame))
                    frame.clear()
                    in_frame, escaped = True, False
                elif not in_frame:
                    continue
                elif escaped:
                    frame.append(0xC0 if b == 0xDC else 0xDB if b == 0xDD else b)
                    escaped = False
                elif b == 0xDB:
                    escaped = True
                else:
                    frame.append(b)

    def _reply(self, op: int, value: int = 0, data: bytes = b"", status: int = 0, error: int = 0) -> None:
        body = data + bytes([status, error, 0, 0])
        self._send(slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body))

    def _handle(self, packet: bytes) -> None:
        if len(packet) < 8 or packet[0] != 0:
            return
        _, op, size, chk = struct.unpack("<BBHI", packet[:8])
        data = packet[8:8 + size]
        self.commands.append(op)
        if op == SYNC:
            for _ in range(8):  # the ROM answers a SYNC eight times
                self._reply(op, 0x20120707)
        elif op == READ_REG:
            self._reply(op, self._read_reg(struct.unpack("<I", data[:4])[0]))
        elif op == WRITE_REG:
            addr, value, mask = struct.unpack("<III", data[:12])
            self.regs[addr] = (self.regs.get(addr, 0) & ~mask) | (value & mask)
            self._reply(op)
        elif op in (SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE):
            self._reply(op)
        elif op == FLASH_BEGIN:
            erase_size, blocks, block_size, offset = struct.unpack("<IIII", data[:16])
            if offset + erase_size > len(self.flash):
                self._reply(op, status=1, error=0x06)
                return
            self.flash[offset:offset + erase_size] = b"\xff" * erase_size
            self._write = {"offset": offset, "block_size": block_size, "blocks": blocks}
            self._reply(op)
        elif op == FLASH_DATA:
            length, seq = struct.unpack("<II", data[:8])
            block = bytearray(data[16:16 + length])
            expected = 0xEF
            for b in block:
                expected ^= b
            if self._write is None or expected != chk:
                self._reply(op, status=1, error=ROM_BAD_DATA_CHECKSUM)
                return
            if self.corrupt_writes and block:
                block[len(block) // 2] ^= 0x01
            start = self._write["offset"] + seq * self._write["block_size"]
            self.flash[start:start + len(block)] = block
            self._reply(op)
        elif op == FLASH_END:
            self._reply(op)
            self._write = None
            threading.Thread(target=self._boot, name="rom-loader-app", daemon=True).start()
        elif op == SPI_FLASH_MD5:
            addr, length = struct.unpack("<II", data[:8])
            digest = hashlib.md5(bytes(self.flash[addr:addr + length])).hexdigest().encode()
            self._reply(op, data=digest)
        else:
            self._reply(op, status=1, error=ROM_INVALID_RECV_MSG)

    def _read_reg(self, addr: int) -> int:
        if addr == ESP32_MAGIC_REG:
            return ESP32_MAGIC
        if addr == SPI_CMD_REG:
            return 0  # the user command has completed
        if addr == SPI_W0_REG and (self.regs.get(SPI_USR2_REG, 0) & 0xFF) == 0x9F:
            return FLASH_ID_WINBOND_4MB  # RDID
        return self.regs.get(addr, 0)

    def _boot(self) -> None:
        self.boots += 1
        self.console("ets Jun  8 2016 00:22:57")
        self.console("rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)")
        self.console("I (29) boot: ESP-IDF bootloader (simulated)")
        if self.on_boot is not None:
            self.on_boot(self)
