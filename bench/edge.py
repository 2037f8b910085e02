"""Edge gateway benchmarks (not part of the test suite). Results go to docs/performance.md.

    .venv/bin/python bench/edge.py load   [--rate 200] [--seconds 60]
    .venv/bin/python bench/edge.py drain  [--stations 50] [--backlog-s 3600]
    .venv/bin/python bench/edge.py outage [--outage 60]

load:   the gateway (subprocess, simulated source) at --rate readings/s against a real Mosquitto:
        CPU % of one core and peak RSS (VmHWM) of the gateway process.
drain:  a spool pre-filled with --backlog-s seconds of --stations stations at 1 Hz (the state after
        an outage), then the gateway starts with the broker up while the same stations keep
        producing live readings: time to drain, and the delay of live readings during the drain.
outage: the issue's scenario at full length: 10 stations at 1 Hz, broker stopped --outage s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from app.stack import LocalStack, wait_until  # noqa: E402
from edge.spool import Spool  # noqa: E402
from villagewatch import contract  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def write_site(path: Path, n: int, interval_s: int = 1) -> Path:
    lines = ["commune: xa-bench", 'name_vi: "Xã đo hiệu năng"', "gateways:", "  - id: gw-bench",
             '    name_vi: "Cổng đo"', "stations:"]
    for i in range(n):
        lines += [f"  - id: ao-{i:03d}", "    kind: pond", f'    name_vi: "Ao {i}"', "    lat: 10.4", "    lon: 105.6",
                  "    gateway: gw-bench", f"    interval_s: {interval_s}", "    metrics: [do, temp, ph]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_gateway(site: Path, data: Path, url: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, VW_MQTT_URL=url, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "app.cli", "edge", "--site", str(site), "--gateway",
                             "gw-bench", "--data-dir", str(data), "--status-interval", "1", *extra],
                            env=env, stdout=open(data.parent / "gateway.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def status(data: Path) -> dict:
    try:
        return json.loads((data / "status.json").read_text())
    except (OSError, ValueError):
        return {}


class Subscriber:
    def __init__(self, port: int):
        self.count = 0
        self.latency: list[tuple[float, int]] = []  # (receive time, ts) of every telemetry message
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub", clean_session=False)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(contract.TELEMETRY_SUBSCRIPTION, 1)
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 1)
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        body = json.loads(msg.payload)
        with self.lock:
            self.count += 1
            self.latency.append((time.time(), body["ts"]))
            self.seqs[msg.topic.split("/")[3]].append(body["seq"])


def bench_load(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp) / "stack") as stack:
        tmp = Path(tmp)
        stations = 20
        site = write_site(tmp / "site.yaml", stations)
        sub = Subscriber(stack.mosquitto.port)
        gw = start_gateway(site, tmp / "gw", stack.mqtt_url, "--speed", str(args.rate / stations))
        time.sleep(5)  # warm-up, not synchronization: imports, first connect
        c0, n0, t0 = cpu_seconds(gw.pid), sub.count, time.monotonic()
        time.sleep(args.seconds)
        c1, n1, t1 = cpu_seconds(gw.pid), sub.count, time.monotonic()
        rss = peak_rss_mb(gw.pid)
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        return {"rate_target": args.rate, "rate_measured": round((n1 - n0) / (t1 - t0), 1),
                "cpu_pct_one_core": round(100 * (c1 - c0) / (t1 - t0), 1), "peak_rss_mb": round(rss, 1),
                "seconds": args.seconds}


def bench_drain(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp) / "stack") as stack:
        tmp = Path(tmp)
        site = write_site(tmp / "site.yaml", args.stations)
        data = tmp / "gw"
        spool = Spool(data / "spool.sqlite")
        now = int(time.time() * 1000)
        start = now - args.backlog_s * 1000
        for sec in range(args.backlog_s):
            spool.append([contract.Reading("xa-bench", f"ao-{i:03d}", start + sec * 1000, 0,
                                           {"do": 5.0, "temp": 28.0, "ph": 7.0}, "gw-bench")
                          for i in range(args.stations)])
        backlog = spool.depth
        spool.close()
        sub = Subscriber(stack.mosquitto.port)
        t0 = time.time()
        gw = start_gateway(site, data, stack.mqtt_url, "--replay-rate", str(args.replay_rate))
        wait_until(lambda: sub.count >= backlog, 600, "backlog delivered", 0.2)
        drained = time.time() - t0
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        with sub.lock:
            live = [(rx * 1000 - ts) for rx, ts in sub.latency if ts >= t0 * 1000 and rx - t0 <= drained]
        return {"stations": args.stations, "backlog_readings": backlog, "drain_s": round(drained, 1),
                "drain_rate_per_s": round(backlog / drained), "live_readings_during_drain": len(live),
                "live_delay_ms_p50": round(statistics.median(live)) if live else None,
                "live_delay_ms_max": round(max(live)) if live else None, "replay_rate": args.replay_rate}


def bench_outage(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp) / "stack") as stack:
        tmp = Path(tmp)
        site = write_site(tmp / "site.yaml", 10)
        data = tmp / "gw"
        sub = Subscriber(stack.mosquitto.port)
        gw = start_gateway(site, data, stack.mqtt_url)
        wait_until(lambda: sub.count >= 30, 60, "first readings")
        stack.stop_broker()
        t_down = time.time()
        time.sleep(args.outage)  # the outage itself is the scenario
        stack.start_broker()
        t_up = time.time()
        wait_until(lambda: status(data).get("queue", {}).get("depth", 1e9) < 20
                   and status(data).get("link", {}).get("state") == "connected", 120, "drained")
        drained = time.time() - t_up
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
        spool = Spool(data / "spool.sqlite")
        expected = dict(spool.next_seq)
        spool.close()
        wait_until(lambda: sub.count >= sum(expected.values()), 60, "all delivered")
        gaps = {s: sorted(set(range(n)) - set(sub.seqs[s])) for s, n in expected.items()}
        return {"outage_s": round(t_up - t_down, 1), "readings": sum(expected.values()),
                "missing": sum(len(g) for g in gaps.values()), "drain_after_return_s": round(drained, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("load")
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--seconds", type=float, default=60)
    p = sub.add_parser("drain")
    p.add_argument("--stations", type=int, default=50)
    p.add_argument("--backlog-s", type=int, default=3600)
    p.add_argument("--replay-rate", type=float, default=5000)
    p = sub.add_parser("outage")
    p.add_argument("--outage", type=float, default=60)
    args = ap.parse_args()
    result = {"load": bench_load, "drain": bench_drain, "outage": bench_outage}[args.what](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
