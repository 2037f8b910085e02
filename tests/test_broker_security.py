"""Broker security against a real Mosquitto 2.0 started with broker_config/mosquitto.conf (the
production file; only paths, ports and log destination are rewritten for a temporary folder).

Accounts are created the way a technician does it (firmware_tools.provision), which renders the
password and ACL files from the inventory and sends SIGHUP to the broker.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import eventually

from app.testing.secure_broker import MqttSession, SecureBroker, tls_context, try_connect
from firmware_tools import provision as prov
from firmware_tools.ca import self_signed_client
from firmware_tools.mosquitto_auth import (
    ROLE_GATEWAY,
    Account,
    acl_lines,
    check_password,
    hash_password,
)
from firmware_tools.workspace import Workspace
from villagewatch import contract
from villagewatch.sites import load_site

pytestmark = pytest.mark.integration

COMMUNE = "tan-thuan-dong"
STATION_A = "ao-ca-tra-a1"
STATION_B = "ao-ca-tra-a2"


@pytest.fixture
def site(site_dir: Path):
    return load_site(site_dir / f"{COMMUNE}.yaml")


@pytest.fixture
def secured(tmp_path: Path):
    """(workspace, broker): provisioning writes straight into the running broker's files."""
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    yield ws, broker
    broker.stop()


def test_mosquitto_passwd_and_our_hash_agree(tmp_path: Path):
    """Our $7$ hash is what mosquitto_passwd writes: each side verifies the other's."""
    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "alice", "s3cret-ä"], check=True)
    theirs = pw.read_text().strip().split(":", 1)[1]
    assert check_password("s3cret-ä", theirs)
    assert not check_password("wrong", theirs)
    ours = hash_password("s3cret-ä")
    assert ours.startswith("$7$101$") and check_password("s3cret-ä", ours)


def test_provisioned_device_connects_wrong_password_and_anonymous_refused(secured, site):
    ws, broker = secured
    a = prov.provision_station(ws, site, STATION_A)
    assert a.reloaded_pid == broker.proc.pid  # SIGHUP sent to the running broker
    assert a.device.id == f"{COMMUNE}.{STATION_A}"
    eventually(lambda: try_connect(broker.plain_port, a.device.id, a.password).connected, 10,
               "the broker to reload and accept the new device")
    wrong = try_connect(broker.plain_port, a.device.id, a.password + "x")
    assert not wrong.connected and "CONNACK" in wrong.detail, wrong.detail
    anonymous = try_connect(broker.plain_port)
    assert not anonymous.connected, anonymous.detail
    unknown = try_connect(broker.plain_port, "nobody", "whatever")
    assert not unknown.connected


def test_device_cannot_publish_or_read_another_devices_topics(secured, site):
    """A's message on B's topic is dropped by the broker: a wildcard subscriber never sees it.
    QoS 1 from one connection is delivered in order, so once A's later marker arrives, the
    forbidden message would already have arrived had the broker let it through."""
    ws, broker = secured
    a = prov.provision_station(ws, site, STATION_A)
    b = prov.provision_station(ws, site, STATION_B)
    ingest = prov.provision_service(ws, "ingest")
    ops = prov.provision_service(ws, "ops")
    eventually(lambda: try_connect(broker.plain_port, ops.device.id, ops.password).connected, 10,
               "ops account to be accepted after reload")
    b_cmd = f"{contract.station_command_topic(COMMUNE, STATION_B)}/config"
    with MqttSession(broker.plain_port, ingest.device.id, ingest.password, v5=True) as watcher, \
            MqttSession(broker.plain_port, ops.device.id, ops.password) as console:
        watcher.subscribe(contract.shared_subscription("ingest", contract.TELEMETRY_SUBSCRIPTION))
        console.publish(b_cmd, b'{"interval_s": 30}', retain=True)
        with MqttSession(broker.plain_port, a.device.id, a.password) as dev_a:
            # Mosquitto grants the wildcard subscription but filters every delivery through the ACL:
            # B's retained command must never reach A (checked after A's own marker command below).
            dev_a.subscribe(f"{contract.station_command_topic(COMMUNE, STATION_B)}/#")
            dev_a.subscribe(f"{contract.station_command_topic(COMMUNE, STATION_A)}/#")
            a_cmd = f"{contract.station_command_topic(COMMUNE, STATION_A)}/config"
            console.publish(a_cmd, b"marker")
            forged = contract.Reading(COMMUNE, STATION_B, 1_700_000_000_000, 1, {"do": 0.5}).to_payload()
            dev_a.publish(contract.telemetry_topic(COMMUNE, STATION_B), forged)
            dev_a.publish(contract.station_status_topic(COMMUNE, STATION_B), b'{"online": false, "ts": 1}')
            marker = contract.Reading(COMMUNE, STATION_A, 1_700_000_000_000, 2, {"do": 5.0}).to_payload()
            dev_a.publish(contract.telemetry_topic(COMMUNE, STATION_A), marker)
            eventually(lambda: watcher.received(contract.telemetry_topic(COMMUNE, STATION_A)), 10,
                       "A's own telemetry at the ingest account")
            assert watcher.received(contract.telemetry_topic(COMMUNE, STATION_B)) == []
            eventually(lambda: dev_a.payloads(a_cmd) == [b"marker"], 10, "A's own command")
            assert [m.topic for m in dev_a.received()] == [a_cmd]
        # B reads its own command topic (retained)
        with MqttSession(broker.plain_port, b.device.id, b.password) as dev_b:
            dev_b.subscribe(f"{contract.station_command_topic(COMMUNE, STATION_B)}/#")
            eventually(lambda: dev_b.payloads(b_cmd) == [b'{"interval_s": 30}'], 10, "B's retained command")


