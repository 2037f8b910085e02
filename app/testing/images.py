"""Small but real ESP32 application images for tests (built with esptool's own image writer,
with an ESP-IDF app description carrying the version, as a real build has)."""

from __future__ import annotations

import os
import random
import struct
import tempfile
from pathlib import Path

from esptool.bin_image import ELFSection, ESP32FirmwareImage

from firmware_tools.flashing import APP_DESC_MAGIC


def make_app_image(version: str, project: str = "vw-node", code_bytes: int = 30_000, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    desc = (struct.pack("<IIII", APP_DESC_MAGIC, 0, 0, 0) + version.encode().ljust(32, b"\0")
            + project.encode().ljust(32, b"\0") + b"\0" * (256 - 80))
    image = ESP32FirmwareImage()
    image.entrypoint = 0x400D0000
    image.segments = [ELFSection(b".flash.rodata", 0x3F400020, desc + rng.randbytes(2000), 0),
                      ELFSection(b".flash.text", 0x400D0020, rng.randbytes(code_bytes), 0)]
    fd, name = tempfile.mkstemp(suffix=".bin")
    os.close(fd)
    try:
        image.save(name)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)
