"""A real Mosquitto started with ``broker_config/mosquitto.conf`` (the production file), with only
its paths, ports and log destination rewritten so it runs unprivileged in a temporary folder.

Used by the tests and by anyone who wants to try the secured setup locally.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from app.stack import REPO_ROOT, find_binary, free_port, port_open, stop_pid, wait_until
from firmware_tools.ca import CertificateAuthority

PRODUCTION_CONF = REPO_ROOT / "broker_config" / "mosquitto.conf"
PROD_FILES_DIR = "/etc/mosquitto/villagewatch/"
PROD_PERSISTENCE = "/var/lib/mosquitto/"


def render_production_config(text: str, files_dir: Path, data_dir: Path, plain_port: int, tls_port: int,
                             log_file: Path) -> str:
    text = text.replace(PROD_FILES_DIR, f"{files_dir}/").replace(PROD_PERSISTENCE, f"{data_dir}/")
    text = re.sub(r"(?m)^listener\s+1883\b.*$", f"listener {plain_port} 127.0.0.1", text)
    text = re.sub(r"(?m)^listener\s+8883\b.*$", f"listener {tls_port} 127.0.0.1", text)
    text = re.sub(r"(?m)^log_dest\s+.*$", f"log_dest file {log_file}", text)
    if os.geteuid() == 0:
        text += "\nuser root\n"  # see app.stack.broker_config_text: else it drops privileges
    return text


@dataclass
class SecureBroker:
    """Production-configured Mosquitto; ``files_dir`` holds passwd, acl, ca.crt, server.crt/.key."""

    root: Path
    ca: CertificateAuthority

    def __post_init__(self) -> None:
        self.files_dir = self.root / "broker"
        self.data_dir = self.root / "mosquitto-data"
        self.plain_port = free_port()
        self.tls_port = free_port()
        self.log_file = self.root / "mosquitto.log"
        self.pid_file = self.root / "mosquitto.pid"
        self.proc: subprocess.Popen | None = None

    def prepare(self) -> None:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.ca.exists():
            self.ca.init()
        (self.files_dir / "ca.crt").write_bytes(self.ca.ca_pem())
        self.ca.issue_server(["127.0.0.1", "localhost"]).write(self.files_dir / "server.crt",
                                                               self.files_dir / "server.key")
        for name in ("passwd", "acl"):
            path = self.files_dir / name
            if not path.exists():
                path.write_text("")

    def start(self, timeout: float = 20) -> SecureBroker:
        self.prepare()
        conf = self.root / "mosquitto.conf"
        conf.write_text(render_production_config(PRODUCTION_CONF.read_text(), self.files_dir, self.data_dir,
                                                 self.plain_port, self.tls_port, self.log_file))
        with open(self.root / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(self.proc.pid))

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()}")
            return port_open(self.plain_port) and port_open(self.tls_port)
        wait_until(ready, timeout, "secured mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.plain_port}"


@dataclass
class ConnectOutcome:
    connected: bool
    detail: str


def try_connect(port: int, username: str | None = None, password: str | None = None, *,
                tls: ssl.SSLContext | None = None, timeout: float = 30) -> ConnectOutcome:
    """One MQTT 3.1.1 connection attempt. ``connected`` is True only on a successful CONNACK; a
    refused CONNACK, a TLS alert or a closed socket are all "not connected", with the reason."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)
    outcome: dict = {}
    done = threading.Event()

    def on_connect(c, u, flags, rc, props) -> None:
        outcome.setdefault("result", (not rc.is_failure, f"CONNACK {rc}"))
        done.set()

    def on_disconnect(c, u, flags, rc, props) -> None:
        outcome.setdefault("result", (False, f"disconnected before CONNACK: {rc}"))
        done.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    try:
        client.connect("127.0.0.1", port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        return ConnectOutcome(False, f"{type(exc).__name__}: {exc}")
    client.loop_start()
    try:
        if not done.wait(timeout):
            return ConnectOutcome(False, f"no CONNACK within {timeout} s")
        return ConnectOutcome(*outcome["result"])
    finally:
        client.disconnect()
        client.loop_stop()


def tls_context(ca_pem_path: Path, cert_path: Path | None = None, key_path: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_pem_path))
    if cert_path is not None:
        ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx


class MqttSession:
    """A connected paho client with its received messages, for asserting on what a peer sees."""

    def __init__(self, port: int, username: str | None, password: str | None, *,
                 tls: ssl.SSLContext | None = None, v5: bool = False, client_id: str = "",
                 timeout: float = 30):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subacks: dict[int, list] = {}
        self.client.on_connect = lambda c, u, f, rc, p: (not rc.is_failure) and self._connected.set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subacks.__setitem__(mid, list(rcs))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise ConnectionError(f"{username} could not connect to port {port}")

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 30) -> list:
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        wait_until(lambda: mid in self._subacks, timeout, f"SUBACK for {topic}")
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                timeout: float = 30) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)

    def received(self, topic: str | None = None) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def payloads(self, topic: str | None = None) -> list[bytes]:
        return [m.payload for m in self.received(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> MqttSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
