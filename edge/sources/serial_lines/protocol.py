"""The serial line protocol for microcontroller nodes (docs: README.md beside this file).

    $VW,<node>,<metric>=<value>[,<metric>=<value>...]*<XX>\\n

``XX`` is the XOR of every byte between ``$`` and ``*`` as two hex digits (the NMEA 0183 checksum,
easy on an 8-bit MCU). Example: ``$VW,ao-a1,do=5.42,temp=28.1*51``. A line that fails any check is a
framing error with a reason; it is counted and skipped, never fatal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_LINE = 512


class FrameError(ValueError):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Frame:
    node: str
    metrics: dict[str, float]


def checksum(body: str) -> str:
    x = 0
    for b in body.encode("ascii", "replace"):
        x ^= b
    return f"{x:02X}"


def encode(node: str, metrics: dict[str, float]) -> bytes:
    body = "VW," + node + "".join(f",{k}={v:g}" for k, v in metrics.items())
    return f"${body}*{checksum(body)}\n".encode("ascii")


def parse(line: bytes) -> Frame:
    if len(line) > MAX_LINE:
        raise FrameError("too_long", f"{len(line)} bytes > {MAX_LINE}")
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise FrameError("not_ascii", f"byte {exc.start}") from exc
    if not text.startswith("$"):
        raise FrameError("no_start", f"line does not start with '$': {text[:20]!r}")
    body, star, cs = text[1:].rpartition("*")
    if not star or len(cs) != 2:
        raise FrameError("no_checksum", f"missing '*XX' checksum: {text[:40]!r}")
    if cs.upper() != checksum(body):
        raise FrameError("checksum", f"checksum {cs} != {checksum(body)}")
    parts = body.split(",")
    if parts[0] != "VW" or len(parts) < 3:
        raise FrameError("bad_format", f"expected $VW,<node>,<metric>=<value>...: {text[:40]!r}")
    metrics: dict[str, float] = {}
    for item in parts[2:]:
        name, eq, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not name or not math.isfinite(number):
            raise FrameError("bad_value", f"{item!r} is not metric=number")
        metrics[name] = number
    return Frame(parts[1], metrics)
