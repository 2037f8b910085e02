"""Ctrl-C stops each long-running command with a message, never a Python traceback (issue 14);
a port another program holds is a message too.

Each command runs as a real process against the test stack, is sent SIGINT to its process group
(what Ctrl-C in a terminal does) once it is up, and must exit by itself. `villagewatch demo` has
the same check with its children in tests/test_demo.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, eventually

from app.stack import free_port, port_open
from villagewatch.health import read_health

pytestmark = pytest.mark.integration


def _ingest(tmp: Path, env: dict[str, str]) -> tuple[list[str], object]:
    port = free_port()
    env["VW_HTTP_PORT"] = str(port)
    return ["ingest", "--data-dir", str(tmp / "ingest")], lambda: bool(read_health(port))


def _alerts(tmp: Path, env: dict[str, str]) -> tuple[list[str], object]:
    port = free_port()
    cfg = tmp / "alerts.yaml"
    cfg.write_text(f"http_port: {port}\npublic_url: http://127.0.0.1:{port}\n", encoding="utf-8")
    log = tmp / "out.log"  # up = it says so (its Ctrl-C handler is installed by then)
    return (["alerts", "--alerts-config", str(cfg), "--state-db", str(tmp / "alerts.sqlite")],
            lambda: port_open(port) and "alerts running" in log.read_text(errors="replace"))


def _edge(tmp: Path, env: dict[str, str]) -> tuple[list[str], object]:
    data = tmp / "edge"
    return (["edge", "--site", str(REPO / "sites" / "tan-thuan-dong.yaml"), "--gateway", "gw-trung-tam",
             "--data-dir", str(data)], lambda: (data / "status.json").exists())


def _portal(tmp: Path, env: dict[str, str]) -> tuple[list[str], object]:
    port = free_port()
    env["VW_PORTAL_PORT"] = str(port)
    return ["portal"], lambda: port_open(port)


@pytest.mark.parametrize("command", [_ingest, _alerts, _edge, _portal], ids=lambda c: c.__name__[1:])
def test_ctrl_c_is_a_clean_stop(command, stack, tmp_path):
    env = {**os.environ, **stack.env(), "VW_DATA_DIR": str(tmp_path / "data")}
    args, ready = command(tmp_path, env)
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        eventually(lambda: proc.poll() is not None or ready(), 60, f"`villagewatch {args[0]}` to be up")
        assert proc.poll() is None, log.read_text(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert code in (0, 130), f"exit code {code}:\n{text}"


@pytest.mark.parametrize("command", ["ingest", "alerts", "portal"])
def test_a_taken_port_is_a_message(command, tmp_path):
    """A second instance on the same HTTP port says so; it does not print a traceback."""
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "VW_DATA_DIR": str(tmp_path / "data"), "VW_HTTP_PORT": str(port),
               "VW_PORTAL_PORT": str(port), "VW_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
               "VW_INFLUX_URL": f"http://127.0.0.1:{free_port()}"}
        args = [command]
        if command == "alerts":
            cfg = tmp_path / "alerts.yaml"
            cfg.write_text(f"http_port: {port}\n", encoding="utf-8")
            args += ["--alerts-config", str(cfg), "--state-db", str(tmp_path / "alerts.sqlite")]
        out = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.returncode == 2 and "port already in use" in out.stderr, out.stderr
