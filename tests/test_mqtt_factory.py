"""Every part's MQTT TLS and auth options reach the wire (villagewatch/mqtt.py is the one factory).

The broker is the production Mosquitto configuration (app/testing/secure_broker.py): its
TLS listener is verified against our own CA (a part that drops the CA file fails the handshake),
requires a CA-signed client certificate (a part that drops it is refused) and a password (a part
that drops the credentials is refused). Each part connects through its own code path, configured
the way it is in production (VW_MQTT_* settings or its own options): a CONNACK proves all three.
"""

from __future__ import annotations

import asyncio
import time
import types

import pytest
from conftest import eventually

from app.testing.secure_broker import SecureBroker
from firmware_tools import provision as prov
from firmware_tools.workspace import Workspace
from villagewatch.config import MqttUrl, load_settings
from villagewatch.errors import ConfigUserError
from villagewatch.mqtt import MqttOptions, paho_client

pytestmark = pytest.mark.integration


def _connected(client, url: str, timeout: float = 10) -> bool:
    """Connect ``client`` to ``url``; True once the broker's CONNACK accepted it."""
    target = MqttUrl.parse(url)
    try:
        client.connect(target.host, target.port, keepalive=30)
    except OSError:  # TLS handshake refused (ssl.SSLError is an OSError)
        return False
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.is_connected():
                return True
            time.sleep(0.05)
        return False
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """(tls url with an account's credentials, CA file, client certificate, client key)."""
    tmp = tmp_path_factory.mktemp("mqtt-factory")
    ws = Workspace(tmp / "fw", tmp / "secure" / "broker")
    broker = SecureBroker(tmp / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    try:
        svc = prov.provision_service(ws, "ops", with_cert=True)
        assert svc.cert_path is not None
        url = f"mqtts://{svc.device.id}:{svc.password}@127.0.0.1:{broker.tls_port}"
        files = (str(broker.files_dir / "ca.crt"), str(svc.cert_path), str(svc.cert_path.with_suffix(".key")))
        opts = MqttOptions.from_url(url, "probe", ca_file=files[0], cert_file=files[1], key_file=files[2])
        eventually(lambda: _connected(paho_client(opts), url, 3), 20, "the new account to be accepted over TLS")
        yield (url, *files)
    finally:
        broker.stop()


@pytest.fixture
def settings(secured):
    url, ca, cert, key = secured
    return load_settings(env={"VW_MQTT_URL": url, "VW_MQTT_CA_FILE": ca, "VW_MQTT_CERT_FILE": cert,
                              "VW_MQTT_KEY_FILE": key})


def test_the_broker_refuses_what_a_part_would_drop(secured):
    """The controls: without each option the connection fails, so a CONNACK below proves each option."""
    url, ca, cert, key = secured
    assert not _connected(paho_client(MqttOptions.from_url(url, "no-cert", ca_file=ca)), url, 3)
    assert not _connected(paho_client(MqttOptions.from_url(url, "no-ca", cert_file=cert, key_file=key)), url, 3)
    anonymous = url.replace(url[len("mqtts://"):url.index("@") + 1], "")
    assert not _connected(paho_client(MqttOptions.from_url(anonymous, "no-auth", ca_file=ca, cert_file=cert,
                                                           key_file=key)), url, 3)


def test_factory_errors_are_user_errors(tmp_path):
    with pytest.raises(ConfigUserError, match="all be mqtt:// or all mqtts://"):
        MqttOptions.from_url(["mqtt://a:1883", "mqtts://b:8883"])
    with pytest.raises(ConfigUserError, match="MQTT CA file"):
        paho_client(MqttOptions.from_url("mqtts://a:8883", ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigUserError, match="without a client certificate"):
        MqttOptions.from_url("mqtts://a:8883", key_file="k.pem")


def test_edge_link(secured):
    from edge.link import Link
    url, ca, cert, key = secured
    link = Link([MqttUrl.parse(url)], "edge-test", "vw/v1/x/_gw/g/status", b'{"online":false,"ts":1}',
                ca_file=ca, cert_file=cert, key_file=key)
    link.start()
    try:
        assert link.connected.wait(60), link.last_error
    finally:
        link.stop()


def test_edge_mqtt_bridge_source(secured, site_dir):
    from edge.sources.base import Bound, SourceContext
    from edge.sources.mqtt_bridge.source import MqttBridgeSource
    from villagewatch.sites import load_site
    url, ca, cert, key = secured
    station = next(iter(load_site(site_dir / "tan-thuan-dong.yaml").stations.values()))
    options = {"broker": url, "format": "tasmota", "topic": "tele/x/SENSOR", "fields": {"do": "x.do"},
               "ca_file": ca, "cert_file": cert, "key_file": key}
    source = MqttBridgeSource(url, [Bound(station, options)], SourceContext())

    async def scenario() -> None:
        task = asyncio.create_task(source.run(types.SimpleNamespace()))
        try:
            deadline = time.monotonic() + 60
            while not (source.client and source.client.is_connected()):
                assert time.monotonic() < deadline, "the bridge did not connect over TLS"
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            if source.client:
                source.client.disconnect()
                source.client.loop_stop()

    asyncio.run(scenario())


def test_alerts_service(settings, tmp_path):
    from alerts.service import AlertService
    from alerts.settings import AlertsConfig
    from rules.rulepack import load_rule_packs
    svc = AlertService(settings, AlertsConfig(), {}, load_rule_packs(), tmp_path / "alerts.sqlite")
    svc.loop = asyncio.new_event_loop()  # its on_connect hands over to the service loop
    try:
        svc._start_mqtt()
        eventually(lambda: svc.mqtt.is_connected(), 15, "alerts connected over TLS")
    finally:
        if svc.mqtt:
            svc.mqtt.disconnect()
            svc.mqtt.loop_stop()
        svc.loop.close()
        svc.store.close()


def test_portal(settings):
    from portal.app import Portal
    portal = Portal(settings, {}, None, None, None)  # no pages served: influx, feedback, sign-in unused
    portal.start_mqtt()
    try:
        eventually(lambda: portal.mqtt.is_connected(), 15, "portal connected over TLS")
    finally:
        portal.mqtt.disconnect()
        portal.mqtt.loop_stop()


def test_firmware_tools_and_ota_agent(settings):
    """villagewatch.mqtt_util.connect is what the technician commands and the OTA agent use."""
    from villagewatch.mqtt_util import connect
    client = connect(settings.mqtt_url, ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_cert_file,
                     key_file=settings.mqtt_key_file, client_id="fw-test", timeout=15)
    try:
        assert client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def test_ingest_consumer(settings):
    from ingest.consumer import MqttConsumer
    from ingest.metrics import IngestMetrics
    consumer = MqttConsumer(settings, types.SimpleNamespace(), IngestMetrics())

    async def scenario() -> None:
        stop = asyncio.Event()
        await asyncio.wait_for(consumer.start(stop), 20)
        try:
            assert consumer.connected
        finally:
            await consumer.stop()

    asyncio.run(scenario())
