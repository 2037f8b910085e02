"""The technician's operations on one node: flash, rewrite configuration, monitor.

They join the pieces: the inventory (who the device is), the secrets store (its credentials),
the site (its interval), the partition table, esptool, and the broker (is it online?).
"""

from __future__ import annotations

import base64
import getpass
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_tools import partitions as pt
from firmware_tools.flashing import (
    FlashError,
    FlashPlan,
    FlashReport,
    ProgressFn,
    plan_app,
    plan_config_only,
    plan_manifest,
    write_plan,
)
from firmware_tools.nvs import DeviceConfig
from firmware_tools.provision import gateway_device_id, station_device_id
from firmware_tools.workspace import Workspace
from villagewatch import contract
from villagewatch.sites import Site


def technician() -> str:
    return os.environ.get("VW_TECHNICIAN") or getpass.getuser()


@dataclass
class Target:
    """The node being worked on: a station node or a gateway."""

    site: Site
    station: str | None = None
    gateway: str | None = None

    @property
    def device_id(self) -> str:
        if self.station:
            return station_device_id(self.site.commune, self.station)
        return gateway_device_id(self.site.commune, self.gateway or "")

    @property
    def node(self) -> str:
        return self.station or self.gateway or ""

    @property
    def status_topic(self) -> str:
        if self.station:
            return contract.station_status_topic(self.site.commune, self.station)
        return contract.gateway_status_topic(self.site.commune, self.gateway or "")

    def check(self) -> None:
        if self.station and self.station not in self.site.stations:
            raise FlashError(f"no station {self.station!r} in commune {self.site.commune!r}",
                             f"stations: {', '.join(self.site.stations)}")
        if self.gateway and self.gateway not in self.site.gateways:
            raise FlashError(f"no gateway {self.gateway!r} in commune {self.site.commune!r}")

    @property
    def interval_s(self) -> int:
        return int(self.site.stations[self.station].interval_s) if self.station else 60


def device_config(ws: Workspace, target: Target, mqtt_url: str, wifi_ssid: str = "", wifi_pass: str = "") -> DeviceConfig:
    target.check()
    with ws.inventory() as inv:
        device = inv.get(target.device_id)
    if device is None:
        kind = f"--station {target.station}" if target.station else f"--gateway {target.gateway}"
        raise FlashError(f"thiết bị chưa được cấp phát / device {target.device_id} is not provisioned",
                         f"villagewatch device provision --commune {target.site.commune} {kind}")
    secret = ws.load_secret(target.device_id)
    if secret is None:
        raise FlashError(f"mật khẩu của {target.device_id} không có trên máy này / its credentials are not on "
                         f"this laptop ({ws.secret_path(target.device_id)})",
                         "cấp phát lại để tạo mật khẩu mới / provision again to rotate and get new credentials")
    ota_pub = ws.ota_dir / "signing.pub"
    return DeviceConfig(
        device_id=target.device_id, role=device.role, commune=target.site.commune, node=target.node,
        mqtt_url=mqtt_url, mqtt_user=secret["username"], mqtt_pass=secret["password"],
        interval_s=target.interval_s, wifi_ssid=wifi_ssid, wifi_pass=wifi_pass,
        ca_pem=secret.get("ca_pem", ""), cert_pem=secret.get("cert_pem", ""), key_pem=secret.get("key_pem", ""),
        ota_pub=base64.b64encode(ota_pub.read_bytes()).decode() if ota_pub.exists() else "")


def _run_and_record(ws: Workspace, target: Target, plan: FlashPlan, action: str, port: str,
                    progress: ProgressFn | None, say: Callable[[str], None] | None, **esptool_opts) -> FlashReport:
    try:
        report = write_plan(port, plan, progress=progress, say=say, **esptool_opts)
    except FlashError as exc:
        with ws.inventory() as inv:
            inv.add_flash(target.device_id, by_whom=technician(), action=action, image=plan.image_name,
                          image_sha256=plan.image_sha256, port=port, chip="", verified=False, ok=False,
                          message=str(exc))
        raise
    with ws.inventory() as inv:
        inv.add_flash(target.device_id, by_whom=technician(), action=action, image=plan.image_name,
                      image_sha256=plan.image_sha256, port=port, chip=report.chip, verified=report.verified,
                      ok=True)
        if action == "flash" and plan.firmware_version:
            inv.set_firmware_version(target.device_id, plan.firmware_version)
    return report


