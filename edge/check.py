"""``villagewatch edge --check [--probe]``: what a technician with a laptop needs to know on site.

Validates the site file, opens the serial ports it names, connects to the broker(s), and with
``--probe`` reads each configured Modbus device once, printing decoded values beside the raw
registers and the other word/byte orders. Writes nothing (no spool, no status, no publish).
Exit status 0 when everything answered, 1 otherwise — never a traceback for a site problem.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import serial

from edge.console import reason
from edge.gateway import bind_sources
from edge.sources.base import SourceContext, SourceError
from villagewatch import contract, textfmt
from villagewatch.config import MqttUrl
from villagewatch.errors import UserError
from villagewatch.mqtt import MqttOptions, paho_client
from villagewatch.schema import ConfigError
from villagewatch.sites import Site

SERIAL_SOURCES = ("modbus_rtu", "serial_lines")


def try_broker(url: MqttUrl, ca_file: str | None, cert_file: str | None, key_file: str | None,
               timeout_s: float = 5.0) -> str | None:
    """None when the broker accepted a connection, else why not (in a few words)."""
    try:  # the platform's one MQTT client factory: the same TLS and auth as the gateway itself
        c = paho_client(MqttOptions((url,), f"vw-check-{os.getpid()}", ca_file, cert_file, key_file))
    except UserError as exc:
        return f"TLS files: {exc}"
    answer: dict = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, rc, properties) -> None:
        answer["rc"] = rc
        done.set()

    c.on_connect = on_connect
    c.connect_timeout = timeout_s
    try:
        c.connect(url.host, url.port, keepalive=10)
    except (OSError, ValueError) as exc:
        return reason(exc)
    c.loop_start()
    try:
        if not done.wait(timeout_s):
            return f"no answer (MQTT) within {timeout_s:.0f} s"
        rc = answer["rc"]
        return f"refused: {rc}" if rc.is_failure else None
    finally:
        c.disconnect()
        c.loop_stop()


def try_port(port: str, baudrate: int) -> str | None:
    try:
        serial.Serial(port, baudrate, timeout=0.2).close()
    except (serial.SerialException, OSError) as exc:
        return str(exc)
    return None


def run_check(site: Site, gateway_id: str, brokers: list[MqttUrl], tls: tuple[str | None, str | None, str | None],
              probe: bool = False, out: Callable[[str], None] = print) -> int:
    site.gateway(gateway_id)
    stations = site.stations_of(gateway_id)
    if not stations:
        raise ConfigError(f"gateway {gateway_id!r} has no stations", file=site.path)
    sources, _ = bind_sources(site, stations, SourceContext(site=site))
    problems = 0
    for s in sources:
        out(f"{s.name}: {', '.join(b.station.id for b in s.bound)}")
    for s in sources:
        if s.type_name not in SERIAL_SOURCES:
            continue
        opts = s.bound[0].options
        err = try_port(opts["port"], opts.get("baudrate", 9600))
        if err:
            problems += 1
            out(f"LỖI: không mở được cổng {opts['port']}: {err} / cannot open serial port {opts['port']}")
        else:
            out(f"cổng {opts['port']}: mở được / serial port opened")
    for b in brokers:
        err = try_broker(b, *tls)
        if err:
            problems += 1
            out(f"LỖI: không kết nối được {b.redacted()}: {err} / cannot connect to {b.redacted()}: {err}")
        else:
            out(f"máy chủ {b.redacted()}: kết nối được / broker accepted the connection")
    if probe:
        problems += probe_modbus(sources, out)
    if problems:
        out(f"CÓ {problems} LỖI / {problems} PROBLEM(S) — {len(stations)} trạm / stations")
        return 1
    out(f"OK — {len(stations)} trạm / stations")
    return 0


def probe_modbus(sources, out: Callable[[str], None]) -> int:
    """Read each configured Modbus device once; print raw registers, the decoded value and the
    other orders, with the sanity verdict. Returns the number of devices that did not answer."""
    from edge.sources.modbus_rtu.sanity import alternatives, check_order
    problems = 0
    modbus = [s for s in sources if s.type_name == "modbus_rtu"]
    if not modbus:
        out("--probe: không có thiết bị Modbus / no Modbus device configured")
    for s in modbus:
        try:
            s.master.open()
        except SourceError as exc:
            out(f"LỖI {s.name}: {exc.detail}")
            problems += 1
            continue
        try:
            for b in s.bound:
                for dev in b.options["devices"]:
                    address, profile = dev["address"], dev["profile"]
                    out(f"trạm {b.station.id} · thiết bị {address} ({profile.model}):")
                    for fc, start, count, regs in profile.blocks():
                        try:
                            words = s.master.read_registers(address, fc, start, count)
                        except SourceError as exc:
                            problems += 1
                            out(f"  LỖI đọc / read failed (fc {fc}, {start}+{count}): {exc.kind}: {exc.detail}")
                            continue
                        for r in regs:
                            raw = words[r.address - start:r.address - start + r.count]
                            unit = contract.METRICS[r.metric].unit if r.metric in contract.METRICS else "m"
                            value = r.decode(raw)
                            hexes = " ".join(f"0x{w:04X}" for w in raw)
                            line = (f"  {r.metric} @ {r.address} ({r.type}, word {r.word_order}/byte {r.byte_order}) "
                                    f"[{hexes}] = {_show(value, unit)}")
                            alts = alternatives(r, raw)
                            if alts:
                                line += " · khác / other orders: " + ", ".join(
                                    f"word {w}/byte {by} = {_show(v, unit)}" for (w, by), v in alts.items())
                            out(line)
                            verdict = check_order(r, raw)
                            if verdict is not None:
                                out(f"    NGHI NGỜ / SUSPECT: {verdict.describe(profile.model)}")
        finally:
            s.master.close()
    return problems


def _show(value: float, unit: str) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value != 0 and abs(value) < 1e-3 or abs(value) >= 1e9:
        return f"{value:.3g} {unit}".strip()
    return textfmt.quantity(value, unit, 3)
