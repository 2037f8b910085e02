"""Simulated RS-485 bus for tests, benchmarks and bench-top training: pymodbus devices on a pty pair.

Two ``os.openpty()`` pairs joined by a relay thread behave like a USB-RS485 adapter wired to a bus:
the gateway opens ``client_port``, pymodbus' serial server listens on the other end. Devices in
``corrupt`` answer with a broken CRC; addresses without a device stay silent.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import tty

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


class PtyBus:
    def __init__(self, devices: dict[int, dict[int, list[int]]], corrupt: set[int] = frozenset(),
                 baudrate: int = 9600):
        """``devices``: address -> {function code (3/4) -> registers from address 0}."""
        self.devices, self.corrupt, self.baudrate = devices, set(corrupt), baudrate
        self._a = _pty()
        self._b = _pty()
        self.server_port, self.client_port = self._a[2], self._b[2]
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._relay_thread: threading.Thread | None = None

    def _relay(self) -> None:
        ma, mb = self._a[0], self._b[0]
        while not self._stop.is_set():
            readable, _, _ = select.select([ma, mb], [], [], 0.1)
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                    os.write(mb if fd == ma else ma, data)
                except OSError:
                    return  # the pair was closed while stopping

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending and data and data[0] not in self.devices:
            # pymodbus 3.16 answers "device failure" for unknown ids even with
            # ignore_missing_devices; a real bus stays silent
            return b""
        if sending and data and data[0] in self.corrupt:
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        return data

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        sims = []
        for address, tables in self.devices.items():
            blocks: list[list[SimData]] = [[], [], [], []]  # coils, discrete, holding, input
            for fc, regs in tables.items():
                blocks[2 if fc == 3 else 3].append(SimData(address=0, values=list(regs), datatype=DataType.REGISTERS))
            for i, b in enumerate(blocks):
                if not b:
                    b.append(SimData(address=0, values=[False] * 16, datatype=DataType.BITS) if i < 2
                             else SimData(address=0, values=[0], datatype=DataType.REGISTERS))
            sims.append(SimDevice(id=address, simdata=tuple(blocks)))
        async def main() -> None:
            self._server = ModbusSerialServer(sims, port=self.server_port, baudrate=self.baudrate,
                                              ignore_missing_devices=True, trace_packet=self._trace)
            task = asyncio.create_task(self._server.serve_forever())
            await asyncio.sleep(0.2)
            self._ready.set()
            await task

        try:
            self._loop.run_until_complete(main())
        except (asyncio.CancelledError, RuntimeError):
            pass

    def start(self) -> PtyBus:
        self._relay_thread = threading.Thread(target=self._relay, daemon=True, name="pty-relay")
        self._relay_thread.start()
        threading.Thread(target=self._serve, daemon=True, name="modbus-sim").start()
        if not self._ready.wait(10):
            raise RuntimeError("Modbus simulator did not start")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._loop and self._server:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        # The relay must be gone before its descriptors are closed: a closed fd number is reused by
        # the next open() in this process, and a relay still reading it would swallow that file
        # (a sensor profile then "loaded as null" later in the test suite).
        if self._relay_thread is not None:
            self._relay_thread.join(30)  # a loaded machine: 5 s was not always enough
            if self._relay_thread.is_alive():
                return  # leak the four descriptors rather than close numbers a live relay still uses
        for fd in (*self._a[:2], *self._b[:2]):
            try:
                os.close(fd)
            except OSError:
                pass
