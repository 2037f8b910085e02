"""Signed OTA updates: verification rules, and the full path over a real, production-configured
Mosquitto — `villagewatch ota publish` (ops account) → retained manifest → the gateway's OtaAgent
(its own provisioned account, TLS client certificate) downloads the image from a real local HTTP
server, verifies, applies or rolls back, and reports → `villagewatch ota status`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import eventually

from app import cli
from app.testing.secure_broker import MqttSession, SecureBroker
from edge.ota_agent import OtaAgent
from firmware_tools import provision as prov
from firmware_tools.inventory import Device
from firmware_tools.ota_rollout import select_targets
from firmware_tools.workspace import Workspace
from villagewatch import ota
from villagewatch.sites import load_site

COMMUNE, GATEWAY = "tan-thuan-dong", "gw-ao-nuoi"


@pytest.fixture
def keys(tmp_path: Path):
    priv, pub = ota.generate_keypair(tmp_path / "keys")
    return ota.load_private_key(priv), pub.read_bytes()


def _signed(image: bytes, key, version: str = "2.0.0", targets=("c._gw.g",)) -> tuple[bytes, bytes]:
    body = ota.build_manifest(image, version, "http://x/fw.bin", list(targets), "r1").to_bytes()
    return body, ota.sign(body, key)


# --------------------------------------------------------------------------- verification rules


def test_verify_update_accepts_a_good_update(keys):
    key, pub = keys
    image = b"\x01" * 5000
    body, sig = _signed(image, key)
    manifest = ota.verify_update(body, sig, image, pub, device_id="c._gw.g", current_version="1.9.9")
    assert (manifest.version, manifest.sha256, manifest.size) == ("2.0.0", hashlib.sha256(image).hexdigest(), 5000)


@pytest.mark.parametrize("tamper, reason", [
    (lambda body, sig, img: (body, sig, img[:-1] + b"\x02"), ota.R_HASH),
    (lambda body, sig, img: (body, sig, img + b"\x00"), ota.R_SIZE),
    (lambda body, sig, img: (body.replace(b'"2.0.0"', b'"9.0.0"'), sig, img), ota.R_BAD_SIGNATURE),
    (lambda body, sig, img: (body.replace(b'"c._gw.g"', b'"c._gw.h"'), sig, img), ota.R_BAD_SIGNATURE),
    (lambda body, sig, img: (body, bytes(64), img), ota.R_BAD_SIGNATURE),
])
def test_verify_update_rejects_tampering(keys, tamper, reason):
    key, pub = keys
    image = b"\x01" * 5000
    body, sig = _signed(image, key)
    with pytest.raises(ota.OtaRejected) as err:
        ota.verify_update(*tamper(body, sig, image), pub, device_id="c._gw.g")
    assert err.value.reason == reason


def test_verify_update_rejects_other_key_other_device_and_downgrade(keys, tmp_path: Path):
    key, pub = keys
    image = b"abc" * 100
    body, sig = _signed(image, key)
    _, other_pub = ota.generate_keypair(tmp_path / "other")
    cases = [({"public_key": other_pub.read_bytes()}, ota.R_BAD_SIGNATURE),
             ({"device_id": "c._gw.other"}, ota.R_NOT_FOR_DEVICE),
             ({"current_version": "2.0.10"}, ota.R_DOWNGRADE)]
    for override, reason in cases:
        kwargs = {"public_key": pub, "device_id": "c._gw.g", **override}
        with pytest.raises(ota.OtaRejected) as err:
            ota.verify_update(body, sig, image, kwargs.pop("public_key"), **kwargs)
        assert err.value.reason == reason


def test_apply_keeps_previous_and_rolls_back_on_failed_health_check(tmp_path: Path, keys):
    key, _ = keys
    first = ota.build_manifest(b"v1", "1.0.0", "u", ["d"], "r")
    ok = ota.apply_update(tmp_path, first, b"v1")
    assert ok.state == ota.S_APPLIED and (tmp_path / "current" / ota.IMAGE_NAME).read_bytes() == b"v1"
    second = ota.build_manifest(b"v2-broken", "2.0.0", "u", ["d"], "r")
    bad = ota.apply_update(tmp_path, second, b"v2-broken", health_check=lambda d: False)
    assert bad.state == ota.S_ROLLED_BACK and bad.previous_version == "1.0.0"
    assert (tmp_path / "current" / ota.IMAGE_NAME).read_bytes() == b"v1"
    assert (tmp_path / "failed" / ota.IMAGE_NAME).read_bytes() == b"v2-broken"


def test_percent_rollout_is_stable_and_grows_monotonically():
    devices = [Device(f"c.s{i}", "station", "c", f"s{i}", "g", (f"s{i}",), "", "", "h", "f", "", 0, 0, 0)
               for i in range(20)]
    ten = {d.id for d in select_targets(devices, percent=10)}
    fifty = {d.id for d in select_targets(devices, percent=50)}
    assert len(ten) == 2 and len(fifty) == 10 and ten <= fifty
    assert {d.id for d in select_targets(devices, percent=50)} == fifty
    assert [d.id for d in select_targets(devices, stations=["s3"])] == ["c.s3"]


# --------------------------------------------------------------------------- over MQTT


@pytest.fixture
def http_dir(tmp_path: Path):
    """A real HTTP download server on loopback serving one folder."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_gateway_agent_applies_good_update_rejects_tampered_and_rolls_back(tmp_path: Path, site_dir: Path,
                                                                          http_dir, monkeypatch, capsys):
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    for var, value in (("VW_FIRMWARE_DIR", ws.data_dir), ("VW_BROKER_DIR", ws.broker_dir),
                       ("VW_BROKER_PIDFILE", broker.pid_file)):
        monkeypatch.setenv(var, str(value))
    www, base = http_dir
    site = load_site(site_dir / f"{COMMUNE}.yaml")
    gw = prov.provision_gateway(ws, site, GATEWAY, with_cert=True)
    ops = prov.provision_service(ws, "ops")
    monkeypatch.setenv("VW_MQTT_URL", f"mqtt://{ops.device.id}:{ops.password}@127.0.0.1:{broker.plain_port}")
    assert cli.main(["ota", "keygen"]) == 0
    install = tmp_path / "gateway-release"
    agent = OtaAgent(
        mqtt_url=f"mqtts://{gw.device.id}:{gw.password}@127.0.0.1:{broker.tls_port}", commune=COMMUNE,
        gateway=GATEWAY, install_dir=install, public_key=ws.ota_dir / "signing.pub",
        ca_file=ws.ca.cert_path, cert_file=gw.cert_path, key_file=gw.cert_path.with_suffix(".key"),
        health_check=lambda current: not (current / ota.IMAGE_NAME).read_bytes().startswith(b"BROKEN"))

    def status() -> dict:
        capsys.readouterr()
        assert cli.main(["ota", "status", "--json", "--timeout", "2"]) == 0
        rows = {r["device"]: r for r in json.loads(capsys.readouterr().out)}
        return rows.get(gw.device.id, {})

    def publish(image: Path, version: str) -> None:
        assert cli.main(["ota", "publish", "--firmware", str(image), "--version", version, "--commune", COMMUNE,
                         "--gateways", GATEWAY, "--url-base", base, "--publish-dir", str(www)]) == 0

    def last_report() -> dict:
        return agent.reports[-1] if agent.reports else {}

    try:
        agent.start()
        # 1. a good update is downloaded, verified, applied and reported
        good = tmp_path / "edge-2.0.0.tar"
        good.write_bytes(b"edge release 2.0.0 " * 500)
        publish(good, "2.0.0")
        eventually(lambda: status().get("state") == ota.S_APPLIED, 20, "applied reported in ota status")
        row = status()
        assert row["target_version"] == row["reported_version"] == row["installed"] == "2.0.0"
        assert (install / "current" / ota.IMAGE_NAME).read_bytes() == good.read_bytes()

        # 2. the image on the download server is not the one that was signed: rejected, 2.0.0 keeps running
        evil = tmp_path / "edge-2.1.0.tar"
        evil.write_bytes(b"edge release 2.1.0 " * 500)
        (www / "tampered.tar").write_bytes(evil.read_bytes()[:-1] + b"!")
        assert cli.main(["ota", "publish", "--firmware", str(evil), "--version", "2.1.0", "--commune", COMMUNE,
                         "--gateways", GATEWAY, "--url", f"{base}/tampered.tar"]) == 0
        eventually(lambda: status().get("state") == ota.S_REJECTED, 20, "rejection visible in ota status")
        assert status()["reason"] == ota.R_HASH and status()["installed"] == "2.0.0"
        assert ota.installed_version(install) == "2.0.0"
        assert (install / "current" / ota.IMAGE_NAME).read_bytes() == good.read_bytes()

        # 3. a tampered manifest (version edited after signing) is rejected before any download
        with MqttSession(broker.plain_port, ops.device.id, ops.password) as console:
            console.subscribe(agent.command_topic)
            eventually(lambda: console.received(), 10, "the retained manifest")
            manifest_payload = console.received()[-1].payload
        body = json.loads(manifest_payload)
        body["manifest"] = body["manifest"].replace('"2.1.0"', '"2.2.0"')
        with MqttSession(broker.plain_port, ops.device.id, ops.password) as console:
            console.publish(agent.command_topic, json.dumps(body).encode(), retain=True)
        eventually(lambda: last_report().get("reason") == ota.R_BAD_SIGNATURE, 20, "tampered manifest rejected")
        assert last_report()["state"] == ota.S_REJECTED and last_report()["version"] is None
        assert ota.installed_version(install) == "2.0.0"

        # 4. a correctly signed image that fails its health check is rolled back
        broken = tmp_path / "edge-3.0.0.tar"
        broken.write_bytes(b"BROKEN release 3.0.0")
        publish(broken, "3.0.0")
        eventually(lambda: status().get("state") == ota.S_ROLLED_BACK, 20, "rollback reported")
        assert ota.installed_version(install) == "2.0.0"
        assert (install / "failed" / ota.IMAGE_NAME).read_bytes() == broken.read_bytes()
    finally:
        agent.stop()
        broker.stop()
