"""Does a 32-bit register value look decoded in the wrong word/byte order? (docs/edge.md, "Probe sanity")

A probe replaced by another brand often keeps the register map but not the float word order; the
wrong order then decodes to a plausible constant (a denormal rounds to DO 0.0 mg/L) that passes the
range check. The signatures of a wrong order:

- a float32 that decodes to a denormal, to NaN/inf, or to (practically) 0.0 from non-zero registers
  (|x| < 1e-6: it shows as 0.0 at every resolution a probe has);
- a value outside the metric's range that is inside it with another order.

A value that is in range and normal in the configured order is never suspected (no evidence), so
the configured order is never second-guessed for a correct probe. ``better`` names the orders in
which the same registers make sense; the gateway flags the reading ``suspect`` and reports a
source error ``decode_order``. The value itself is never replaced by a guess.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass

from edge.sources.modbus_rtu.profiles import Register
from villagewatch import contract

ORDERS = (("big", "big"), ("little", "big"), ("big", "little"), ("little", "little"))  # (word, byte)
FLT_MIN_NORMAL = 1.1754943508222875e-38
# No probe reports a magnitude this small except zero itself: a float32 below it (but not ±0.0 from
# all-zero or sign-only registers) is what a swapped order makes of an ordinary value — and it
# rounds to the "plausible constant" 0.0 of the field report.
TINY = 1e-6


@dataclass(frozen=True)
class Verdict:
    register: Register
    why: str
    value: float
    better: tuple[tuple[str, str], ...]  # orders (word, byte) that give a plausible value

    def describe(self, profile: str) -> str:
        r = self.register
        text = (f"{r.metric} @ {r.address} (profile {profile}, {r.type} word {r.word_order}/byte {r.byte_order}): "
                f"{self.why}")
        if self.better:
            text += "; would make sense with " + " or ".join(f"word_order {w}, byte_order {b}" for w, b in self.better)
        else:
            text += "; no other order makes sense either"
        return text


def _raw_float(reg: Register, words: list[int], word_order: str, byte_order: str) -> float:
    r = dataclasses.replace(reg, scale=1.0, offset=0.0, factor=1.0, word_order=word_order, byte_order=byte_order)
    return r.decode(words)


def _signature(reg: Register, words: list[int], word_order: str, byte_order: str) -> tuple[str, str] | None:
    """(kind, why) when this order looks wrong — kind "float" (a float32 signature) or "range" —
    or None when the decoded value is plausible."""
    value = dataclasses.replace(reg, word_order=word_order, byte_order=byte_order).decode(words)
    if reg.type == "f32":
        raw = _raw_float(reg, words, word_order, byte_order)
        if not math.isfinite(raw):
            return "float", f"decodes to {raw}"
        if raw != 0.0 and abs(raw) < FLT_MIN_NORMAL:
            return "float", f"decodes to a denormal ({raw:.3g})"
        if raw != 0.0 and abs(raw) < TINY:
            return "float", f"decodes to 0.0 ({raw:.3g}) from non-zero registers"
    metric = contract.METRICS.get(reg.metric)
    if metric is not None and not (math.isfinite(value) and metric.in_range(value)):
        return "range", f"{value:.6g} {metric.unit} is outside {metric.lo:g}…{metric.hi:g}"
    return None


def alternatives(reg: Register, words: list[int]) -> dict[tuple[str, str], float]:
    """The value in each other order (32-bit types only; a 16-bit register has one word)."""
    if reg.count < 2:
        return {}
    return {o: dataclasses.replace(reg, word_order=o[0], byte_order=o[1]).decode(words)
            for o in ORDERS if o != (reg.word_order, reg.byte_order)}


def check_order(reg: Register, words: list[int]) -> Verdict | None:
    """A Verdict when the configured order shows a wrong-order signature, else None."""
    if reg.count < 2:
        return None
    found = _signature(reg, words, reg.word_order, reg.byte_order)
    if found is None:
        return None
    kind, why = found
    better = tuple(o for o in ORDERS if o != (reg.word_order, reg.byte_order) and _signature(reg, words, *o) is None)
    if kind == "range" and not better:
        return None  # out of range in every order: a broken sensor (out_of_range), not the order
    return Verdict(reg, why, reg.decode(words), better)


def f32_words(value: float, word_order: str, byte_order: str) -> list[int]:
    """Encode a float32 as a device with these orders would put it in two registers (tests, simulator)."""
    raw = struct.pack(">f", value)
    if byte_order == "little":
        raw = raw[1::-1] + raw[:1:-1]
    words = list(struct.unpack(">HH", raw))
    return words[::-1] if word_order == "little" else words
