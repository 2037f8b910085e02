"""Issue #14: the ingest refuses to start on a gmqtt whose private QoS 1 intake is not the one it hooks.

No broker is needed: the check runs before the MQTT client is built, and these tests change gmqtt's
handler class in-process (monkeypatch) the way a patch release could.
"""

from __future__ import annotations

import gmqtt
import pytest
from gmqtt.mqtt.handler import MqttPackageHandler

from app import cli
from ingest import consumer
from ingest.consumer import GmqttIncompatible, check_gmqtt_hooks
from villagewatch.config import load_settings


def test_the_installed_gmqtt_passes_and_is_the_pinned_release():
    check_gmqtt_hooks()
    assert gmqtt.__version__ == consumer.GMQTT_VERSION
    pyproject = (consumer.__file__.rsplit("/ingest/", 1)[0] + "/pyproject.toml")
    with open(pyproject, encoding="utf-8") as f:
        assert f'"gmqtt=={consumer.GMQTT_VERSION}"' in f.read()


def _start(tmp_path):
    from ingest.service import IngestService
    return IngestService(load_settings(None, env={}, data_dir=str(tmp_path)))


def test_a_missing_hooked_method_refuses_start(tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(MqttPackageHandler, "_handle_qos_1_publish_packet")
    with pytest.raises(GmqttIncompatible, match="has no MqttPackageHandler._handle_qos_1_publish_packet") as err:
        _start(tmp_path)
    assert "gmqtt==0.8.0" in err.value.hint
    # through the command: a message with a hint, exit code 2, no traceback
    monkeypatch.setenv("VW_DATA_DIR", str(tmp_path))
    assert cli.main(["ingest", "--data-dir", str(tmp_path), "--http-port", "0"]) == 2
    out = capsys.readouterr().err
    assert "_handle_qos_1_publish_packet" in out and "gợi ý / hint" in out and "Traceback" not in out


def test_a_changed_signature_refuses_start(tmp_path, monkeypatch):
    monkeypatch.setattr(MqttPackageHandler, "_handle_qos_1_publish_packet",
                        lambda self, mid, packet, print_topic, properties, retain: None)
    with pytest.raises(GmqttIncompatible, match="does not take the parameters"):
        _start(tmp_path)
    monkeypatch.undo()
    monkeypatch.delattr(MqttPackageHandler, "_send_puback")
    with pytest.raises(GmqttIncompatible, match="_send_puback"):
        _start(tmp_path)


def test_a_publish_handler_that_no_longer_calls_the_hook_refuses_start(tmp_path, monkeypatch):
    def _handle_publish_packet(self, cmd, raw_packet):  # a release that inlined the QoS 1 branch
        self._send_puback(1)

    monkeypatch.setattr(MqttPackageHandler, "_handle_publish_packet", _handle_publish_packet)
    with pytest.raises(GmqttIncompatible, match="no longer calls self._handle_qos_1_publish_packet"):
        _start(tmp_path)


def test_another_gmqtt_version_refuses_start(tmp_path, monkeypatch):
    monkeypatch.setattr(gmqtt, "__version__", "0.8.1")
    with pytest.raises(GmqttIncompatible, match="gmqtt 0.8.1 is installed"):
        _start(tmp_path)
