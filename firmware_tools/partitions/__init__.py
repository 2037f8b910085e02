"""ESP-IDF partition tables: parse the CSV format and the binary table, write the binary.

A partition table says where the configuration partition (``nvs``) and the application slots are;
``villagewatch device flash`` places each image at the offset the table gives.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

TABLE_OFFSET = 0x8000
TABLE_MAX_LEN = 0xC00
MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14
DEFAULT_TABLE = Path(__file__).with_name("villagewatch-4mb.csv")

TYPES = {"app": 0x00, "data": 0x01}
APP_SUBTYPES = {"factory": 0x00, "test": 0x20, **{f"ota_{i}": 0x10 + i for i in range(16)}}
DATA_SUBTYPES = {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04, "efuse": 0x05,
                 "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82, "littlefs": 0x83}
ALIGN = {0x00: 0x10000, 0x01: 0x1000}


class PartitionError(ValueError):
    """The partition table (CSV or binary) is malformed; the message names the line or entry."""


@dataclass(frozen=True)
class Partition:
    name: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def is_app(self) -> bool:
        return self.type == TYPES["app"]

    def to_binary(self) -> bytes:
        return struct.pack("<2sBBLL16sL", MAGIC, self.type, self.subtype, self.offset, self.size,
                           self.name.encode()[:16], self.flags)


@dataclass
class PartitionTable:
    partitions: list[Partition]
    source: str = ""

    def find(self, name: str | None = None, type_: int | None = None, subtype: int | None = None) -> Partition | None:
        for p in self.partitions:
            if (name is None or p.name == name) and (type_ is None or p.type == type_) \
                    and (subtype is None or p.subtype == subtype):
                return p
        return None

    def nvs(self) -> Partition:
        p = self.find(name="nvs") or self.find(type_=TYPES["data"], subtype=DATA_SUBTYPES["nvs"])
        if p is None:
            raise PartitionError(f"{self.source}: no nvs partition for the device configuration")
        return p

    def boot_app(self) -> Partition:
        """Where a serial flash puts the application: factory if present, else ota_0."""
        p = self.find(type_=0, subtype=APP_SUBTYPES["factory"]) or self.find(type_=0, subtype=APP_SUBTYPES["ota_0"])
        if p is None:
            raise PartitionError(f"{self.source}: no factory or ota_0 app partition")
        return p

    def otadata(self) -> Partition | None:
        return self.find(type_=TYPES["data"], subtype=DATA_SUBTYPES["ota"])

    def to_binary(self) -> bytes:
        body = b"".join(p.to_binary() for p in self.partitions)
        body += MD5_MAGIC + hashlib.md5(body).digest()
        if len(body) > TABLE_MAX_LEN:
            raise PartitionError(f"{self.source}: too many partitions for a {TABLE_MAX_LEN:#x}-byte table")
        return body + b"\xff" * (TABLE_MAX_LEN - len(body))


def _size(text: str, where: str) -> int:
    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([KkMm]?)\s*", text)
    if not m:
        raise PartitionError(f"{where}: {text!r} is not a size or offset (e.g. 0x9000, 24K, 1M)")
    value = int(m.group(1), 0)
    return value * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def parse_csv(text: str, source: str = "<csv>") -> PartitionTable:
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    parts: list[Partition] = []
    next_free = TABLE_OFFSET + 0x1000
    for lineno, line in rows:
        where = f"{source}:{lineno}"
        cells = [c.strip() for c in next(csv.reader(io.StringIO(line)))] + [""] * 6
        name, type_text, sub_text, off_text, size_text, flags_text = cells[:6]
        if type_text not in TYPES:
            raise PartitionError(f"{where}: type {type_text!r} must be app or data")
        ptype = TYPES[type_text]
        subtypes = APP_SUBTYPES if ptype == 0 else DATA_SUBTYPES
        if sub_text in subtypes:
            subtype = subtypes[sub_text]
        else:
            try:
                subtype = int(sub_text, 0)
            except ValueError as exc:
                raise PartitionError(f"{where}: unknown subtype {sub_text!r}") from exc
        if off_text:
            offset = _size(off_text, where)
        else:
            align = ALIGN[ptype]
            offset = (next_free + align - 1) // align * align
        if offset % ALIGN[ptype]:
            raise PartitionError(f"{where}: offset {offset:#x} of {name} is not aligned to {ALIGN[ptype]:#x}")
        if offset < next_free:
            raise PartitionError(f"{where}: {name} at {offset:#x} overlaps the previous partition")
        size = _size(size_text, where)
        flags = 1 if "encrypted" in flags_text else 0
        parts.append(Partition(name, ptype, subtype, offset, size, flags))
        next_free = offset + size
    if not parts:
        raise PartitionError(f"{source}: no partitions")
    return PartitionTable(parts, source)


def parse_binary(data: bytes, source: str = "<binary>") -> PartitionTable:
    parts: list[Partition] = []
    for i in range(0, min(len(data), TABLE_MAX_LEN), 32):
        entry = data[i:i + 32]
        if entry[:2] == MAGIC:
            _, t, s, off, size, name, flags = struct.unpack("<2sBBLL16sL", entry)
            parts.append(Partition(name.rstrip(b"\0").decode(errors="replace"), t, s, off, size, flags))
        elif entry[:16] == MD5_MAGIC:
            if hashlib.md5(data[:i]).digest() != entry[16:32]:
                raise PartitionError(f"{source}: partition table MD5 mismatch (corrupt table)")
            break
        else:
            break
    if not parts:
        raise PartitionError(f"{source}: not an ESP-IDF partition table (no 0xAA50 entries)")
    return PartitionTable(parts, source)


def load(path: str | Path | None = None) -> PartitionTable:
    path = Path(path) if path else DEFAULT_TABLE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise PartitionError(f"{path}: partition table file not found") from exc
    if raw[:2] == MAGIC:
        return parse_binary(raw, str(path))
    return parse_csv(raw.decode("utf-8"), str(path))
