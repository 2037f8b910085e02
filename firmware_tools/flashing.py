"""Flash an ESP32-class node over USB-serial with esptool used as a library.

The plan places each image at the offset its partition table (or ESP-IDF ``flasher_args.json``)
gives: partition table, application, an erased ``otadata`` (so the bootloader starts the image just
written, not an older OTA slot) and the configuration partition built from the inventory.
Every write is verified (MD5 computed by the chip) before the reset; the attempt, good or bad, is
recorded in the inventory's flash history.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firmware_tools import partitions as pt
from firmware_tools.nvs import DeviceConfig, build_partition

ProgressFn = Callable[[str, int, int], None]  # (what, done_bytes, total_bytes)
APP_DESC_MAGIC = 0xABCD5432
ESP_IMAGE_MAGIC = 0xE9


class FlashError(RuntimeError):
    """Flashing failed because of the device, cable, port or input; ``hint`` says what to check."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class FlashPart:
    offset: int
    data: bytes
    name: str


@dataclass
class FlashPlan:
    parts: list[FlashPart]
    nvs: pt.Partition
    image_name: str
    image_sha256: str
    firmware_version: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(len(p.data) for p in self.parts)


def app_version(image: bytes) -> str:
    """Version string of an ESP-IDF application image (esp_app_desc_t after the first segment header)."""
    if len(image) < 0x50 or image[0] != ESP_IMAGE_MAGIC:
        return ""
    if struct.unpack_from("<I", image, 0x20)[0] != APP_DESC_MAGIC:
        return ""
    return image[0x30:0x50].split(b"\0", 1)[0].decode(errors="replace")


def _check_app(image: bytes, name: str, slot: pt.Partition) -> None:
    if not image or image[0] != ESP_IMAGE_MAGIC:
        raise FlashError(f"{name} is not an ESP32 application image (first byte is not 0xE9)",
                         "chọn tệp .bin của ứng dụng (không phải .elf) / pick the application .bin, not the .elf")
    if len(image) > slot.size:
        raise FlashError(f"{name} ({len(image)} bytes) does not fit partition {slot.name} ({slot.size} bytes)")


def plan_app(firmware: Path, table: pt.PartitionTable, config: DeviceConfig) -> FlashPlan:
    image = firmware.read_bytes()
    slot = table.boot_app()
    _check_app(image, firmware.name, slot)
    nvs = table.nvs()
    parts = [FlashPart(pt.TABLE_OFFSET, table.to_binary(), "partition-table"),
             FlashPart(slot.offset, image, f"{slot.name} ({firmware.name})"),
             FlashPart(nvs.offset, build_partition(config, nvs.size), "nvs (configuration)")]
    otadata = table.otadata()
    if otadata is not None:
        parts.append(FlashPart(otadata.offset, b"\xff" * otadata.size, "otadata (erased)"))
    return FlashPlan(sorted(parts, key=lambda p: p.offset), nvs, firmware.name,
                     hashlib.sha256(image).hexdigest(), app_version(image))


def plan_manifest(manifest: Path, config: DeviceConfig) -> FlashPlan:
    """ESP-IDF ``flasher_args.json``: ``flash_files`` maps offsets to files relative to the manifest."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = {int(off, 0): manifest.parent / rel for off, rel in data["flash_files"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise FlashError(f"{manifest}: not an ESP-IDF flasher_args.json ({exc})",
                         "expected {\"flash_files\": {\"0x1000\": \"bootloader.bin\", ...}}") from exc
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FlashError(f"{manifest}: files not found: {', '.join(missing)}")
    if pt.TABLE_OFFSET not in files:
        raise FlashError(f"{manifest}: no partition table at {pt.TABLE_OFFSET:#x}")
    table = pt.parse_binary(files[pt.TABLE_OFFSET].read_bytes(), str(files[pt.TABLE_OFFSET]))
    nvs = table.nvs()
    app_slot = table.boot_app()
    parts = [FlashPart(off, path.read_bytes(), path.name) for off, path in files.items() if off != nvs.offset]
    app = next((p for p in parts if p.offset == app_slot.offset), None)
    if app is None:
        raise FlashError(f"{manifest}: no application image at {app_slot.name} ({app_slot.offset:#x})")
    _check_app(app.data, app.name, app_slot)
    parts.append(FlashPart(nvs.offset, build_partition(config, nvs.size), "nvs (configuration)"))
    digest = hashlib.sha256(app.data).hexdigest()
    return FlashPlan(sorted(parts, key=lambda p: p.offset), nvs, f"{manifest.name}:{app.name}", digest,
                     app_version(app.data))


def plan_config_only(table: pt.PartitionTable, config: DeviceConfig) -> FlashPlan:
    nvs = table.nvs()
    blob = build_partition(config, nvs.size)
    return FlashPlan([FlashPart(nvs.offset, blob, "nvs (configuration)")], nvs, "nvs",
                     hashlib.sha256(blob).hexdigest())


# --------------------------------------------------------------------------- esptool


def _esptool_logger_class():
    from esptool.logger import TemplateLogger

    class Bridge(TemplateLogger):
        """Routes esptool's messages to ``say`` and its progress bars to ``progress``."""

        def __init__(self, say: Callable[[str], None], on_progress: Callable[[int, int], None]):
            self.say, self.on_progress = say, on_progress

        def print(self, *args, **kwargs):
            text = " ".join(str(a) for a in args).strip()
            if text:
                self.say(text)

        def note(self, message):
            self.say(f"Note: {message}")

        def warning(self, message):
            self.say(f"Warning: {message}")

        def error(self, message):
            self.say(f"Error: {message}")

        def stage(self, finish=False):
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            self.on_progress(cur_iter, total_iters)

        def set_verbosity(self, verbosity):
            pass

    return Bridge


