"""Device inventory (SQLite): identity, credentials' fingerprints, hardware, firmware version,
calibration records, flash history and OTA rollouts.

It is the source of truth for the broker's password and ACL files (mosquitto_auth renders them
from here). WAL mode and short transactions: a technician's second terminal may read while a flash
is in progress.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from firmware_tools.mosquitto_auth import Account

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,             -- also the broker username
    role TEXT NOT NULL,              -- station | gateway | ingest | alerts | ops
    commune TEXT,
    station TEXT,
    gateway TEXT,
    stations TEXT NOT NULL DEFAULT '',  -- comma-separated stations a gateway may publish for
    hardware TEXT NOT NULL DEFAULT '',
    firmware_version TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    credential_fingerprint TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    rotated_ms INTEGER NOT NULL,
    rotations INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id),
    ts_ms INTEGER NOT NULL,
    metric TEXT NOT NULL,
    offset_value REAL NOT NULL DEFAULT 0,
    slope REAL NOT NULL DEFAULT 1,
    reference TEXT NOT NULL DEFAULT '',
    by_whom TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS flashes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id),
    ts_ms INTEGER NOT NULL,
    by_whom TEXT NOT NULL,
    action TEXT NOT NULL,            -- flash | config
    image TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    port TEXT NOT NULL,
    chip TEXT NOT NULL DEFAULT '',
    verified INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS ota_rollouts (
    rollout_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    topic TEXT NOT NULL,
    published_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Device:
    id: str
    role: str
    commune: str | None
    station: str | None
    gateway: str | None
    stations: tuple[str, ...]
    hardware: str
    firmware_version: str
    password_hash: str
    credential_fingerprint: str
    cert_fingerprint: str
    created_ms: int
    rotated_ms: int
    rotations: int
    calibrations: list[dict] = field(default_factory=list)
    flashes: list[dict] = field(default_factory=list)

    def account(self) -> Account:
        return Account(self.id, self.password_hash, self.role, self.commune, self.gateway, self.stations)


def _device(row: sqlite3.Row) -> Device:
    d = dict(row)
    d["stations"] = tuple(s for s in d["stations"].split(",") if s)
    return Device(**d)


class Inventory:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ devices
    def upsert_credentials(self, device_id: str, role: str, password_hash: str, credential_fp: str, *,
                           commune: str | None = None, station: str | None = None,
                           gateway: str | None = None, stations: tuple[str, ...] = (),
                           hardware: str | None = None, cert_fingerprint: str | None = None) -> Device:
        """Create the device, or rotate its credentials (the old hash is replaced, not kept)."""
        ts = now_ms()
        with self.transaction() as db:
            existing = db.execute("SELECT * FROM devices WHERE id=?", (device_id,)).fetchone()
            if existing is None:
                db.execute(
                    "INSERT INTO devices (id, role, commune, station, gateway, stations, hardware, password_hash,"
                    " credential_fingerprint, cert_fingerprint, created_ms, rotated_ms)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (device_id, role, commune, station, gateway, ",".join(stations), hardware or "",
                     password_hash, credential_fp, cert_fingerprint or "", ts, ts))
            else:
                db.execute(
                    "UPDATE devices SET role=?, commune=?, station=?, gateway=?, stations=?, password_hash=?,"
                    " credential_fingerprint=?, cert_fingerprint=?, hardware=?, rotated_ms=?,"
                    " rotations=rotations+1 WHERE id=?",
                    (role, commune, station, gateway, ",".join(stations), password_hash, credential_fp,
                     cert_fingerprint if cert_fingerprint is not None else existing["cert_fingerprint"],
                     hardware if hardware is not None else existing["hardware"], ts, device_id))
        return self.get(device_id)  # type: ignore[return-value]

    def get(self, device_id: str, details: bool = False) -> Device | None:
        row = self._db.execute("SELECT * FROM devices WHERE id=?", (device_id,)).fetchone()
        if row is None:
            return None
        device = _device(row)
        if details:
            device.calibrations = [dict(r) for r in self._db.execute(
                "SELECT * FROM calibrations WHERE device_id=? ORDER BY ts_ms", (device_id,))]
            device.flashes = [dict(r) for r in self._db.execute(
                "SELECT * FROM flashes WHERE device_id=? ORDER BY ts_ms", (device_id,))]
        return device

    def devices(self, role: str | None = None, commune: str | None = None) -> list[Device]:
        q, args = "SELECT * FROM devices WHERE 1=1", []
        if role:
            q += " AND role=?"
            args.append(role)
        if commune:
            q += " AND commune=?"
            args.append(commune)
        return [_device(r) for r in self._db.execute(q + " ORDER BY id", args)]

    def accounts(self) -> list[Account]:
        return [d.account() for d in self.devices()]

    def set_firmware_version(self, device_id: str, version: str) -> None:
        self._db.execute("UPDATE devices SET firmware_version=? WHERE id=?", (version, device_id))

    def ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM devices ORDER BY id")]

    # ------------------------------------------------------------------ history
    def add_calibration(self, device_id: str, metric: str, offset: float = 0.0, slope: float = 1.0,
                        reference: str = "", by_whom: str = "", note: str = "", ts_ms: int | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO calibrations (device_id, ts_ms, metric, offset_value, slope, reference, by_whom, note)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (device_id, ts_ms or now_ms(), metric, offset, slope, reference, by_whom, note))
        return int(cur.lastrowid)

    def add_flash(self, device_id: str, *, by_whom: str, action: str, image: str, image_sha256: str,
                  port: str, chip: str, verified: bool, ok: bool, message: str = "") -> int:
        cur = self._db.execute(
            "INSERT INTO flashes (device_id, ts_ms, by_whom, action, image, image_sha256, port, chip, verified,"
            " ok, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (device_id, now_ms(), by_whom, action, image, image_sha256, port, chip, int(verified), int(ok),
             message))
        return int(cur.lastrowid)

    def add_rollout(self, rollout_id: str, device_id: str, version: str, sha256: str, topic: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ota_rollouts (rollout_id, device_id, version, sha256, topic, published_ms)"
            " VALUES (?,?,?,?,?,?)", (rollout_id, device_id, version, sha256, topic, now_ms()))

    def latest_rollouts(self) -> dict[str, dict]:
        """The most recent OTA target of each device."""
        rows = self._db.execute(
            "SELECT r.* FROM ota_rollouts r JOIN (SELECT device_id, MAX(published_ms) m FROM ota_rollouts"
            " GROUP BY device_id) x ON r.device_id=x.device_id AND r.published_ms=x.m ORDER BY r.device_id")
        return {r["device_id"]: dict(r) for r in rows}
