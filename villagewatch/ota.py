"""Signed over-the-air updates: the manifest, its Ed25519 signature, verification and apply/rollback.

Wire format (published retained on a device's OTA command topic, see mosquitto_auth):
``{"manifest": "<canonical JSON text>", "signature": "<base64 Ed25519 signature of that text>"}``.
The manifest text is signed byte for byte, so no JSON re-serialisation can change what was signed.
The manifest names its target devices, the image's SHA-256, size, version and download URL; the
image itself travels over HTTP(S) (it is far larger than the broker's 64 KiB message limit).

For the gateway (edge/ calls these):
- ``verify_update(manifest_bytes, signature, image_bytes, public_key, device_id=..., current_version=...)``
  → ``Manifest`` or raises ``OtaRejected(reason, message)``; reasons are stable strings (REASONS).
- ``apply_update(install_dir, manifest, image_bytes, health_check)`` → ``ApplyResult``: keeps the
  previous image for rollback, rolls back when the health check fails.
- ``status_payload(...)`` → the retained report the gateway publishes on its OTA status topic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST_KIND = "villagewatch-ota"
MANIFEST_FORMAT = 1
MAX_IMAGE_BYTES = 64 * 1024 * 1024

R_BAD_ENVELOPE = "bad_envelope"
R_BAD_SIGNATURE = "bad_signature"
R_BAD_MANIFEST = "bad_manifest"
R_NOT_FOR_DEVICE = "not_for_this_device"
R_DOWNGRADE = "downgrade"
R_SIZE = "size_mismatch"
R_HASH = "hash_mismatch"
R_DOWNLOAD = "download_failed"
REASONS = (R_BAD_ENVELOPE, R_BAD_SIGNATURE, R_BAD_MANIFEST, R_NOT_FOR_DEVICE, R_DOWNGRADE, R_SIZE, R_HASH,
           R_DOWNLOAD)

# States a device reports (retained) on its OTA status topic.
S_DOWNLOADING = "downloading"
S_APPLIED = "applied"
S_REJECTED = "rejected"
S_ROLLED_BACK = "rolled_back"
S_FAILED = "failed"


class OtaRejected(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- keys


def generate_keypair(folder: Path) -> tuple[Path, Path]:
    """``signing.key`` (PEM, 0600: keep it on the release laptop) and ``signing.pub`` (raw 32 bytes,
    written into each device's NVS as ``ota_pub`` and given to gateways)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    priv, pub = folder / "signing.key", folder / "signing.pub"
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return priv, pub


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(material: bytes | str | Path | Ed25519PublicKey) -> Ed25519PublicKey:
    """Raw 32 bytes, base64 text of them, a PEM public key, or a path to any of these."""
    if isinstance(material, Ed25519PublicKey):
        return material
    if isinstance(material, Path):
        material = material.read_bytes()
    if isinstance(material, str):
        material = material.encode()
    if material.startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(material)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    if len(material) != 32:
        material = base64.b64decode(material.strip(), validate=True)
    return Ed25519PublicKey.from_public_bytes(material)


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    version: str
    sha256: str
    size: int
    url: str
    targets: tuple[str, ...]
    rollout_id: str
    created_ms: int
    kind: str = MANIFEST_KIND
    format: int = MANIFEST_FORMAT
    allow_downgrade: bool = False

    def to_bytes(self) -> bytes:
        body = asdict(self)
        body["targets"] = list(self.targets)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_manifest(image: bytes, version: str, url: str, targets: list[str], rollout_id: str,
                   allow_downgrade: bool = False) -> Manifest:
    return Manifest(version, hashlib.sha256(image).hexdigest(), len(image), url, tuple(sorted(targets)),
                    rollout_id, int(time.time() * 1000), allow_downgrade=allow_downgrade)


def sign(manifest_bytes: bytes, key: Ed25519PrivateKey) -> bytes:
    return key.sign(manifest_bytes)


def envelope(manifest_bytes: bytes, signature: bytes) -> bytes:
    return json.dumps({"manifest": manifest_bytes.decode(), "signature": base64.b64encode(signature).decode()},
                      ensure_ascii=False).encode()


def open_envelope(payload: bytes) -> tuple[bytes, bytes]:
    try:
        body = json.loads(payload)
        return body["manifest"].encode(), base64.b64decode(body["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OtaRejected(R_BAD_ENVELOPE, f"OTA command is not a signed manifest envelope ({exc})") from exc


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Order versions like 1.2.10 > 1.2.9; non-numeric parts compare as text after numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+_]", version))


def verify_manifest(manifest_bytes: bytes, signature: bytes, public_key: bytes | str | Path | Ed25519PublicKey,
                    device_id: str | None = None, current_version: str | None = None) -> Manifest:
    """Signature first (nothing unsigned is even parsed), then the manifest's own rules."""
    try:
        load_public_key(public_key).verify(signature, manifest_bytes)
    except InvalidSignature as exc:
        raise OtaRejected(R_BAD_SIGNATURE, "manifest signature does not verify with the project key") from exc
    try:
        body = json.loads(manifest_bytes)
        body["targets"] = tuple(body["targets"])
        manifest = Manifest(**body)
    except (ValueError, TypeError, KeyError) as exc:
        raise OtaRejected(R_BAD_MANIFEST, f"manifest fields are invalid ({exc})") from exc
    if manifest.kind != MANIFEST_KIND or manifest.format != MANIFEST_FORMAT:
        raise OtaRejected(R_BAD_MANIFEST, f"unsupported manifest {manifest.kind!r} format {manifest.format}")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256) or not 0 < manifest.size <= MAX_IMAGE_BYTES:
        raise OtaRejected(R_BAD_MANIFEST, "manifest sha256 or size is malformed")
    if device_id is not None and device_id not in manifest.targets:
        raise OtaRejected(R_NOT_FOR_DEVICE, f"manifest targets {', '.join(manifest.targets)}, not {device_id}")
    if (current_version and not manifest.allow_downgrade
            and version_key(manifest.version) < version_key(current_version)):
        raise OtaRejected(R_DOWNGRADE, f"version {manifest.version} is older than the installed {current_version}")
    return manifest


def verify_update(manifest_bytes: bytes, signature: bytes, image_bytes: bytes,
                  public_key: bytes | str | Path | Ed25519PublicKey, *, device_id: str | None = None,
                  current_version: str | None = None) -> Manifest:
    """Verify signature, manifest and image (size, SHA-256). Returns the manifest or raises OtaRejected."""
    manifest = verify_manifest(manifest_bytes, signature, public_key, device_id, current_version)
    if len(image_bytes) != manifest.size:
        raise OtaRejected(R_SIZE, f"image is {len(image_bytes)} bytes, manifest says {manifest.size}")
    digest = hashlib.sha256(image_bytes).hexdigest()
    if digest != manifest.sha256:
        raise OtaRejected(R_HASH, f"image SHA-256 {digest[:16]}… does not match the manifest's {manifest.sha256[:16]}…")
    return manifest


# --------------------------------------------------------------------------- apply / rollback

IMAGE_NAME = "firmware.bin"
MANIFEST_NAME = "manifest.json"


@dataclass
class ApplyResult:
    state: str  # S_APPLIED | S_ROLLED_BACK
    version: str
    previous_version: str | None
    detail: str = ""


def installed_manifest(install_dir: Path) -> dict[str, Any] | None:
    try:
        body = json.loads((install_dir / "current" / MANIFEST_NAME).read_text())
        return body if isinstance(body, dict) else None
    except (OSError, ValueError):
        return None


def installed_version(install_dir: Path) -> str | None:
    m = installed_manifest(install_dir)
    return m.get("version") if m else None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def apply_update(install_dir: Path, manifest: Manifest, image_bytes: bytes,
                 health_check: Callable[[Path], bool] | None = None) -> ApplyResult:
    """Install into ``current/``, keeping the running image in ``previous/``. If ``health_check``
    (given the new ``current/`` folder) returns False or raises, put ``previous/`` back."""
    install_dir.mkdir(parents=True, exist_ok=True)
    staging, current, previous = install_dir / "staging", install_dir / "current", install_dir / "previous"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _write_synced(staging / IMAGE_NAME, image_bytes)
    _write_synced(staging / MANIFEST_NAME, manifest.to_bytes())
    before = installed_version(install_dir)
    if current.exists():
        shutil.rmtree(previous, ignore_errors=True)
        current.rename(previous)
    staging.rename(current)
    try:
        healthy = True if health_check is None else bool(health_check(current))
        reason = "" if healthy else "health check failed"
    except Exception as exc:  # noqa: BLE001 - any failure of the new image means roll back
        healthy, reason = False, f"health check raised {type(exc).__name__}: {exc}"
    if healthy:
        return ApplyResult(S_APPLIED, manifest.version, before)
    failed = install_dir / "failed"
    shutil.rmtree(failed, ignore_errors=True)
    current.rename(failed)
    if previous.exists():
        previous.rename(current)
    return ApplyResult(S_ROLLED_BACK, manifest.version, before, reason)


def status_payload(device_id: str, state: str, version: str | None, *, detail: str = "",
                   reason: str | None = None, installed: str | None = None, rollout_id: str | None = None) -> bytes:
    body = {"device": device_id, "state": state, "version": version, "installed": installed,
            "detail": detail, "ts": int(time.time() * 1000)}
    if reason:
        body["reason"] = reason
    if rollout_id:
        body["rollout_id"] = rollout_id
    return json.dumps(body, ensure_ascii=False).encode()
