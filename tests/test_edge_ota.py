"""`villagewatch edge --ota-public-key`: the gateway process accepts a signed update of itself.

Real Mosquitto (the dev stack), a real local HTTP download server, `villagewatch ota publish` from
the technician's workspace, and `villagewatch edge` as a child process. The verification rules and
tampering cases are covered in tests/test_firmware_ota.py; this checks the wiring into the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, eventually
from test_firmware_ota import http_dir  # noqa: F401 - fixture

from app import cli
from firmware_tools import provision as prov
from firmware_tools.workspace import Workspace
from villagewatch import ota
from villagewatch.sites import load_site

COMMUNE, GATEWAY = "tan-thuan-dong", "gw-ao-nuoi"


def test_edge_gateway_applies_a_signed_update_and_reports_it(stack, tmp_path: Path, http_dir, monkeypatch,  # noqa: F811
                                                            capsys):
    ws = Workspace(tmp_path / "fw", tmp_path / "broker")
    monkeypatch.setenv("VW_FIRMWARE_DIR", str(ws.data_dir))
    monkeypatch.setenv("VW_BROKER_DIR", str(ws.broker_dir))
    monkeypatch.setenv("VW_MQTT_URL", stack.mqtt_url)
    site = load_site(REPO / "sites" / f"{COMMUNE}.yaml")
    prov.provision_gateway(ws, site, GATEWAY)  # puts the gateway in the inventory (the dev broker is open)
    assert cli.main(["ota", "keygen"]) == 0
    data_dir = tmp_path / "edge"
    env = {**os.environ, **stack.env()}
    log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115
    edge = subprocess.Popen([sys.executable, "-m", "app.cli", "edge", "--site", str(site.path), "--gateway",
                             GATEWAY, "--data-dir", str(data_dir), "--ota-public-key", str(ws.ota_dir / "signing.pub")],
                            env=env, stdout=log, stderr=log)
    try:
        www, base = http_dir
        image = tmp_path / "edge-2.0.0.tar"
        image.write_bytes(b"villagewatch edge 2.0.0 " * 400)
        assert cli.main(["ota", "publish", "--firmware", str(image), "--version", "2.0.0", "--commune", COMMUNE,
                         "--gateways", GATEWAY, "--url-base", base, "--publish-dir", str(www)]) == 0
        installed = data_dir / "ota" / "current" / ota.IMAGE_NAME
        eventually(lambda: installed.exists() and installed.read_bytes() == image.read_bytes(), 30,
                   "the verified image installed by the gateway")

        def state() -> str | None:
            capsys.readouterr()
            assert cli.main(["ota", "status", "--json", "--timeout", "2"]) == 0
            rows = json.loads(capsys.readouterr().out)
            return next((r.get("state") for r in rows if r["device"].endswith(GATEWAY)), None)

        eventually(lambda: state() == ota.S_APPLIED, 30, "applied reported back")
        assert edge.poll() is None, (tmp_path / "edge.log").read_text()
    finally:
        edge.terminate()
        edge.wait(30)
