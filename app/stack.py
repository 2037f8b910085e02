"""The local stack: Mosquitto and InfluxDB from the Debian binaries as child processes.

One module used by ``villagewatch stack``, ``villagewatch demo``, the tests' fixtures and the
benchmarks, so all of them run the same thing. Processes are started in their own session and
stopped by PID; ``stack.json`` in the data folder lets another invocation find them.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_DEV_CONF = REPO_ROOT / "broker_config" / "mosquitto-dev.conf"

INSTALL_HINT = {
    "mosquitto": "install it with: apt-get install -y mosquitto mosquitto-clients",
    "influxd": "install it with: apt-get install -y influxdb  (Debian ships InfluxDB 1.6.7)",
}


class StackError(RuntimeError):
    """The local stack could not be started or stopped; the message says what to do."""


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on now, for a server started a moment later.

    Not from the kernel's ephemeral range (where ``bind(0)`` would pick): any other process's
    ``bind(0)`` or outgoing connection may take such a port between our check and the server's bind
    (the "address already in use" flake with several test runs on one machine). A random port below
    that range is taken only by another caller that picked the same one by chance; one process never
    hands out the same port twice (a previous test's server may still hold it or be in TIME_WAIT).
    """
    rng = random.SystemRandom()
    low, high = 10_000, min(_ephemeral_low(), 65_536) - 1
    for _ in range(200):
        port = rng.randint(low, high) if high > low else 0
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # conflicts with any listener on this port, on any address
            except OSError:
                continue
            port = s.getsockname()[1]
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # nothing free below the ephemeral range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(f"{name} not found: {INSTALL_HINT.get(name, 'install it')}")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); look at its state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: (_reap(pid), not pid_alive(pid))[1], 5, f"process {pid} to exit")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@dataclass
class Service:
    name: str
    port: int
    pid: int | None = None

    @property
    def running(self) -> bool:
        return pid_alive(self.pid)


class LocalStack:
    """Mosquitto + InfluxDB on loopback, with their data and logs under ``data_dir``."""

    def __init__(self, data_dir: str | Path, mqtt_port: int | None = None, influx_port: int | None = None,
                 influx_db: str = "villagewatch", broker_conf: Path = BROKER_DEV_CONF):
        self.data_dir = Path(data_dir).resolve()
        self.influx_db = influx_db
        self.broker_conf = broker_conf
        state = self._read_state()
        self.mosquitto = Service("mosquitto", mqtt_port or state.get("mqtt_port") or free_port(),
                                 state.get("mosquitto_pid"))
        self.influxd = Service("influxd", influx_port or state.get("influx_port") or free_port(),
                               state.get("influxd_pid"))
        self.influx_rpc_port = state.get("influx_rpc_port") or free_port()
        # ports we chose ourselves may be taken by another process between free_port() and the
        # service's bind (seen in the suite): those are chosen again; ports a caller gave are not
        self._chosen_ports = {"mosquitto": not (mqtt_port or state.get("mqtt_port")),
                              "influxd": not (influx_port or state.get("influx_port"))}
        self._procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ addresses
    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mosquitto.port}"

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influxd.port}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "stack.json"

    def env(self) -> dict[str, str]:
        """Environment variables that point villagewatch services at this stack."""
        return {"VW_MQTT_URL": self.mqtt_url, "VW_INFLUX_URL": self.influx_url, "VW_INFLUX_DB": self.influx_db}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> LocalStack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_retrying_port("mosquitto", self.start_broker, timeout)
        self._start_retrying_port("influxd", self.start_influx, timeout)
        return self

    def _start_retrying_port(self, name: str, start, timeout: float) -> None:
        for attempt in range(3):
            try:
                start(timeout)
                return
            except StackError as exc:
                if attempt == 2 or not self._chosen_ports[name] or "address already in use" not in str(exc):
                    raise
            svc = self.mosquitto if name == "mosquitto" else self.influxd
            svc.port = free_port()
            if name == "influxd":
                self.influx_rpc_port = free_port()
            self._write_state()

    def stop(self) -> None:
        errors = []
        for svc in (self.mosquitto, self.influxd):
            try:
                self._stop_service(svc)
            except StackError as exc:
                errors.append(str(exc))
        self._write_state()
        if errors:
            raise StackError("; ".join(errors))

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict[str, dict]:
        return {
            svc.name: {"pid": svc.pid, "port": svc.port, "running": svc.running,
                       "listening": port_open(svc.port)}
            for svc in (self.mosquitto, self.influxd)
        }

    # ------------------------------------------------------------------ broker
    def broker_config_text(self) -> str:
        text = self.broker_conf.read_text(encoding="utf-8")
        broker_dir = self.data_dir / "mosquitto"
        text = re.sub(r"(?m)^listener\s+\d+.*$", f"listener {self.mosquitto.port} 127.0.0.1", text, count=1)
        text = re.sub(r"(?m)^persistence_location\s+.*$", f"persistence_location {broker_dir}/", text)
        text = re.sub(r"(?m)^log_dest\s+.*$", f"log_dest file {broker_dir}/mosquitto.log", text)
        if os.geteuid() == 0:
            # Mosquitto started as root drops to user "mosquitto", which cannot write our folder:
            # persistence would fail silently (../shared/reference/libraries.md).
            text += "\nuser root\n"
        return text

    def start_broker(self, timeout: float = 30.0) -> None:
        if self.mosquitto.running:
            return
        binary = find_binary("mosquitto")
        broker_dir = self.data_dir / "mosquitto"
        broker_dir.mkdir(parents=True, exist_ok=True)
        conf = broker_dir / "mosquitto.conf"
        conf.write_text(self.broker_config_text(), encoding="utf-8")
        self._spawn(self.mosquitto, [binary, "-c", str(conf)], broker_dir / "stdout.log")
        self._wait_ready(self.mosquitto, lambda: port_open(self.mosquitto.port), timeout,
                         broker_dir / "mosquitto.log")

    def stop_broker(self, sig: int = signal.SIGTERM) -> None:
        self._stop_service(self.mosquitto, sig)

    # ------------------------------------------------------------------ influx
    def influx_config_text(self) -> str:
        d = self.data_dir / "influxdb"
        return f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.influx_rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.influxd.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
