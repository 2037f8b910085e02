"""Sensor-model profiles: which registers hold which metric, how to decode and scale them (YAML data)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from villagewatch import contract
from villagewatch.schema import ConfigError, Ctx, Key, ListOf, Map, Num, OneOf, Str, validate_file

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
TYPES = {"u16": (1, ">H"), "i16": (1, ">h"), "u32": (2, ">I"), "i32": (2, ">i"), "f32": (2, ">f")}
# device unit -> (contract unit, factor)
CONVERSIONS = {("mS/cm", "µS/cm"): 1000.0, ("ppt", "‰"): 1.0, ("g/L", "‰"): 1.0, ("mm", "m"): 0.001,
               ("cm", "m"): 0.01, ("%RH", "%"): 1.0, ("mg/m³", "µg/m³"): 1000.0}
DISTANCE = "distance"  # raw quantity of ultrasonic sensors, turned into fill or level per station


def _metric(value: Any, ctx: Ctx) -> str:
    if value != DISTANCE and value not in contract.METRICS:
        raise ctx.error(f"unknown metric {value!r}", f"a contract metric or {DISTANCE!r}")
    return value


REGISTER = Map([
    Key("metric", _metric),
    Key("address", Num(0, 65_535, integer=True), doc="protocol address, 0-based (holding 40001 = 0)"),
    Key("function", Num(3, 4, integer=True), required=False, default=3, doc="3 holding, 4 input"),
    Key("type", OneOf(*TYPES), required=False, default="u16"),
    Key("word_order", OneOf("big", "little"), required=False, default="big"),
    Key("byte_order", OneOf("big", "little"), required=False, default="big"),
    Key("scale", Num(), required=False, default=1.0),
    Key("offset", Num(), required=False, default=0.0),
    Key("unit", Str(what="unit"), required=False, default=""),
], name="register")

PROFILE_SCHEMA = Map([
    Key("model", Str(what="model id")),
    Key("name_vi", Str()),
    Key("name_en", Str()),
    Key("reference", Str(), required=False, default="", doc="datasheet the register map comes from"),
    Key("verified", Str(), required=False, default="no",
        doc="'yes' once checked against a real unit; 'no' means (check) in docs/edge.md"),
    Key("registers", ListOf(REGISTER, min_len=1)),
], name="sensor profile")


@dataclass(frozen=True)
class Register:
    metric: str
    address: int
    function: int
    type: str
    word_order: str
    byte_order: str
    scale: float
    offset: float
    factor: float  # unit conversion to the contract unit

    @property
    def count(self) -> int:
        return TYPES[self.type][0]

    def decode(self, words: list[int]) -> float:
        if self.word_order == "little":
            words = list(reversed(words))
        raw = b"".join(struct.pack(">H", w) for w in words)
        if self.byte_order == "little":
            raw = b"".join(raw[i:i + 2][::-1] for i in range(0, len(raw), 2))
        value = struct.unpack(TYPES[self.type][1], raw)[0]
        return (value * self.scale + self.offset) * self.factor


@dataclass(frozen=True)
class Profile:
    model: str
    name_vi: str
    name_en: str
    registers: tuple[Register, ...]
    path: str

    def blocks(self) -> list[tuple[int, int, int, list[Register]]]:
        """(function, start, count, registers): one request per function code (≤125 registers)."""
        out = []
        for fc in (3, 4):
            regs = [r for r in self.registers if r.function == fc]
            if not regs:
                continue
            start = min(r.address for r in regs)
            end = max(r.address + r.count for r in regs)
            if end - start > 125:
                out += [(fc, r.address, r.count, [r]) for r in regs]
            else:
                out.append((fc, start, end - start, regs))
        return out


def load_profile(name: str) -> Profile:
    """A profile by name (file in profiles/) or by path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(f"sensor profile {name!r} not found", file=str(path), hint=f"profiles: {known}")
    data = validate_file(path, PROFILE_SCHEMA)
    regs = []
    for i, r in enumerate(data["registers"]):
        unit = r["unit"]
        target = "m" if r["metric"] == DISTANCE else contract.METRICS[r["metric"]].unit
        if unit == target:
            factor = 1.0
        elif (unit, target) in CONVERSIONS:
            factor = CONVERSIONS[(unit, target)]
        else:
            raise ConfigError(f"unit {unit!r} cannot be converted to {target!r} for {r['metric']}",
                              file=str(path), path=f"registers[{i}].unit",
                              hint=f"use {target!r} or one of {sorted({u for u, t in CONVERSIONS if t == target})}")
        regs.append(Register(r["metric"], r["address"], r["function"], r["type"], r["word_order"],
                             r["byte_order"], float(r["scale"]), float(r["offset"]), factor))
    return Profile(data["model"], data["name_vi"], data["name_en"], tuple(regs), str(path))
