"""Source registry: one line per source type ("type" in a station's ``source:`` → class path)."""

from __future__ import annotations

import importlib

SOURCES: dict[str, str] = {
    "simulated": "edge.sources.simulated.source:SimulatedSource",
    "modbus_rtu": "edge.sources.modbus_rtu.source:ModbusRtuSource",
    "serial_lines": "edge.sources.serial_lines.source:SerialLinesSource",
    "mqtt_bridge": "edge.sources.mqtt_bridge.source:MqttBridgeSource",
}


def source_class(type_name: str):
    module, _, cls = SOURCES[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)