"""

    def start_influx(self, timeout: float = 30.0) -> None:
        if self.influxd.running:
            return
        binary = find_binary("influxd")
        d = self.data_dir / "influxdb"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "influxdb.conf"
        conf.write_text(self.influx_config_text(), encoding="utf-8")
        self._spawn(self.influxd, [binary, "-config", str(conf)], d / "influxd.log")
        self._wait_ready(self.influxd, self._influx_ping, timeout, d / "influxd.log")
        self.influx_query(f'CREATE DATABASE "{self.influx_db}"', method="POST")

    def stop_influx(self, sig: int = signal.SIGTERM) -> None:
        self._stop_service(self.influxd, sig)

    def _influx_ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.influx_url}/ping", timeout=1) as resp:
                return resp.status == 204
        except OSError:
            return False

    def influx_query(self, q: str, db: str | None = None, method: str = "GET", epoch: str = "ms") -> dict:
        """Run InfluxQL through the project's one InfluxDB client and return the decoded JSON
        (raises StackError on an error answer). ``method`` is kept for callers; the client POSTs,
        which InfluxDB accepts for every statement."""
        from villagewatch.influx import InfluxError, InfluxTarget, query_body_sync
        try:
            body = query_body_sync(InfluxTarget(self.influx_url, db or ""), q, timeout_s=60, epoch=epoch)
        except InfluxError as exc:
            raise StackError(f"InfluxQL error for {q!r}: {exc}") from exc
        for result in body.get("results", []):
            if "error" in result:
                raise StackError(f"InfluxQL error for {q!r}: {result['error']}")
        return body

    def query_values(self, q: str) -> list[list]:
        """Rows of the first series of an InfluxQL query on the stack's database."""
        body = self.influx_query(q, db=self.influx_db)
        series = body["results"][0].get("series") or []
        return [row for s in series for row in s["values"]]

    # ------------------------------------------------------------------ internals
    def _spawn(self, svc: Service, argv: list[str], log: Path) -> None:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self._procs[svc.name] = proc
        svc.pid = proc.pid
        self._write_state()

    def _wait_ready(self, svc: Service, ready, timeout: float, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not svc.running:
                tail = _tail(log)
                raise StackError(f"{svc.name} exited during start-up (port {svc.port}); log {log}:\n{tail}")
            if ready():
                return
            time.sleep(0.05)
        raise StackError(f"{svc.name} did not become ready on port {svc.port} within {timeout:.0f} s; see {log}")

    def _stop_service(self, svc: Service, sig: int = signal.SIGTERM) -> None:
        if svc.pid:
            stop_pid(svc.pid, sig=sig)
            proc = self._procs.pop(svc.name, None)
            if proc is not None:
                proc.wait(timeout=5)
        svc.pid = None
        self._write_state()

    def _read_state(self) -> dict:
        try:
            return json.loads((self.data_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self) -> None:
        if not self.data_dir.exists():
            return
        state = {"mqtt_port": self.mosquitto.port, "mosquitto_pid": self.mosquitto.pid,
                 "influx_port": self.influxd.port, "influxd_pid": self.influxd.pid,
                 "influx_rpc_port": self.influx_rpc_port, "influx_db": self.influx_db}
        self.state_file.write_text(json.dumps(state, indent=2))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
