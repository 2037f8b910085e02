"""Edge gateway over TLS with a client certificate and password, after failing over from a dead
broker: the production-configured Mosquitto (broker_config/mosquitto.conf, paths and ports
rewritten) and a gateway provisioned like a technician would (`firmware_tools.provision`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, eventually

from app.stack import free_port
from app.testing.secure_broker import MqttSession, SecureBroker
from firmware_tools import provision as prov
from firmware_tools.workspace import Workspace
from villagewatch import contract
from villagewatch.sites import load_site

COMMUNE, GATEWAY = "tan-thuan-dong", "gw-ao-nuoi"


def test_gateway_fails_over_to_a_tls_broker_with_client_certificate(tmp_path: Path, monkeypatch):
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    monkeypatch.setenv("VW_BROKER_PIDFILE", str(broker.pid_file))
    try:
        site = load_site(REPO / "sites" / f"{COMMUNE}.yaml")
        gw = prov.provision_gateway(ws, site, GATEWAY, with_cert=True)
        ops = prov.provision_service(ws, "ops")
        dead = f"mqtts://127.0.0.1:{free_port()}"  # nothing listens there
        tls = f"mqtts://{gw.device.id}:{gw.password}@127.0.0.1:{broker.tls_port}"
        env = {**os.environ, "VW_MQTT_URL": dead}
        log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115
        with MqttSession(broker.plain_port, ops.device.id, ops.password) as console:
            console.subscribe(f"vw/v1/{COMMUNE}/#")
            edge = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "edge", "--site", str(site.path), "--gateway", GATEWAY,
                 "--data-dir", str(tmp_path / "edge"), "--speed", "60", "--failover", tls,
                 "--ca-file", str(ws.ca.cert_path), "--cert-file", str(gw.cert_path),
                 "--key-file", str(gw.cert_path.with_suffix(".key"))], env=env, stdout=log, stderr=log)
            try:
                stations = {s.id for s in site.stations_of(GATEWAY)}
                telemetry = lambda: [m for m in console.received() if m.topic.endswith("/telemetry")]  # noqa: E731
                eventually(lambda: {m.topic.split("/")[3] for m in telemetry()} == stations, 60,
                           "telemetry from every station of the gateway over TLS")
                status_topic = contract.gateway_status_topic(COMMUNE, GATEWAY)
                eventually(lambda: any(json.loads(m.payload).get("online") for m in console.received(status_topic)),
                           30, "gateway online status")
                for m in telemetry()[:5]:
                    d = contract.decode_telemetry(COMMUNE, m.topic.split("/")[3], m.payload, 2**62)
                    assert d.reading is not None and d.reading.gw == GATEWAY
                assert edge.poll() is None, (tmp_path / "edge.log").read_text()
            finally:
                edge.terminate()
                edge.wait(30)
    finally:
        broker.stop()


def test_mixed_tls_and_plain_failover_list_is_a_user_error(tmp_path: Path):
    env = {**os.environ, "VW_MQTT_URL": "mqtt://127.0.0.1:1883"}
    out = subprocess.run([sys.executable, "-m", "app.cli", "edge", "--site", str(REPO / "sites" / f"{COMMUNE}.yaml"),
                          "--gateway", GATEWAY, "--data-dir", str(tmp_path), "--failover", "mqtts://127.0.0.1:8883"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "mqtts://" in out.stderr and "Traceback" not in out.stderr
