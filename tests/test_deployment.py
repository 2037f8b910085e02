"""Deployment files: docker-compose.yml validated by Debian's docker-compose; the stack CLI; the README."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def test_docker_compose_config_is_valid():
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package) is installed by scripts/bootstrap.sh test"
    out = subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    services = cfg["services"]
    assert {"mosquitto", "influxdb", "grafana", "ingest", "edge-sim"} <= set(services)
    for name in ("mosquitto", "influxdb", "grafana", "ingest"):
        assert "healthcheck" in services[name], name
    assert services["ingest"]["environment"]["VW_MQTT_URL"] == "mqtt://mosquitto:1883"
    assert set(cfg["volumes"]) >= {"mosquitto-data", "influxdb-data", "grafana-data", "ingest-data"}
    mounts = " ".join(str(v) for v in services["grafana"]["volumes"])
    assert "dashboards/provisioning" in mounts and "dashboards/generated" in mounts
    for rel in ("broker_config/mosquitto-compose.conf", "dashboards/provisioning", "dashboards/generated", "Dockerfile"):
        assert (REPO / rel).exists(), rel


def test_a_broken_compose_file_is_rejected(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("version: '3.8'\nservices:\n  x:\n    image: 5\n    ports: nope\n")
    out = subprocess.run([shutil.which("docker-compose"), "-f", str(bad), "config"], capture_output=True, text=True)
    assert out.returncode != 0


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b.strip() for b in readme.split("```")[1::2]]
    assert blocks[0] == "bash scripts/bootstrap.sh demo"
    assert blocks[1] == "bash scripts/bootstrap.sh test"
    assert blocks[1] in (REPO / ".ci" / "run").read_text()


def vw(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, **kw)


def test_stack_up_status_down_by_pid(tmp_path):
    d = str(tmp_path / "s")
    up = vw("stack", "up", "--data-dir", d, "--json")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout.split("Dừng")[0])
        pids = [v["pid"] for v in info["services"].values()]
        assert all(v["running"] and v["listening"] for v in info["services"].values())
        st = vw("stack", "status", "--data-dir", d)
        assert st.returncode == 0 and "export VW_MQTT_URL=mqtt://127.0.0.1:" in st.stdout
    finally:
        down = vw("stack", "down", "--data-dir", d)
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert vw("stack", "status", "--data-dir", d).returncode == 1


def test_missing_binary_says_how_to_install(monkeypatch):
    import app.stack as s
    monkeypatch.setattr(s.shutil, "which", lambda name: None)
    monkeypatch.setattr(s.os, "access", lambda path, mode: False)
    with pytest.raises(s.StackError, match="apt-get install -y mosquitto"):
        s.find_binary("mosquitto")
    with pytest.raises(s.StackError, match="apt-get install -y influxdb"):
        s.find_binary("influxd")


@pytest.mark.parametrize("args", [["--help"], ["stack", "--help"], ["ingest", "--help"], ["ingest", "rejected", "--help"],
                                  ["demo", "--help"], ["edge", "--help"]])
def test_every_command_has_help(args):
    out = vw(*args)
    assert out.returncode == 0 and "usage: villagewatch" in out.stdout, out.stderr


def test_bad_site_file_is_a_user_error_not_a_traceback(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("commune: a\nname_vi: b\ngateways: []\nstations: []\n")
    out = vw("edge", "--site", str(bad), "--gateway", "g", "--check")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "x.yaml" in out.stderr


def test_dockerfile_copies_every_package_the_console_command_needs():
    """The image installs the project from the copied folders: a package left out (a new floor or
    part) makes `villagewatch` fail to import inside the container."""
    import re
    import tomllib
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO / "Dockerfile").read_text(), re.M))
    assert packages <= copied, f"Dockerfile does not COPY {sorted(packages - copied)}"
