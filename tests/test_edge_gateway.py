"""Edge gateway against a real Mosquitto: outage, SIGKILL, disk budget, status with LWT.

The gateway runs as a subprocess (`python -m app.cli edge ...`), exactly as deployed.
Durations are shortened for the test suite (the issue's 60-s outage runs in bench/edge.py
`--outage 60`): OUTAGE_S below is the only difference, the code path is the same.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import REPO, eventually
from paho.mqtt.enums import CallbackAPIVersion

from villagewatch import contract

pytestmark = pytest.mark.integration

OUTAGE_S = 8  # the issue asks 60 s: bench/edge.py --outage 60 runs that variant


def write_site(path: Path, n_stations: int, interval_s: int = 1, gateway: str = "gw-test") -> Path:
    lines = ["commune: xa-thu", 'name_vi: "Xã thử nghiệm"', "gateways:", f"  - id: {gateway}",
             '    name_vi: "Cổng thử"', "stations:"]
    for i in range(n_stations):
        lines += [f"  - id: ao-{i:02d}", "    kind: pond", f'    name_vi: "Ao {i}"', "    lat: 10.4",
                  "    lon: 105.6", f"    gateway: {gateway}", f"    interval_s: {interval_s}",
                  "    metrics: [do, temp]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Collector:
    """A persistent-session QoS 1 subscriber: the broker keeps its queue across a broker restart."""

    def __init__(self, port: int, client_id: str = "test-collector"):
        self.lock = threading.Lock()
        self.telemetry: dict[str, list[dict]] = defaultdict(list)
        self.raw: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.status: dict[str, dict] = {}
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=False)
        c.reconnect_delay_set(1, 1)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(contract.TELEMETRY_SUBSCRIPTION, 1),
                                                            (contract.GATEWAY_STATUS_SUBSCRIPTION, 1),
                                                            (contract.STATION_STATUS_SUBSCRIPTION, 1)])
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        self.client = c
        # the callers start a gateway right after: its first readings (not retained) would reach
        # the broker before this subscription on a loaded machine, and "every seq" would never hold
        if not subscribed.wait(60):
            self.stop()
            raise AssertionError(f"the collector did not subscribe on port {port}")

    def _on_message(self, client, userdata, msg) -> None:
        info = contract.parse_topic(msg.topic)
        with self.lock:
            if info.kind == "telemetry":
                body = json.loads(msg.payload)
                self.telemetry[info.station].append(body)
                self.raw[(info.station, body["seq"])].append(msg.payload)
            else:
                self.status[msg.topic] = json.loads(msg.payload)

    def seqs(self, station: str) -> list[int]:
        with self.lock:
            return [b["seq"] for b in self.telemetry[station]]

    def total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.telemetry.values())

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_gateway(site: Path, data_dir: Path, mqtt_url: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, VW_MQTT_URL=mqtt_url, PYTHONPATH=str(REPO))
    log = open(data_dir.parent / f"{data_dir.name}.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "edge", "--site", str(site), "--gateway", "gw-test",
         "--data-dir", str(data_dir), "--status-interval", "1", *extra],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def spool_state(data_dir: Path) -> tuple[int, dict[str, int]]:
    """(queued rows, next seq per station) read from the gateway's spool, as a technician would."""
    if not (data_dir / "spool.sqlite").exists():
        return 0, {}
    db = sqlite3.connect(f"file:{data_dir / 'spool.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        depth = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        return depth, dict(db.execute("SELECT station, next FROM seqs"))
    except sqlite3.OperationalError:
        return 0, {}
    finally:
        db.close()


def status_file(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def stop_gateway(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def two_increasing_runs(seqs: list[int]) -> bool:
    """Arrival order = the replayed part in order and the live part in order (docs/edge.md, lanes)."""
    first_seen: list[int] = []
    seen: set[int] = set()
    for s in seqs:
        if s not in seen:
            seen.add(s)
            first_seen.append(s)
    for cut in sorted(seen | {max(seen) + 1}):
        old = [s for s in first_seen if s < cut]
        new = [s for s in first_seen if s >= cut]
        if old == sorted(old) and new == sorted(new):
            return True
    return False


def assert_complete(col: Collector, next_seq: dict[str, int], check_order: bool = True) -> int:
    """Every seq of every station arrived, duplicates are byte-identical. Returns the duplicate count."""
    dups = 0
    for station, n in next_seq.items():
        got = set(col.seqs(station))
        missing = sorted(set(range(n)) - got)
        assert not missing, f"{station}: seq missing {missing[:20]} (of {n})"
        for seq in range(n):
            payloads = col.raw[(station, seq)]
            assert len(set(payloads)) == 1, f"{station} seq {seq}: duplicates differ {payloads}"
            dups += len(payloads) - 1
        by_seq = {b["seq"]: b["ts"] for b in col.telemetry[station]}
        ts = [by_seq[s] for s in range(n)]
        assert ts == sorted(ts) and len(set(ts)) == n, f"{station}: ts not increasing with seq"
        assert not check_order or two_increasing_runs(col.seqs(station)), f"{station}: arrival order {col.seqs(station)}"
    return dups


def test_broker_outage_every_reading_arrives_in_order_with_original_ts(stack, tmp_path):
    """Broker stopped for OUTAGE_S (8 s here, 60 s in bench/edge.py) while 10 stations publish
    every second: no seq gap, order per lane kept, readings taken offline keep their own ts."""
    site = write_site(tmp_path / "site.yaml", 10)
    data = tmp_path / "gw"
    col = Collector(stack.mosquitto.port)
    gw = start_gateway(site, data, stack.mqtt_url)
    try:
        eventually(lambda: all(len(col.seqs(f"ao-{i:02d}")) >= 2 for i in range(10)), 30, "first readings")
        eventually(lambda: status_file(data).get("link", {}).get("state") == "connected", 10, "status file")
        stack.stop_broker()
        down_ms = int(time.time() * 1000)
        # the outage lasts until the spool holds OUTAGE_S seconds of readings (a condition, not a sleep)
        eventually(lambda: spool_state(data)[0] >= 10 * OUTAGE_S, OUTAGE_S + 20, "readings queued offline")
        up_ms = int(time.time() * 1000)
        stack.start_broker(timeout=90)
        eventually(lambda: status_file(data).get("link", {}).get("state") == "connected"
                   and status_file(data)["queue"]["depth"] < 20, 40, "backlog drained")
    finally:
        stop_gateway(gw)
    depth, next_seq = spool_state(data)
    assert depth == 0
    assert len(next_seq) == 10
    eventually(lambda: col.total() >= sum(next_seq.values()), 30, "all readings at the subscriber")
    col.stop()
    assert_complete(col, next_seq)
    offline = [b for bodies in col.telemetry.values() for b in bodies if down_ms < b["ts"] < up_ms]
    assert len(offline) >= 10 * (OUTAGE_S - 1), "readings taken offline must keep their original ts"
    assert gw.returncode == 0


def test_sigkill_offline_and_mid_replay_loses_nothing(stack, tmp_path):
    """SIGKILL with thousands queued offline (2,000+ here: 20 stations every 0.1 s), then again while
    the backlog replays: nothing lost; duplicates only from PUBACKs in flight, byte-identical, so
    they land on the same point (same series and ts)."""
    stack.stop_broker()
    site = write_site(tmp_path / "site.yaml", 20)
    data = tmp_path / "gw"
    args = ("--speed", "10", "--replay-rate", "400", "--window", "100")
    gw = start_gateway(site, data, stack.mqtt_url, *args)
    try:
        eventually(lambda: spool_state(data)[0] >= 2000, 60, "2000 readings queued offline")
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        queued, _ = spool_state(data)
        assert queued >= 2000
        stack.start_broker(timeout=90)
        col = Collector(stack.mosquitto.port)
        gw = start_gateway(site, data, stack.mqtt_url, *args)
        eventually(lambda: col.total() >= 600, 60, "replay under way")
        gw.send_signal(signal.SIGKILL)  # PUBACKs in flight are lost with the process
        gw.wait(10)
        gw = start_gateway(site, data, stack.mqtt_url, *args)
        eventually(lambda: status_file(data).get("link", {}).get("state") == "connected"
                   and not status_file(data)["queue"]["replaying"]
                   and status_file(data)["queue"]["depth"] < 50, 60, "backlog drained after restart")
    finally:
        stop_gateway(gw)
    depth, next_seq = spool_state(data)
    assert depth == 0
    eventually(lambda: col.total() >= sum(next_seq.values()), 30, "all readings at the subscriber")
    col.stop()
    # each restart adds a lane (what the killed process had in flight replays after the rest), so
    # arrival order is checked in the outage test, with one connection change
    dups = assert_complete(col, next_seq, check_order=False)
    assert dups <= 100 + 50, f"{dups} duplicates: more than the in-flight window at the kill"


def test_disk_budget_drops_oldest_reports_count_keeps_newest(stack, tmp_path):
    """A 40 KB spool budget while offline: oldest readings dropped and counted in the gateway status,
    the newest ones delivered when the broker returns."""
    stack.stop_broker()
    site = write_site(tmp_path / "site.yaml", 20)
    data = tmp_path / "gw"
    gw = start_gateway(site, data, stack.mqtt_url, "--speed", "10", "--budget-mb", "0.04")
    try:
        eventually(lambda: status_file(data).get("queue", {}).get("drops", 0) >= 200, 60, "drops counted")
        stack.start_broker(timeout=90)
        col = Collector(stack.mosquitto.port)
        eventually(lambda: any(s.get("queue", {}).get("drops", 0) >= 200 and s["online"]
                               for t, s in col.status.items() if "/_gw/" in t), 30, "drops in published status")
        eventually(lambda: status_file(data)["queue"]["depth"] < 50, 30, "queue drained")
    finally:
        stop_gateway(gw)
    _, next_seq = spool_state(data)
    eventually(lambda: all(next_seq[s] - 1 in col.seqs(s) for s in next_seq), 30, "newest readings delivered")
    gw_status = next(s for t, s in col.status.items() if "/_gw/" in t)
    assert gw_status["online"] is False and gw_status["reason"] == "stopped"
    for station in next_seq:
        assert 0 not in col.seqs(station), "the oldest readings should have been dropped"
    assert sum(gw_status["queue"]["drops_by_station"].values()) == gw_status["queue"]["drops"]
    col.stop()


def test_lwt_marks_gateway_offline_when_killed(stack, tmp_path):
    site = write_site(tmp_path / "site.yaml", 1)
    data = tmp_path / "gw"
    col = Collector(stack.mosquitto.port, "lwt-watcher")
    gw = start_gateway(site, data, stack.mqtt_url)
    topic = contract.gateway_status_topic("xa-thu", "gw-test")
    eventually(lambda: col.status.get(topic, {}).get("online") is True, 30, "gateway online status")
    body = col.status[topic]
    for key in ("uptime_s", "queue", "link", "sources"):
        assert key in body
    assert {"depth", "oldest_age_s", "drops"} <= set(body["queue"])
    gw.send_signal(signal.SIGKILL)
    gw.wait(10)
    # keepalive 30 s would be slow: Mosquitto sends the will at once when the socket closes
    eventually(lambda: col.status.get(topic, {}).get("online") is False, 20, "LWT offline")
    assert col.status[topic].get("reason") == "lwt"
    col.stop()