@contextlib.contextmanager
def _esptool_output(say: Callable[[str], None], on_progress: Callable[[int, int], None]) -> Iterator[None]:
    from esp_pylib.logger import EspLog
    from esptool.logger import log

    previous = EspLog.instance
    log.set_logger(_esptool_logger_class()(say, on_progress))
    try:
        yield
    finally:
        EspLog.instance = previous


HINT_CONNECT = ("kiểm tra: cáp USB có dây dữ liệu (không phải cáp sạc), giữ nút BOOT rồi nhấn EN/RESET, "
                "đúng cổng, nguồn đủ / check: a data USB cable (not charge-only), hold BOOT and press "
                "EN/RESET, the right port, enough power")
HINT_PERMISSION = ("thêm người dùng vào nhóm dialout: sudo usermod -aG dialout $USER, rồi đăng xuất / "
                   "add yourself to the dialout group, then log out and in")
HINT_BUSY = "đóng chương trình khác đang mở cổng (monitor, Arduino IDE) / close other programs using the port"
HINT_MISSING = ("cổng không tồn tại: cắm lại cáp, xem `ls /dev/ttyUSB* /dev/ttyACM*` / the port does not exist: "
                "replug the cable and list ports")
HINT_VERIFY = ("dữ liệu đọc lại không khớp: thử lại với cáp ngắn hơn, nguồn ổn định hơn, hoặc --baud 115200; "
               "nếu lặp lại, chip flash có thể hỏng / read-back mismatch: retry with a shorter cable, steadier "
               "power or --baud 115200; if it repeats the flash chip may be faulty")


def explain(exc: Exception, port: str) -> FlashError:
    """Turn an esptool/serial failure into a message and a hint a technician can act on."""
    text = str(exc)
    low = text.lower()
    if "permission denied" in low:
        return FlashError(f"không mở được cổng / cannot open {port}: permission denied", HINT_PERMISSION)
    if "could not open" in low and ("errno 2" in low or "no such file" in low or "filenotfound" in low):
        return FlashError(f"không có cổng / no such port {port}", HINT_MISSING)
    if "could not open" in low or "busy" in low or "resource temporarily unavailable" in low:
        return FlashError(f"cổng {port} đang bận / port {port} is busy", HINT_BUSY)
    if "md5" in low or "verif" in low or "digest" in low or "mismatch" in low:
        return FlashError(f"kiểm tra sau khi ghi thất bại / verification failed: {text.splitlines()[0]}",
                          HINT_VERIFY)
    if "failed to connect" in low or "no serial data" in low or "timed out" in low or "wrong boot mode" in low:
        return FlashError(f"không kết nối được chip qua {port} / cannot talk to the chip on {port}", HINT_CONNECT)
    return FlashError(f"esptool: {text.splitlines()[0] if text else type(exc).__name__}", HINT_CONNECT)


@dataclass
class FlashReport:
    chip: str
    verified: bool
    messages: list[str]


def write_plan(port: str, plan: FlashPlan, *, progress: ProgressFn | None = None,
               say: Callable[[str], None] | None = None, baud: int = 115200,
               connect_mode: str = "default-reset", reset_mode: str = "hard-reset",
               connect_attempts: int = 7) -> FlashReport:
    """Connect, write every part, verify every part, reset. Raises FlashError with a hint."""
    from esptool.cmds import attach_flash, detect_chip, reset_chip, verify_flash, write_flash
    from esptool.util import FatalError
    from serial import SerialException

    messages: list[str] = []
    say_all = (lambda m: (messages.append(m), say(m))) if say else messages.append
    total = plan.total_bytes
    done_before = 0
    state = {"index": 0, "last": -1}
    sizes = [len(p.data) for p in plan.parts]

    def on_progress(cur: int, of: int) -> None:
        # esptool reports per file; a counter that goes back down means the next file began
        nonlocal done_before
        if cur < state["last"] and state["index"] + 1 < len(sizes):
            done_before += sizes[state["index"]]
            state["index"] += 1
        state["last"] = cur
        if progress and of:
            part = plan.parts[state["index"]]
            progress(part.name, done_before + int(sizes[state["index"]] * min(cur, of) / of), total)

    addr_data = [(p.offset, p.data) for p in plan.parts]
    with _esptool_output(say_all, on_progress):
        try:
            esp = detect_chip(port, baud, connect_mode, connect_attempts=connect_attempts)
        except (FatalError, SerialException, OSError) as exc:
            raise explain(exc, port) from exc
        try:
            attach_flash(esp)
            write_flash(esp, addr_data, flash_size="keep")
            if progress:
                progress("written", total, total)
            verify_flash(esp, addr_data)
            reset_chip(esp, reset_mode)
            return FlashReport(esp.CHIP_NAME, True, messages)
        except (FatalError, SerialException, OSError) as exc:
            raise explain(exc, port) from exc
        finally:
            with contextlib.suppress(Exception):
                esp._port.close()
