"""Where the technician tools keep their state, and the secrets store.

Layout under the data folder (default ``var/firmware``, env ``VW_FIRMWARE_DIR``)::

    inventory.sqlite          devices, calibrations, flash history, OTA rollouts
    secrets/<device>.json     password (+ client key/cert) of each device, mode 0600: `device flash`
                              writes them into the device's NVS; delete the laptop copy when done
    ca/ca.key, ca/ca.crt      project CA (`villagewatch ca init`)
    ota/signing.key, .pub     Ed25519 OTA key pair (`villagewatch ota keygen`)
    broker/passwd, broker/acl rendered broker files (env ``VW_BROKER_DIR`` to write them elsewhere,
                              e.g. /etc/mosquitto/villagewatch on the server)
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from firmware_tools.ca import CertificateAuthority
from firmware_tools.inventory import Inventory
from firmware_tools.mosquitto_auth import reload_broker, write_broker_files

DEFAULT_DATA_DIR = "var/firmware"
DEFAULT_PIDFILES = (Path("/run/mosquitto/mosquitto.pid"), Path("/var/run/mosquitto/mosquitto.pid"))


@dataclass
class Workspace:
    data_dir: Path
    broker_dir: Path
    broker_pid_file: Path | None = None
    reload_command: str | None = None  # e.g. "systemctl reload mosquitto" (systemd sends SIGHUP)

    @classmethod
    def from_env(cls, data_dir: str | None = None, broker_dir: str | None = None,
                 broker_pid_file: str | None = None, env: dict[str, str] | None = None) -> Workspace:
        env = dict(os.environ) if env is None else env
        data = Path(data_dir or env.get("VW_FIRMWARE_DIR") or DEFAULT_DATA_DIR)
        broker = Path(broker_dir or env.get("VW_BROKER_DIR") or data / "broker")
        pid_file = broker_pid_file or env.get("VW_BROKER_PIDFILE")
        if pid_file is None:
            pid_file = next((str(p) for p in DEFAULT_PIDFILES if p.exists()), None)
        return cls(data, broker, Path(pid_file) if pid_file else None, env.get("VW_BROKER_RELOAD") or None)

    # ------------------------------------------------------------------ parts
    def inventory(self) -> Inventory:
        return Inventory(self.data_dir / "inventory.sqlite")

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.data_dir / "ca")

    @property
    def ota_dir(self) -> Path:
        return self.data_dir / "ota"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    # ------------------------------------------------------------------ secrets
    def secret_path(self, device_id: str) -> Path:
        return self.secrets_dir / f"{device_id}.json"

    def save_secret(self, device_id: str, secret: dict) -> Path:
        path = self.secret_path(device_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(secret, fh, indent=2)
        return path

    def load_secret(self, device_id: str) -> dict | None:
        try:
            return json.loads(self.secret_path(device_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ broker
    def sync_broker(self, inventory: Inventory, reload: bool = True) -> int | None:
        """Re-render passwd + acl from the inventory and SIGHUP the broker; returns the PID told."""
        write_broker_files(self.broker_dir, inventory.accounts())
        if not reload:
            return None
        if self.reload_command:
            subprocess.run(shlex.split(self.reload_command), check=True, timeout=60)
            return 0
        if self.broker_pid_file is not None:
            return reload_broker(self.broker_pid_file)
        return None