def test_rotation_revokes_the_old_password(secured, site):
    ws, broker = secured
    first = prov.provision_station(ws, site, STATION_A)
    eventually(lambda: try_connect(broker.plain_port, first.device.id, first.password).connected, 10,
               "first credentials accepted")
    second = prov.provision_station(ws, site, STATION_A)
    assert second.rotated and second.password != first.password
    assert second.device.credential_fingerprint != first.device.credential_fingerprint
    assert second.device.rotations == 1 and second.reloaded_pid == broker.proc.pid
    eventually(lambda: not try_connect(broker.plain_port, first.device.id, first.password).connected, 10,
               "old password to be refused")
    assert try_connect(broker.plain_port, second.device.id, second.password).connected


def test_tls_listener_accepts_ca_signed_client_and_refuses_self_signed(secured, site, tmp_path: Path):
    ws, broker = secured
    dev = prov.provision_station(ws, site, STATION_A, with_cert=True)
    assert dev.cert_path is not None and dev.device.cert_fingerprint
    key_path = dev.cert_path.with_suffix(".key")
    ca_pem = broker.files_dir / "ca.crt"
    eventually(lambda: try_connect(broker.tls_port, dev.device.id, dev.password,
                                   tls=tls_context(ca_pem, dev.cert_path, key_path)).connected,
               10, "CA-signed client to connect over TLS")
    rogue = self_signed_client(dev.device.id)
    rogue.write(tmp_path / "rogue.crt", tmp_path / "rogue.key")
    refused = try_connect(broker.tls_port, dev.device.id, dev.password,
                          tls=tls_context(ca_pem, tmp_path / "rogue.crt", tmp_path / "rogue.key"))
    assert not refused.connected, refused.detail
    eventually(lambda: "certificate verify failed" in broker.log(), 10, "the broker to log why it refused")
    no_cert = try_connect(broker.tls_port, dev.device.id, dev.password, tls=tls_context(ca_pem))
    assert not no_cert.connected, no_cert.detail
    # the certificate alone is not a credential: a wrong password is refused even with it
    wrong = try_connect(broker.tls_port, dev.device.id, "wrong",
                        tls=tls_context(ca_pem, dev.cert_path, key_path))
    assert not wrong.connected


def test_service_accounts_are_read_only_on_telemetry_and_status(secured, site):
    ws, broker = secured
    a = prov.provision_station(ws, site, STATION_A)
    ingest = prov.provision_service(ws, "ingest")
    alerts = prov.provision_service(ws, "alerts")
    eventually(lambda: try_connect(broker.plain_port, alerts.device.id, alerts.password).connected, 10,
               "service accounts accepted")
    own = contract.telemetry_topic(COMMUNE, STATION_A)
    alert_topic = contract.alerts_topic(COMMUNE, STATION_A)
    with MqttSession(broker.plain_port, alerts.device.id, alerts.password, v5=True) as al, \
            MqttSession(broker.plain_port, ingest.device.id, ingest.password, v5=True) as ing:
        al.subscribe(contract.TELEMETRY_SUBSCRIPTION)
        al.subscribe(contract.ALERTS_SUBSCRIPTION)
        ing.subscribe(contract.STATION_STATUS_SUBSCRIPTION)
        # ingest tries to forge telemetry and an alert; alerts tries to forge a station status
        ing.publish(own, contract.Reading(COMMUNE, STATION_A, 1_700_000_000_000, 9, {"do": 0.1}).to_payload())
        ing.publish(alert_topic, b'{"forged": true}')
        al.publish(contract.station_status_topic(COMMUNE, STATION_A), b'{"online": false, "ts": 1}')
        al.publish(alert_topic, b'{"rule": "do_min"}')  # alerts may publish alerts
        with MqttSession(broker.plain_port, a.device.id, a.password) as dev:
            dev.publish(contract.station_status_topic(COMMUNE, STATION_A), b'{"online": true, "ts": 2}')
            dev.publish(own, contract.Reading(COMMUNE, STATION_A, 1_700_000_000_000, 10, {"do": 6}).to_payload())
        eventually(lambda: al.received(own) and ing.received(), 10, "the device's own messages")
        assert [m.payload for m in ing.received()] == [b'{"online": true, "ts": 2}']
        assert len(al.received(own)) == 1 and b'"seq":10' in al.received(own)[0].payload
        assert al.payloads(alert_topic) == [b'{"rule": "do_min"}']


