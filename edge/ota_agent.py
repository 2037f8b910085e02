"""Gateway-side OTA handler: subscribe to the gateway's retained OTA command, verify, apply, report.

The edge gateway runs one ``OtaAgent`` (``villagewatch ota agent`` runs it standalone)::

    agent = OtaAgent(mqtt_url="mqtts://gw-user:pw@broker:8883", commune=..., gateway=...,
                     install_dir=Path("/var/lib/villagewatch/edge-release"),
                     public_key=Path("/etc/villagewatch/ota-signing.pub"),
                     ca_file=..., cert_file=..., key_file=..., health_check=my_check)
    agent.start(); ...; agent.stop()

Every outcome is published retained on the gateway's OTA status topic, so ``villagewatch ota
status`` shows it even if it was not watching at the time. Work happens on a worker thread (a
download must not stall the MQTT network loop). A retained manifest seen again after a restart
is recognised by its SHA-256 and not applied twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from villagewatch import ota
from villagewatch.contract import gateway_device_id, gateway_ota_command_topic, gateway_ota_status_topic
from villagewatch.mqtt_util import connect

log = logging.getLogger(__name__)


def fetch(url: str, limit: int, timeout: float = 60) -> bytes:
    """Download at most ``limit`` + 1 bytes (an over-long image is a mismatch, not a memory problem)."""
    if not url.startswith(("http://", "https://", "file://")):
        raise ota.OtaRejected(ota.R_BAD_MANIFEST, f"unsupported image URL {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            return resp.read(limit + 1)
    except OSError as exc:
        raise ota.OtaRejected(ota.R_DOWNLOAD, f"cannot download {url}: {exc}") from exc


class OtaAgent:
    def __init__(self, *, mqtt_url: str, commune: str, gateway: str, install_dir: Path,
                 public_key: bytes | str | Path, ca_file: str | Path | None = None,
                 cert_file: str | Path | None = None, key_file: str | Path | None = None,
                 health_check: Callable[[Path], bool] | None = None,
                 fetcher: Callable[[str, int], bytes] = fetch):
        self.mqtt_url, self.ca_file, self.cert_file, self.key_file = mqtt_url, ca_file, cert_file, key_file
        self.commune, self.gateway = commune, gateway
        self.device_id = gateway_device_id(commune, gateway)
        self.install_dir = Path(install_dir)
        self.public_key = ota.load_public_key(public_key)
        self.health_check = health_check
        self.fetcher = fetcher
        self.command_topic = gateway_ota_command_topic(commune, gateway)
        self.status_topic = gateway_ota_status_topic(commune, gateway)
        self.reports: list[dict] = []  # what this agent published, newest last (for logs and tests)
        self._jobs: queue.Queue[bytes | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="ota-agent", daemon=True)
        self._client: mqtt.Client | None = None

    def start(self) -> OtaAgent:
        self._client = connect(self.mqtt_url, ca_file=self.ca_file, cert_file=self.cert_file,
                               key_file=self.key_file, client_id=f"ota-{self.device_id}")
        self._client.on_message = lambda c, u, msg: self._jobs.put(msg.payload)
        self._worker.start()
        self._client.subscribe(self.command_topic, qos=1)
        return self

    def stop(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=30)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    # ------------------------------------------------------------------ work
    def _work(self) -> None:
        while (payload := self._jobs.get()) is not None:
            try:
                self.handle(payload)
            except Exception:  # noqa: BLE001 - a bad update must never stop the gateway
                log.exception("OTA command failed unexpectedly")
                self._report(ota.S_FAILED, None, detail="internal error, see gateway log")

    def handle(self, payload: bytes) -> str:
        """Process one OTA command; returns the state reported."""
        if not payload:
            return "cleared"  # retained command removed by the operator
        installed = ota.installed_manifest(self.install_dir)
        current_version = installed.get("version") if installed else None
        version = rollout = None
        try:
            manifest_bytes, signature = ota.open_envelope(payload)
            manifest = ota.verify_manifest(manifest_bytes, signature, self.public_key, self.device_id,
                                           current_version)
            version, rollout = manifest.version, manifest.rollout_id
            if installed and installed.get("sha256") == manifest.sha256:
                return self._report(ota.S_APPLIED, version, installed=current_version, rollout_id=rollout,
                                    detail="already installed")
            self._report(ota.S_DOWNLOADING, version, installed=current_version, rollout_id=rollout)
            image = self.fetcher(manifest.url, manifest.size)
            ota.verify_update(manifest_bytes, signature, image, self.public_key, device_id=self.device_id,
                              current_version=current_version)
        except ota.OtaRejected as exc:
            log.warning("OTA update rejected: %s", exc)
            return self._report(ota.S_REJECTED, version, reason=exc.reason, detail=exc.message,
                                installed=current_version, rollout_id=rollout)
        result = ota.apply_update(self.install_dir, manifest, image, self.health_check)
        return self._report(result.state, version, detail=result.detail,
                            installed=ota.installed_version(self.install_dir), rollout_id=rollout)

    def _report(self, state: str, version: str | None, **kw) -> str:
        payload = ota.status_payload(self.device_id, state, version, **kw)
        self.reports.append({"state": state, "version": version, **kw})
        if self._client is not None:
            self._client.publish(self.status_topic, payload, qos=1, retain=True).wait_for_publish(10)
        return state
