"""Operator side of OTA: choose the devices (list or percentage), sign and publish the manifest
retained on each device's OTA command topic, and collect the devices' reports.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from firmware_tools.inventory import Device, Inventory
from firmware_tools.mosquitto_auth import (
    OTA_STATUS_SUBSCRIPTIONS,
    ROLE_GATEWAY,
    ROLE_STATION,
    gateway_ota_command_topic,
    station_ota_command_topic,
)
from villagewatch import contract, ota


class RolloutError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def command_topic(device: Device) -> str:
    if device.role == ROLE_GATEWAY:
        return gateway_ota_command_topic(device.commune or "", device.gateway or "")
    return station_ota_command_topic(device.commune or "", device.station or "")


def select_targets(devices: list[Device], *, stations: list[str] | None = None, gateways: list[str] | None = None,
                   percent: float | None = None) -> list[Device]:
    """Explicit lists win; otherwise a stable pseudo-random ``percent`` of the devices (the same
    rollout id always picks the same devices, a larger percentage adds devices, never swaps them)."""
    nodes = [d for d in devices if d.role in (ROLE_STATION, ROLE_GATEWAY)]
    if stations or gateways:
        chosen: list[Device] = []
        for wanted, role, attr in ((stations or [], ROLE_STATION, "station"), (gateways or [], ROLE_GATEWAY, "gateway")):
            for name in wanted:
                match = [d for d in nodes if d.role == role and getattr(d, attr) == name]
                if not match:
                    raise RolloutError(f"{role} {name!r} is not provisioned",
                                       "villagewatch device list shows provisioned devices")
                chosen += match
        return chosen
    if percent is None:
        raise RolloutError("choose devices with --stations/--gateways or --percent")
    if not 0 < percent <= 100:
        raise RolloutError(f"--percent {percent} must be in (0, 100]")
    count = math.ceil(len(nodes) * percent / 100)
    # stable order per device, independent of the rollout id so percentages grow monotonically
    order = sorted(nodes, key=lambda d: hashlib.sha256(d.id.encode()).hexdigest())
    return order[:count]


@dataclass
class Published:
    rollout_id: str
    manifest: ota.Manifest
    topics: dict[str, str]  # device id → topic


def publish(client: mqtt.Client, inventory: Inventory, *, image_path: Path, version: str, url: str,
            targets: list[Device], signing_key: Path, allow_downgrade: bool = False) -> Published:
    if not targets:
        raise RolloutError("no devices selected")
    image = image_path.read_bytes()
    rollout_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    manifest = ota.build_manifest(image, version, url, [d.id for d in targets], rollout_id, allow_downgrade)
    body = manifest.to_bytes()
    payload = ota.envelope(body, ota.sign(body, ota.load_private_key(signing_key)))
    if len(payload) > contract.MAX_PAYLOAD_BYTES:
        raise RolloutError(f"manifest of {len(payload)} bytes exceeds the broker limit; roll out in smaller groups")
    topics = {}
    for device in targets:
        topic = command_topic(device)
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(15)
        if not info.is_published():
            raise RolloutError(f"broker did not acknowledge the manifest for {device.id}")
        inventory.add_rollout(rollout_id, device.id, version, manifest.sha256, topic)
        topics[device.id] = topic
    return Published(rollout_id, manifest, topics)


def stage_image(image_path: Path, publish_dir: Path, url_base: str, version: str) -> str:
    """Copy the image where the download server serves it; returns its URL."""
    publish_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(image_path.read_bytes()).hexdigest()[:12]
    name = f"{image_path.stem}-{version}-{digest}{image_path.suffix}"
    shutil.copyfile(image_path, publish_dir / name)
    return f"{url_base.rstrip('/')}/{name}"


def device_of_status_topic(topic: str) -> str | None:
    parts = topic.split("/")
    if len(parts) == 6 and parts[3] != contract.GATEWAY_SEGMENT:  # vw/v1/c/s/status/ota
        return f"{parts[2]}.{parts[3]}"
    if len(parts) == 7 and parts[3] == contract.GATEWAY_SEGMENT:  # vw/v1/c/_gw/g/status/ota
        return f"{parts[2]}.{contract.GATEWAY_SEGMENT}.{parts[4]}"
    return None


def collect_reports(client: mqtt.Client, expect: set[str], timeout: float = 5.0, quiet: float = 0.5) -> dict[str, dict]:
    """Retained OTA reports of all devices: returns when every expected device reported, or when
    the retained burst after subscribing has gone quiet, or at timeout."""
    reports: dict[str, dict] = {}
    lock = threading.Lock()
    last = [time.monotonic()]
    subacked = threading.Event()

    def on_message(c, u, msg) -> None:
        device = device_of_status_topic(msg.topic)
        if device is None:
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with lock:
            reports[device] = body
            last[0] = time.monotonic()

    client.on_message = on_message
    client.on_subscribe = lambda *a: subacked.set()
    client.subscribe([(t, 1) for t in OTA_STATUS_SUBSCRIPTIONS])
    deadline = time.monotonic() + timeout
    subacked.wait(timeout)
    last[0] = time.monotonic()
    while time.monotonic() < deadline:
        with lock:
            if expect and expect <= reports.keys():
                break
            if time.monotonic() - last[0] > quiet:
                break
        time.sleep(0.05)
    return reports