def test_message_size_limit_is_the_contracts_64_kib(secured, site):
    ws, broker = secured
    a = prov.provision_station(ws, site, STATION_A)
    ingest = prov.provision_service(ws, "ingest")
    eventually(lambda: try_connect(broker.plain_port, ingest.device.id, ingest.password).connected, 10,
               "accounts accepted")
    topic = contract.telemetry_topic(COMMUNE, STATION_A)
    with MqttSession(broker.plain_port, ingest.device.id, ingest.password) as ing:
        ing.subscribe(topic)
        with MqttSession(broker.plain_port, a.device.id, a.password) as dev:
            dev.publish(topic, b"x" * contract.MAX_PAYLOAD_BYTES)
            dev.publish(topic, b"y" * (contract.MAX_PAYLOAD_BYTES + 1))
            dev.publish(topic, b"marker")
        eventually(lambda: b"marker" in ing.payloads(), 10, "marker")
        assert [len(p) for p in ing.payloads()] == [contract.MAX_PAYLOAD_BYTES, len(b"marker")]


def test_gateway_acl_covers_its_stations_only(site):
    gw = site.stations[STATION_A].gateway
    stations = tuple(s.id for s in site.stations_of(gw))
    lines = acl_lines(Account(prov.gateway_device_id(COMMUNE, gw), "$7$x", ROLE_GATEWAY, COMMUNE, gw, stations))
    writes = {line.split()[-1] for line in lines if line.startswith("topic write")}
    assert contract.gateway_status_topic(COMMUNE, gw) in writes
    for s in stations:
        assert contract.telemetry_topic(COMMUNE, s) in writes
    other = next(s for s in site.stations.values() if s.gateway != gw)
    assert contract.telemetry_topic(COMMUNE, other.id) not in writes


def test_portal_account_publishes_feedback_and_nobody_else_can(secured, site):
    """The portal's service account writes vw/v1/<commune>/_feedback/<code> (contract.feedback_topic);
    a station and the alerts service cannot forge one; the portal cannot forge telemetry."""
    ws, broker = secured
    a = prov.provision_station(ws, site, STATION_A)
    portal = prov.provision_service(ws, "portal")
    alerts = prov.provision_service(ws, "alerts")
    eventually(lambda: try_connect(broker.plain_port, portal.device.id, portal.password).connected, 10,
               "portal account accepted")
    topic = contract.feedback_topic(COMMUNE, "AB23CD45")
    own = contract.telemetry_topic(COMMUNE, STATION_A)
    with MqttSession(broker.plain_port, portal.device.id, portal.password, v5=True) as po:
        po.subscribe(contract.FEEDBACK_SUBSCRIPTION)
        po.subscribe(contract.TELEMETRY_SUBSCRIPTION)
        with MqttSession(broker.plain_port, a.device.id, a.password) as dev:
            dev.publish(topic, b'{"forged": "station"}')
        with MqttSession(broker.plain_port, alerts.device.id, alerts.password, v5=True) as al:
            al.publish(topic, b'{"forged": "alerts"}')
        po.publish(own, contract.Reading(COMMUNE, STATION_A, 1_700_000_000_000, 9, {"do": 0.1}).to_payload())
        po.publish(topic, b'{"code": "AB23CD45"}')
        with MqttSession(broker.plain_port, a.device.id, a.password) as dev:
            dev.publish(own, contract.Reading(COMMUNE, STATION_A, 1_700_000_000_000, 10, {"do": 6}).to_payload())
        eventually(lambda: po.received(own) and po.received(topic), 10, "the reading and the feedback")
        assert po.payloads(topic) == [b'{"code": "AB23CD45"}']
        assert [b'"seq":10' in m.payload for m in po.received(own)] == [True]
    lines = acl_lines(Account("svc-portal", "$7$x", "portal"))
    assert f"topic readwrite {contract.FEEDBACK_SUBSCRIPTION}" in lines
    assert not any(contract.FEEDBACK_SEGMENT in line for role in ("ingest", "alerts", "ops")
                   for line in acl_lines(Account("svc", "$7$x", role)))


def test_feedback_topic_is_in_the_contract_and_refuses_bad_codes():
    assert contract.feedback_topic(COMMUNE, "AB23CD45") == f"vw/v1/{COMMUNE}/_feedback/AB23CD45"
    for bad in ("ab23cd45", "AB23CD4", "AB23CD4O", "AB23CD45/#", "+"):
        with pytest.raises(ValueError):
            contract.feedback_topic(COMMUNE, bad)
    with pytest.raises(ValueError):
        contract.feedback_topic("Tân Thuận", "AB23CD45")
