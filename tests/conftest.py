"""Shared fixtures: a real Mosquitto + InfluxDB per test, started by app.stack."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from app.stack import LocalStack, StackError, wait_until

# Every property test runs on a shared 2-core machine: hypothesis' per-example deadline (200 ms) and its
# "too slow" health check measure the machine's load, not the code, and failed examples at random
# (a flake, not a counterexample). Tests that set their own settings inherit these defaults.
settings.register_profile("villagewatch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("villagewatch")

try:  # Playwright's expect(...) waits 5 s by default: too little for Chromium on a loaded machine
    from playwright.sync_api import expect as _playwright_expect
    _playwright_expect.set_options(timeout=30_000)
except ImportError:  # the browser tests skip without it
    pass

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("VW_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch) -> None:
    """VW_DATA_DIR in a fresh folder for every test: the default is ``var`` in the working directory,
    i.e. the repository, so a service, CLI or child process started without one wrote there
    (``var/auth.sqlite``) and the next test — and the next run — read what the last one left.
    Other VW_* settings of the shell that runs pytest are removed too (a developer's VW_MQTT_URL
    would point services started without an explicit env at another broker)."""
    for name in [n for n in os.environ if n.startswith("VW_") and n != "VW_TEST_ARTIFACTS"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VW_DATA_DIR", str(tmp_path_factory.mktemp("vw-data")))


@pytest.fixture
def stack(tmp_path: Path):
    """A fresh broker and database on free ports in a temporary folder, stopped by PID after."""
    s = LocalStack(tmp_path / "stack")
    try:
        s.start(timeout=90)  # influxd on a loaded 2-core machine; costs time only on failure
    except StackError as exc:
        pytest.fail(f"local stack did not start: {exc}")
    yield s
    s.stop()


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


EVENTUALLY_FLOOR_S = 60.0


def eventually(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Wait for a condition with a deadline (never a bare sleep).

    The deadline is at least EVENTUALLY_FLOOR_S: it costs time only when the test fails anyway, and
    10-20 s deadlines timed out on a loaded 2-core machine (a flake, not a defect)."""
    wait_until(predicate, max(timeout, EVENTUALLY_FLOOR_S), what, interval)


async def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    """``eventually`` for a test running an event loop: polls without blocking the loop (the
    service under test runs on it). The same floor on the deadline."""
    deadline = time.monotonic() + max(timeout, EVENTUALLY_FLOOR_S)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {max(timeout, EVENTUALLY_FLOOR_S)} s waiting for {what}")
        await asyncio.sleep(interval)


def pond_only_sites(station: str = "ao-ca-tra-a3") -> dict:
    """The pilot commune with one station (and its gateway) only: a test's alerts are about it alone."""
    from dataclasses import replace

    from villagewatch.sites import load_site

    site = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
    st = site.stations[station]
    return {site.commune: replace(site, stations={station: st}, gateways={st.gateway: site.gateways[st.gateway]})}


class PondGateway:
    """The station's gateway on a real broker: publishes the pond's readings (DO as given, the rest
    in range) at QoS 1, each one acknowledged by the broker before ``publish`` returns."""

    def __init__(self, mqtt_url: str, sites: dict, station: str, client_id: str):
        import itertools

        import paho.mqtt.client as mqtt

        [self.site] = sites.values()
        self.station = station
        self.seq = itertools.count(1)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect("127.0.0.1", int(mqtt_url.rsplit(":", 1)[1]))
        self.client.loop_start()

    def publish(self, ts_ms: int, do: float) -> None:
        from villagewatch import contract

        r = contract.Reading(self.site.commune, self.station, ts_ms, next(self.seq),
                             {"do": do, "ph": 7.4, "temp": 29.0, "nh4": 0.4, "battery": 3.9, "rssi": -70},
                             self.site.stations[self.station].gateway)
        self.client.publish(r.topic, r.to_payload(), qos=1).wait_for_publish(30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def clear_of_local_midnight(margin_s: float = 120.0, tz: str = "Asia/Ho_Chi_Minh") -> None:
    """Return at least ``margin_s`` before the next local midnight (waiting for it to pass if needed).

    A test that computes "today" (or writes "today's" readings) and then asks a service that reads
    its own clock disagrees with it when local midnight (17:00 UTC) falls in between."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    now = datetime.now(zone)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), zone)
    if (midnight - now).total_seconds() < margin_s:
        eventually(lambda: datetime.now(zone) >= midnight + timedelta(seconds=2), margin_s + 30,
                   "local midnight to pass", interval=0.5)


@pytest.fixture
def site_dir() -> Path:
    return REPO / "sites"


class IngestProcess:
    """`villagewatch ingest` as a real child process (so tests can SIGKILL it)."""

    def __init__(self, stack: LocalStack, data_dir: Path, extra_env: dict | None = None, args: list[str] | None = None):
        from app.stack import free_port
        self.stack, self.data_dir = stack, data_dir
        self.http_port = free_port()
        self.env = {**os.environ, **stack.env(), "VW_HTTP_PORT": str(self.http_port),
                    "VW_SITES": str(REPO / "sites"), **(extra_env or {})}
        self.args = args or []
        self.proc = None

    def start(self, wait: bool = True) -> IngestProcess:
        import subprocess
        import sys
        log = open(self.data_dir / "ingest.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", "--data-dir",
                                      str(self.data_dir), *self.args], env=self.env, stdout=log, stderr=log)
        if wait:
            eventually(self.healthy_or_dead, 30, "ingest to report healthy")
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited: {self.log_tail()}")
        return self

    def health(self) -> dict | None:
        from villagewatch.health import read_health
        # 30 s, not the 2 s default: a busy ingest on a loaded machine answers late, and None here
        # made `health()["spool_batches"]` a TypeError (the port refuses at once while it starts)
        return read_health(self.http_port, timeout=30)

    def healthy_or_dead(self) -> bool:
        if self.proc.poll() is not None:
            return True
        h = self.health()
        return bool(h and h.get("broker") and h.get("subscribed"))

    def metrics_text(self) -> str:
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=30) as r:
            return r.read().decode()

    def kill(self, sig: int = 9) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        p = self.data_dir / "ingest.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""


@pytest.fixture
def ingest_factory(stack, tmp_path):
    started: list[IngestProcess] = []

    def make(extra_env: dict | None = None, args: list[str] | None = None, start: bool = True) -> IngestProcess:
        d = tmp_path / f"ingest{len(started)}"
        d.mkdir()
        proc = IngestProcess(stack, d, extra_env, args)
        started.append(proc)
        return proc.start() if start else proc

    yield make
    for p in started:
        p.stop()


def serve_app(app, port: int):
    """Run an aiohttp app on a real socket (127.0.0.1:port) in a background thread; returns stop()."""
    import asyncio
    import threading

    from aiohttp import web
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(app)

    async def start():
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(60), "the app did not start listening"

    def stop():
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
    return stop