def flash(ws: Workspace, target: Target, port: str, firmware: Path, mqtt_url: str, *,
          partitions: Path | None = None, wifi_ssid: str = "", wifi_pass: str = "",
          progress: ProgressFn | None = None, say: Callable[[str], None] | None = None,
          **esptool_opts) -> tuple[FlashPlan, FlashReport]:
    config = device_config(ws, target, mqtt_url, wifi_ssid, wifi_pass)
    if not firmware.exists():
        raise FlashError(f"không thấy tệp firmware / firmware file not found: {firmware}")
    if firmware.suffix == ".json":
        plan = plan_manifest(firmware, config)
    else:
        plan = plan_app(firmware, pt.load(partitions), config)
    return plan, _run_and_record(ws, target, plan, "flash", port, progress, say, **esptool_opts)


def write_config(ws: Workspace, target: Target, port: str, mqtt_url: str, *, partitions: Path | None = None,
                 wifi_ssid: str = "", wifi_pass: str = "", progress: ProgressFn | None = None,
                 say: Callable[[str], None] | None = None, **esptool_opts) -> tuple[FlashPlan, FlashReport]:
    config = device_config(ws, target, mqtt_url, wifi_ssid, wifi_pass)
    plan = plan_config_only(pt.load(partitions), config)
    return plan, _run_and_record(ws, target, plan, "config", port, progress, say, **esptool_opts)


# --------------------------------------------------------------------------- monitor


@dataclass
class MonitorResult:
    online_at_ms: int | None
    lines: list[str]
    status: dict | None = None


def monitor(port: str, *, status_topic: str | None, mqtt_connect: Callable[[], object] | None,
            timeout_s: float, out: Callable[[str], None], until_online: bool = True,
            duration_s: float | None = None, baud: int = 115200) -> MonitorResult:
    """Print the serial console with timestamps; meanwhile wait for ``online: true`` on the status
    topic. Ends when the device is online (``until_online``), at ``duration_s``, or at timeout."""
    import serial

    start_ms = int(time.time() * 1000)
    lines: list[str] = []
    result = MonitorResult(None, lines)
    stop = threading.Event()
    online = threading.Event()
    try:
        ser = serial.serial_for_url(port, baudrate=baud, timeout=0.1, exclusive=True)
    except (serial.SerialException, OSError) as exc:
        from firmware_tools.flashing import explain
        raise explain(exc, port) from exc

    def read_serial() -> None:
        buf = b""
        while not stop.is_set():
            try:
                chunk = ser.read(4096)
            except (serial.SerialException, OSError, TypeError):
                return  # port unplugged or closed
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
                stamp = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
                lines.append(text)
                out(f"[{stamp}] {text}")

    reader = threading.Thread(target=read_serial, name="serial-monitor", daemon=True)
    reader.start()
    client = None
    if status_topic and mqtt_connect is not None:
        client = mqtt_connect()

        def on_message(c, u, msg) -> None:
            try:
                body = contract.decode_status(msg.payload)
            except ValueError:
                return
            # a retained "online" from before this session must be fresh (a device that died keeps
            # its retained status only until its last will replaces it)
            if body.get("online") and (not msg.retain or body["ts"] >= start_ms - 5000):
                result.online_at_ms = int(time.time() * 1000)
                result.status = body
                online.set()

        client.on_message = on_message
        client.subscribe(status_topic, qos=1)
    t0 = time.monotonic()
    end = t0 + (duration_s if duration_s is not None else timeout_s)
    try:
        while time.monotonic() < end:
            if online.wait(0.1):
                if until_online:
                    break
            elif status_topic and time.monotonic() - t0 > timeout_s:
                break  # not online in time: the caller reports it
    finally:
        stop.set()
        reader.join(timeout=2)
        ser.close()
        if client is not None:
            client.disconnect()
            client.loop_stop()
    return result
