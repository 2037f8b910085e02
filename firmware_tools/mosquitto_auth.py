"""Mosquitto 2.0 password file and ACL file, generated from the device inventory.

The inventory (SQLite) is the single source of truth; the two broker files are rendered from it
after every change and written atomically, so a half-written file is never seen by a reloading
broker. Hashes are the ``$7$`` format that ``mosquitto_passwd`` writes (PBKDF2-SHA512, 101
iterations, 12-byte salt), computed here so no binary is needed on a technician laptop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from villagewatch import contract

HASH_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; the broker reads the count from the hash
SALT_BYTES = 12
PASSWORD_BYTES = 24  # 192 bits of randomness, URL-safe base64 → 32 characters

# Roles of broker accounts. Devices publish only under their own topics; services have fixed grants.
ROLE_STATION = "station"
ROLE_GATEWAY = "gateway"
ROLE_INGEST = "ingest"
ROLE_ALERTS = "alerts"
ROLE_OPS = "ops"
ROLE_PORTAL = "portal"
SERVICE_ROLES = (ROLE_INGEST, ROLE_ALERTS, ROLE_OPS, ROLE_PORTAL)
DEVICE_ROLES = (ROLE_STATION, ROLE_GATEWAY)

# Sub-topics used by OTA. They hang below topics of the contract so ACL grants stay per device:
# the manifest below the device's command topic (retained), its report below the status topic.
OTA_SUFFIX = contract.OTA_SEGMENT


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expected = hash_password(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(expected.split("$")[-1], digest)


def fingerprint(text: str) -> str:
    """Short, non-secret identifier of a credential (of its hash line, never of the password)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- topics per account


# The OTA topics are part of the wire contract; re-exported here for the broker's ACL rules.
station_ota_command_topic = contract.station_ota_command_topic
gateway_ota_command_topic = contract.gateway_ota_command_topic
station_ota_status_topic = contract.station_ota_status_topic
gateway_ota_status_topic = contract.gateway_ota_status_topic
OTA_STATUS_SUBSCRIPTIONS = contract.OTA_STATUS_SUBSCRIPTIONS


@dataclass(frozen=True)
class Account:
    """One broker login. For devices, ``stations`` are the stations whose topics it may write."""

    username: str
    password_hash: str
    role: str
    commune: str | None = None
    gateway: str | None = None
    stations: tuple[str, ...] = ()


def _station_grants(commune: str, station: str) -> list[str]:
    return [
        f"topic write {contract.telemetry_topic(commune, station)}",
        f"topic write {contract.station_status_topic(commune, station)}",
        f"topic write {station_ota_status_topic(commune, station)}",
        f"topic read {contract.station_command_topic(commune, station)}/#",
    ]


def _all_commands() -> list[str]:
    root = contract.TOPIC_ROOT
    return [f"{root}/+/+/{contract.COMMANDS_SEGMENT}/#",
            f"{root}/+/{contract.GATEWAY_SEGMENT}/+/{contract.COMMANDS_SEGMENT}/#"]


def acl_lines(account: Account) -> list[str]:
    """ACL grants of one account. Mosquitto denies everything not granted."""
    role, c = account.role, account.commune
    if role == ROLE_STATION:
        assert c and len(account.stations) == 1
        return _station_grants(c, account.stations[0])
    if role == ROLE_GATEWAY:
        assert c and account.gateway
        lines = [
            f"topic write {contract.gateway_status_topic(c, account.gateway)}",
            f"topic write {gateway_ota_status_topic(c, account.gateway)}",
            f"topic read {contract.gateway_command_topic(c, account.gateway)}/#",
        ]
        for station in account.stations:
            lines += _station_grants(c, station)
        return lines
    status_reads = [f"topic read {contract.TELEMETRY_SUBSCRIPTION}",
                    f"topic read {contract.STATION_STATUS_SUBSCRIPTION}",
                    f"topic read {contract.GATEWAY_STATUS_SUBSCRIPTION}"]
    if role == ROLE_INGEST:
        return status_reads
    if role == ROLE_ALERTS:
        return status_reads + [f"topic readwrite {contract.TOPIC_ROOT}/+/{contract.ALERTS_SEGMENT}/#"]
    if role == ROLE_PORTAL:
        # residents' pages: live readings and alerts in, new feedback out (portal/queue_web.py); it
        # may read feedback back (another portal worker's announcements); nobody else may write it
        return [f"topic read {contract.TELEMETRY_SUBSCRIPTION}",
                f"topic read {contract.ALERTS_SUBSCRIPTION}",
                f"topic readwrite {contract.FEEDBACK_SUBSCRIPTION}"]
    if role == ROLE_OPS:
        # technicians' console: send commands and OTA manifests, watch status and OTA reports
        return (status_reads
                + [f"topic read {t}" for t in OTA_STATUS_SUBSCRIPTIONS]
                + [f"topic readwrite {t}" for t in _all_commands()])
    raise ValueError(f"unknown role {role!r}")


def render_acl(accounts: Iterable[Account]) -> str:
    out = ["# Generated by `villagewatch device` from the device inventory — do not edit by hand:",
           "# the next provisioning overwrites it. Anything not granted here is denied.", ""]
    for account in sorted(accounts, key=lambda a: a.username):
        out.append(f"# role: {account.role}")
        out.append(f"user {account.username}")
        out.extend(acl_lines(account))
        out.append("")
    return "\n".join(out)


def render_passwd(accounts: Iterable[Account]) -> str:
    return "".join(f"{a.username}:{a.password_hash}\n" for a in sorted(accounts, key=lambda a: a.username))


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write next to the target, fsync, then rename: a reloading broker never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_broker_files(broker_dir: Path, accounts: list[Account]) -> tuple[Path, Path]:
    passwd, acl = broker_dir / "passwd", broker_dir / "acl"
    write_atomic(passwd, render_passwd(accounts))
    write_atomic(acl, render_acl(accounts))
    return passwd, acl


def reload_broker(pid_file: Path | None = None, pid: int | None = None) -> int | None:
    """SIGHUP makes Mosquitto re-read its password and ACL files. Returns the PID signalled."""
    if pid is None and pid_file is not None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    return pid
