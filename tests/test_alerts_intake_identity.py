"""The alerts service on the production-configured Mosquitto (broker_config/mosquitto.conf, real,
started by the test: passwords, ACL, ``use_username_as_clientid``) with its own provisioned account.

A device that logs in with the alerts' client id (clean start) must neither kick the service off nor
wipe its persistent session, and every reading published before, during and after the attempt is
evaluated.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest
from conftest import eventually

from alerts.cli import client_id_for
from alerts.service import DEFAULT_CLIENT_ID, AlertService
from alerts.settings import AlertsConfig
from app.stack import free_port
from app.testing.secure_broker import MqttSession, SecureBroker, try_connect
from firmware_tools import provision as prov
from firmware_tools.workspace import Workspace
from rules.rulepack import load_rule_packs
from villagewatch import contract
from villagewatch.config import load_settings
from villagewatch.sites import load_site

pytestmark = pytest.mark.integration

COMMUNE = "tan-thuan-dong"
STATION_A = "ao-ca-tra-a1"
STATION_B = "ao-ca-tra-a2"
START_MS = int(time.time() * 1000) - 3_600_000


def _reading(seq: int) -> bytes:
    return contract.Reading(COMMUNE, STATION_A, START_MS + seq * 1000, seq, {"temp": 29.0}).to_payload()


def test_alerts_own_account_survives_a_device_reusing_its_client_id(stack, tmp_path: Path, site_dir: Path):
    site = load_site(site_dir / f"{COMMUNE}.yaml")
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    try:
        a = prov.provision_station(ws, site, STATION_A)
        b = prov.provision_station(ws, site, STATION_B)
        svc_account = prov.provision_service(ws, "alerts")
        assert svc_account.device.id == "svc.alerts"
        eventually(lambda: try_connect(broker.plain_port, svc_account.device.id, svc_account.password).connected,
                   10, "provisioned accounts accepted after reload")
        env = {**stack.env(), "VW_DATA_DIR": str(tmp_path),
               "VW_MQTT_URL": f"mqtt://{svc_account.device.id}:{svc_account.password}@127.0.0.1:{broker.plain_port}"}
        settings = load_settings(env=env)
        client_id = client_id_for(None, settings.mqtt.username, env={})
        assert client_id == "svc.alerts"

        async def scenario() -> None:
            svc = AlertService(settings, AlertsConfig(http_port=free_port(), secret=b"k" * 32), {COMMUNE: site},
                               load_rule_packs(), tmp_path / "alerts.sqlite", client_id=client_id)
            seen: collections.Counter = collections.Counter()
            feed = svc.engine.feed
            svc.engine.feed = lambda r: (seen.update([r.seq]), feed(r))[1]
            await svc.start()
            try:
                await asyncio.wait_for(svc.connected.wait(), 60)
                connection = svc.connection

                def run_devices() -> None:
                    topic = contract.telemetry_topic(COMMUNE, STATION_A)
                    with MqttSession(broker.plain_port, a.device.id, a.password, client_id=a.device.id) as dev_a:
                        for seq in range(1, 11):
                            dev_a.publish(topic, _reading(seq))
                        # B logs in (clean start) with the alerts' account name and its default id
                        for stolen, seqs in ((svc_account.device.id, range(11, 21)), (DEFAULT_CLIENT_ID, range(21, 31))):
                            with MqttSession(broker.plain_port, b.device.id, b.password, client_id=stolen):
                                for seq in seqs:
                                    dev_a.publish(topic, _reading(seq))
                        for seq in range(31, 41):
                            dev_a.publish(topic, _reading(seq))
                await asyncio.to_thread(run_devices)
                deadline = time.monotonic() + 30
                while set(seen) != set(range(1, 41)) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert set(seen) == set(range(1, 41)), sorted(set(range(1, 41)) - set(seen))
                assert set(seen.values()) == {1}, seen
                h = svc.health()
                assert h["connected"] and h["subscribed"] and h["sessions_lost"] == 0, h
                assert svc.connection == connection, "the alerts service was disconnected by the takeover attempt"
            finally:
                await svc.stop()
        asyncio.run(scenario())
    finally:
        broker.stop()
