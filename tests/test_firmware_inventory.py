"""`villagewatch device provision|list|show|calibrate|service-account` through the CLI, and the
broker files they render (no broker here: these check the inventory and the files themselves)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app import cli
from firmware_tools.mosquitto_auth import check_password


@pytest.fixture
def fw_env(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VW_FIRMWARE_DIR", str(tmp_path / "fw"))
    monkeypatch.setenv("VW_BROKER_DIR", str(tmp_path / "broker"))
    monkeypatch.delenv("VW_BROKER_PIDFILE", raising=False)
    monkeypatch.setenv("VW_TECHNICIAN", "chi-ba")
    return tmp_path


def test_provision_list_show_calibrate_rotate(fw_env: Path, capsys):
    assert cli.main(["device", "provision", "--commune", "tan-thuan-dong", "--station", "ao-ca-tra-a1",
                     "--hardware", "esp32-devkitc-v4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["device"] == "tan-thuan-dong.ao-ca-tra-a1" and first["rotated"] is False
    assert first["broker_reloaded_pid"] is None
    secret = json.loads(Path(first["secret_file"]).read_text())
    assert stat.S_IMODE(Path(first["secret_file"]).stat().st_mode) == 0o600
    passwd = (fw_env / "broker" / "passwd").read_text()
    user, hashed = passwd.strip().split(":", 1)
    assert user == first["device"] and check_password(secret["password"], hashed)
    acl = (fw_env / "broker" / "acl").read_text()
    assert "user tan-thuan-dong.ao-ca-tra-a1\ntopic write vw/v1/tan-thuan-dong/ao-ca-tra-a1/telemetry" in acl

    assert cli.main(["device", "provision", "--commune", "tan-thuan-dong", "--station", "ao-ca-tra-a1", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["rotated"] is True and second["credential_fingerprint"] != first["credential_fingerprint"]
    assert not check_password(secret["password"], (fw_env / "broker" / "passwd").read_text().split(":", 1)[1].strip())

    assert cli.main(["device", "service-account", "--role", "ingest"]) == 0
    assert cli.main(["device", "calibrate", "tan-thuan-dong.ao-ca-tra-a1", "--metric", "ph", "--offset", "-0.08",
                     "--reference", "pH 7.00 buffer"]) == 0
    capsys.readouterr()
    assert cli.main(["device", "list"]) == 0
    listing = capsys.readouterr().out
    assert "tan-thuan-dong.ao-ca-tra-a1" in listing and "svc.ingest" in listing and "esp32-devkitc-v4" in listing
    assert cli.main(["device", "show", "tan-thuan-dong.ao-ca-tra-a1"]) == 0
    shown = capsys.readouterr().out
    assert "Hiệu chuẩn / calibrations" in shown and "pH 7.00 buffer" in shown and "chi-ba" in shown
    assert "(1×)" in shown  # rotated once


def test_user_errors_name_what_is_wrong(fw_env: Path, capsys):
    assert cli.main(["device", "provision", "--commune", "tan-thuan-dong", "--station", "ao-ca-tra-z1"]) == 2
    assert "ao-ca-tra-a1" in capsys.readouterr().err
    assert cli.main(["device", "provision", "--commune", "tan-thuan-dong", "--station", "ao-ca-tra-a1", "--tls"]) == 2
    assert "villagewatch ca init" in capsys.readouterr().err
    assert cli.main(["device", "show", "tan-thuan-dong.ao-ca-tra-a2"]) == 2
    assert cli.main(["device", "calibrate", "x", "--metric", "phh"]) == 2
    assert cli.main(["ca", "init"]) == 0
    assert cli.main(["ca", "init"]) == 2
    assert "--force" in capsys.readouterr().err
