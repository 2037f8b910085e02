"""Create or rotate a device's identity: broker credentials, ACL grants, optional client certificate.

Provisioning the same device again rotates everything: the new password hash replaces the old one
in the inventory, the broker files are re-rendered and the broker is told to reload, after which the
old password is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware_tools.inventory import Device
from firmware_tools.mosquitto_auth import (
    ROLE_GATEWAY,
    ROLE_STATION,
    SERVICE_ROLES,
    fingerprint,
    hash_password,
    new_password,
)
from firmware_tools.workspace import Workspace
from villagewatch import contract
from villagewatch.sites import Site

SERVICE_PREFIX = "svc"


class ProvisionError(ValueError):
    """The request names something that does not exist (station, gateway, role)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def station_device_id(commune: str, station: str) -> str:
    # "." never occurs in ids (contract.ID_PATTERN), so the username cannot be ambiguous
    return f"{commune}.{station}"


# the naming scheme is part of the wire contract (the edge's OTA agent needs it too)
gateway_device_id = contract.gateway_device_id


def service_device_id(name: str) -> str:
    return f"{SERVICE_PREFIX}.{name}"


@dataclass
class Provisioned:
    device: Device
    password: str
    secret_path: Path
    cert_path: Path | None
    rotated: bool
    reloaded_pid: int | None


def _issue(ws: Workspace, device_id: str, role: str, with_cert: bool, **where) -> Provisioned:
    password = new_password()
    hashed = hash_password(password)
    # client_id: the broker replaces every client id by the username (use_username_as_clientid),
    # written here so each service/device configures the id its persistent session really has
    secret: dict = {"username": device_id, "password": password, "client_id": device_id, "role": role,
                    **where}
    cert_fp = None
    cert_path = None
    previous = ws.load_secret(device_id) or {}
    if not with_cert and "cert_pem" in previous:
        # rotating only the password keeps the certificate the device already holds
        secret.update({k: previous[k] for k in ("cert_pem", "key_pem", "ca_pem") if k in previous})
    if with_cert:
        issued = ws.ca.issue_client(device_id)
        secret.update(cert_pem=issued.cert_pem.decode(), key_pem=issued.key_pem.decode(),
                      ca_pem=ws.ca.ca_pem().decode())
        cert_fp = issued.fingerprint
        cert_path = ws.secrets_dir / f"{device_id}.crt"
        issued.write(cert_path, ws.secrets_dir / f"{device_id}.key")
    with ws.inventory() as inv:
        rotated = inv.get(device_id) is not None
        device = inv.upsert_credentials(
            device_id, role, hashed, fingerprint(hashed), commune=where.get("commune"),
            station=where.get("station"), gateway=where.get("gateway"),
            stations=tuple(where.get("stations", ())), hardware=where.get("hardware"),
            cert_fingerprint=cert_fp if with_cert else ("" if not rotated else None))
        secret_path = ws.save_secret(device_id, secret)
        pid = ws.sync_broker(inv)
    return Provisioned(device, password, secret_path, cert_path, rotated, pid)


def provision_station(ws: Workspace, site: Site, station: str, hardware: str | None = None,
                      with_cert: bool = False) -> Provisioned:
    if station not in site.stations:
        raise ProvisionError(f"no station {station!r} in commune {site.commune!r} ({site.path})",
                             _nearest(station, list(site.stations)))
    return _issue(ws, station_device_id(site.commune, station), ROLE_STATION, with_cert,
                  commune=site.commune, station=station, gateway=site.stations[station].gateway,
                  stations=[station], hardware=hardware)


def provision_gateway(ws: Workspace, site: Site, gateway: str, hardware: str | None = None,
                      with_cert: bool = False) -> Provisioned:
    if gateway not in site.gateways:
        raise ProvisionError(f"no gateway {gateway!r} in commune {site.commune!r} ({site.path})",
                             _nearest(gateway, list(site.gateways)))
    stations = [s.id for s in site.stations_of(gateway)]
    return _issue(ws, gateway_device_id(site.commune, gateway), ROLE_GATEWAY, with_cert,
                  commune=site.commune, gateway=gateway, stations=stations, hardware=hardware)


def provision_service(ws: Workspace, role: str, name: str | None = None, with_cert: bool = False) -> Provisioned:
    if role not in SERVICE_ROLES:
        raise ProvisionError(f"unknown service role {role!r}", f"choose one of: {', '.join(SERVICE_ROLES)}")
    name = name or role
    if not contract.valid_id(name):
        raise ProvisionError(f"service name {name!r} does not match {contract.ID_PATTERN}")
    return _issue(ws, service_device_id(name), role, with_cert)


def _nearest(value: str, choices: list[str]) -> str:
    import difflib
    near = difflib.get_close_matches(value, choices, n=1)
    return f"did you mean {near[0]!r}?" if near else f"known: {', '.join(choices)}"
