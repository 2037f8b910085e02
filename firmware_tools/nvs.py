"""The device's configuration partition (ESP-IDF NVS), built with esp-idf-nvs-partition-gen and
read back with a small independent parser (so a test can check what is on the flash).

Everything lives in one NVS namespace, ``vw``; the firmware reads it at boot. Keys are at most 15
characters (an NVS limit). Secrets (Wi-Fi and MQTT passwords, client key) are plain NVS strings:
enable NVS encryption in the firmware build where the device can be physically stolen.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from esp_idf_nvs_partition_gen import nvs_partition_gen as nvsgen

NAMESPACE = "vw"
CONFIG_VERSION = 1
DEFAULT_SIZE = 0x6000
PAGE_SIZE = 4096
ENTRY_SIZE = 32
ENTRIES_PER_PAGE = 126
MAX_KEY_LEN = 15


class NvsError(ValueError):
    """The configuration does not fit NVS, or a partition image is not valid NVS."""


@dataclass
class DeviceConfig:
    device_id: str
    role: str
    commune: str
    node: str  # station id (or gateway id for a gateway)
    mqtt_url: str
    mqtt_user: str
    mqtt_pass: str
    interval_s: int = 60
    wifi_ssid: str = ""
    wifi_pass: str = ""
    ca_pem: str = ""
    cert_pem: str = ""
    key_pem: str = ""
    ota_pub: str = ""  # base64 Ed25519 public key that signs OTA manifests

    def entries(self) -> list[tuple[str, str, object]]:
        """(key, encoding, value) in write order; empty optional strings are left out."""
        rows: list[tuple[str, str, object]] = [("cfg_ver", "u8", CONFIG_VERSION)]
        for key in ("device_id", "role", "commune", "node", "mqtt_url", "mqtt_user", "mqtt_pass",
                    "wifi_ssid", "wifi_pass", "ca_pem", "cert_pem", "key_pem", "ota_pub"):
            value = getattr(self, key)
            if value or key in ("device_id", "role", "commune", "node", "mqtt_url", "mqtt_user", "mqtt_pass"):
                rows.append((key, "string", value))
        rows.append(("interval_s", "u32", int(self.interval_s)))
        return rows

    def as_dict(self) -> dict[str, object]:
        return {key: value for key, _, value in self.entries()}


def build_partition(config: DeviceConfig, size: int = DEFAULT_SIZE) -> bytes:
    """NVS image of exactly ``size`` bytes (a multiple of 4096, at least 0x3000)."""
    if size % PAGE_SIZE or size < 3 * PAGE_SIZE:
        raise NvsError(f"NVS partition size {size:#x} must be a multiple of 0x1000 and at least 0x3000")
    out = io.BytesIO()
    # one page is reserved by NVS for garbage collection, as the CLI tool does (check_size)
    nvs = nvsgen.nvs_open(out, size - PAGE_SIZE, nvsgen.Page.VERSION2)
    try:
        nvsgen.write_entry(nvs, NAMESPACE, "namespace", "", "")
        for key, encoding, value in config.entries():
            if len(key) > MAX_KEY_LEN:
                raise NvsError(f"NVS key {key!r} is longer than {MAX_KEY_LEN} characters")
            nvsgen.write_entry(nvs, key, "data", encoding, str(value) if encoding != "string" else value)
    except (nvsgen.InputError, nvsgen.InsufficientSizeError) as exc:
        raise NvsError(f"configuration does not fit the NVS partition of {size:#x} bytes: {exc}") from exc
    nvsgen.nvs_close(nvs)
    data = out.getvalue()
    if len(data) != size:
        raise NvsError(f"NVS generator produced {len(data)} bytes, expected {size}")
    return data


# --------------------------------------------------------------------------- reader

_PRIMITIVES = {0x01: "<B", 0x11: "<b", 0x02: "<H", 0x12: "<h", 0x04: "<I", 0x14: "<i", 0x08: "<Q", 0x18: "<q"}
_SZ, _BLOB, _BLOB_DATA, _BLOB_IDX = 0x21, 0x41, 0x42, 0x48
_PAGE_ACTIVE, _PAGE_FULL = 0xFFFFFFFE, 0xFFFFFFFC
_STATE_WRITTEN = 0b10


def _crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def read_partition(image: bytes) -> dict[str, dict[str, object]]:
    """Namespaces → key → value of an NVS image; checks header, entry and data CRCs."""
    namespaces: dict[int, str] = {}
    raw: list[tuple[int, str, object]] = []
    blob_chunks: dict[tuple[int, str], dict[int, bytes]] = {}
    for page_start in range(0, len(image) - PAGE_SIZE + 1, PAGE_SIZE):
        page = image[page_start:page_start + PAGE_SIZE]
        state, = struct.unpack_from("<I", page, 0)
        if state not in (_PAGE_ACTIVE, _PAGE_FULL):
            continue  # empty (0xFFFFFFFF) or being freed
        if struct.unpack_from("<I", page, 28)[0] != _crc(page[4:28]):
            raise NvsError(f"page at {page_start:#x}: header CRC mismatch")
        bitmap = page[32:64]
        i = 0
        while i < ENTRIES_PER_PAGE:
            if (bitmap[i // 4] >> ((i % 4) * 2)) & 0b11 != _STATE_WRITTEN:
                i += 1
                continue
            entry = page[64 + i * ENTRY_SIZE: 64 + (i + 1) * ENTRY_SIZE]
            ns, etype, span, chunk = entry[0], entry[1], entry[2], entry[3]
            if struct.unpack_from("<I", entry, 4)[0] != _crc(entry[0:4] + entry[8:32]):
                raise NvsError(f"page at {page_start:#x}, entry {i}: CRC mismatch")
            key = entry[8:24].split(b"\0", 1)[0].decode()
            payload = entry[24:32]
            if etype in _PRIMITIVES:
                value = struct.unpack_from(_PRIMITIVES[etype], payload)[0]
                if ns == 0:
                    namespaces[value] = key
                else:
                    raw.append((ns, key, value))
            elif etype in (_SZ, _BLOB, _BLOB_DATA):
                size, = struct.unpack_from("<H", payload, 0)
                start = 64 + (i + 1) * ENTRY_SIZE
                data = page[start:start + size]
                if struct.unpack_from("<I", payload, 4)[0] != _crc(data):
                    raise NvsError(f"key {key!r}: data CRC mismatch")
                if etype == _SZ:
                    raw.append((ns, key, data.rstrip(b"\0").decode("utf-8")))
                else:
                    blob_chunks.setdefault((ns, key), {})[chunk] = data
            elif etype != _BLOB_IDX:
                raise NvsError(f"page at {page_start:#x}, entry {i}: unknown type {etype:#x}")
            i += max(span, 1)
    for (ns, key), chunks in blob_chunks.items():
        raw.append((ns, key, b"".join(chunks[k] for k in sorted(chunks))))
    out: dict[str, dict[str, object]] = {}
    for ns, key, value in raw:
        out.setdefault(namespaces.get(ns, f"#{ns}"), {})[key] = value
    return out


def read_config(image: bytes) -> dict[str, object]:
    """The ``vw`` namespace of an NVS image (what the firmware reads at boot)."""
    return read_partition(image).get(NAMESPACE, {})
