"""The project certificate authority: one EC P-256 key pair that signs the broker's server
certificate and the devices' client certificates (ESP32 mbedTLS handles P-256 in hardware).

Files in the CA folder: ``ca.key`` (0600, keep it on the technician laptop / offline),
``ca.crt`` (copy to the broker and into every device's NVS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 10
LEAF_DAYS = 825  # a device stays in the field for years, but re-provisioning renews it well before


class CAError(RuntimeError):
    """The CA folder is missing or incomplete (a user error: run `villagewatch ca init`)."""


@dataclass
class Issued:
    cert_pem: bytes
    key_pem: bytes
    fingerprint: str  # SHA-256 of the DER certificate, hex

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.cert_pem)
        _write_private(key_path, self.key_pem)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cert_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


class CertificateAuthority:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def key_path(self) -> Path:
        return self.folder / "ca.key"

    @property
    def cert_path(self) -> Path:
        return self.folder / "ca.crt"

    def exists(self) -> bool:
        return self.key_path.exists() and self.cert_path.exists()

    def init(self, name: str = "villagewatch project CA", force: bool = False) -> str:
        """Create the CA key and self-signed certificate; returns its fingerprint."""
        if self.exists() and not force:
            raise CAError(f"a CA already exists in {self.folder}")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "villagewatch"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.key_path, _key_pem(key))
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_fingerprint(cert)

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if not self.exists():
            raise CAError(f"no project CA in {self.folder}")
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return key, cert  # type: ignore[return-value]

    def ca_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def _issue(self, common_name: str, usage: x509.ObjectIdentifier, days: int,
               san: list[x509.GeneralName] | None = None) -> Issued:
        ca_key, ca_cert = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "villagewatch"),
                                            x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert_fingerprint(cert))

    def issue_client(self, common_name: str, days: int = LEAF_DAYS) -> Issued:
        """Client certificate; the common name is the device's broker username."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, days)

    def issue_server(self, hosts: list[str], days: int = LEAF_DAYS) -> Issued:
        san: list[x509.GeneralName] = []
        for host in hosts:
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                san.append(x509.DNSName(host))
        return self._issue(hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, days, san)


def self_signed_client(common_name: str) -> Issued:
    """A certificate the project CA did not sign (used to show the broker refuses it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert_fingerprint(cert))
