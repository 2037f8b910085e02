"""Client-id takeover on the production-configured Mosquitto (broker_config/mosquitto.conf, real,
started by the test) with the real ingest writing to a real InfluxDB.

Without ``use_username_as_clientid`` a device connecting with the ingest's client id (clean start)
wiped the ingest's persistent session and the ingest received nothing afterwards; reusing another
device's id kicked that device off. Here both attempts must leave them undisturbed and every
reading published before, during and after the attempts must land.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, IngestProcess, eventually

from app.testing.secure_broker import MqttSession, SecureBroker, try_connect
from firmware_tools import provision as prov
from firmware_tools.workspace import Workspace
from villagewatch import contract
from villagewatch.sites import load_site

pytestmark = pytest.mark.integration

COMMUNE = "tan-thuan-dong"
STATION_A = "ao-ca-tra-a1"
STATION_B = "ao-ca-tra-a2"


START_MS = int(time.time() * 1000) - 3_600_000


def _reading(seq: int) -> bytes:
    # one second apart: InfluxDB keeps one point per (series, timestamp)
    return contract.Reading(COMMUNE, STATION_A, START_MS + seq * 1000, seq, {"do": 5.0}).to_payload()


def _landed(stack) -> set[int]:
    rows = stack.query_values(f'SELECT "seq" FROM "telemetry" WHERE "station" = \'{STATION_A}\'')
    return {int(r[1]) for r in rows}


def test_device_reusing_ingest_or_device_client_id_disturbs_nobody(stack, tmp_path: Path, site_dir: Path):
    site = load_site(site_dir / f"{COMMUNE}.yaml")
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    ingest = None
    try:
        a = prov.provision_station(ws, site, STATION_A)
        b = prov.provision_station(ws, site, STATION_B)
        svc = prov.provision_service(ws, "ingest")
        assert svc.device.id == "svc.ingest"
        eventually(lambda: try_connect(broker.plain_port, svc.device.id, svc.password).connected, 10,
                   "provisioned accounts accepted after reload")
        data_dir = tmp_path / "ingest"
        data_dir.mkdir()
        ingest = IngestProcess(stack, data_dir, {
            "VW_MQTT_URL": f"mqtt://{svc.device.id}:{svc.password}@127.0.0.1:{broker.plain_port}",
            "VW_SITES": str(REPO / "sites")}, ["--client-id", svc.device.id]).start()
        assert ingest.proc.poll() is None, ingest.log_tail()

        with MqttSession(broker.plain_port, a.device.id, a.password, client_id=a.device.id) as dev_a:
            kicked = threading.Event()
            dev_a.client.on_disconnect = lambda *args: kicked.set()
            for seq in range(1, 11):
                dev_a.publish(contract.telemetry_topic(COMMUNE, STATION_A), _reading(seq))
            # B logs in with the ingest's client id (clean start) and with A's client id
            for stolen in (svc.device.id, a.device.id):
                with MqttSession(broker.plain_port, b.device.id, b.password, client_id=stolen):
                    for seq in range(11, 21) if stolen == svc.device.id else range(21, 31):
                        dev_a.publish(contract.telemetry_topic(COMMUNE, STATION_A), _reading(seq))
            for seq in range(31, 41):
                dev_a.publish(contract.telemetry_topic(COMMUNE, STATION_A), _reading(seq))
            assert not kicked.is_set(), "device A was kicked off by a connection reusing its client id"
        eventually(lambda: _landed(stack) == set(range(1, 41)), 30,
                   "all 40 readings (before, during, after the takeover attempts) in InfluxDB")
        health = ingest.health()
        assert health and health.get("subscribed"), health
    finally:
        if ingest is not None:
            ingest.stop()
        broker.stop()


def test_ingest_resubscribes_when_its_session_is_wiped(stack, ingest_factory):
    """Dev broker (no client-id binding): a clean-start login with the ingest's client id wipes its
    session and kicks it; the ingest must notice "session present = 0", subscribe again, count it."""
    ingest = ingest_factory()
    port = stack.mosquitto.port
    topic = contract.telemetry_topic(COMMUNE, STATION_A)
    with MqttSession(port, None, None, client_id="pub-a") as dev:
        for seq in range(1, 6):
            dev.publish(topic, _reading(seq))
        eventually(lambda: _landed(stack) == set(range(1, 6)), 30, "readings before the wipe")
        # paho MQTT 3.1.1 default is clean session: the broker discards the ingest's session
        with MqttSession(port, None, None, client_id=ingest.env.get("VW_INGEST_CLIENT_ID", "villagewatch-ingest")):
            pass
        eventually(lambda: (ingest.health() or {}).get("sessions_lost") == 1, 30,
                   "the ingest to notice its lost session")
        eventually(lambda: (ingest.health() or {}).get("subscribed"), 30, "the ingest subscribed again")
        for seq in range(6, 11):
            dev.publish(topic, _reading(seq))
        eventually(lambda: _landed(stack) == set(range(1, 11)), 30, "readings after the wipe")
    assert "vw_ingest_sessions_lost_total 1" in ingest.metrics_text()
