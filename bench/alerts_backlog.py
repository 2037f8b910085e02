"""Alerts backlog (issue 11 §3): the alerts service down while N readings queue in its persistent
session on the PRODUCTION-configured Mosquitto (broker_config/mosquitto.conf: accounts, ACL,
``use_username_as_clientid``, ``max_queued_messages``/``max_queued_bytes``), then started: every
reading must be evaluated, exactly counted.

    .venv/bin/python bench/alerts_backlog.py                # 200,000 readings
    .venv/bin/python bench/alerts_backlog.py --messages 50000 --window 2000

Steps: a real Mosquitto (production config, temp folder) + InfluxDB; the alerts service
(`villagewatch alerts`, child process, account svc.alerts) starts once to create its session and is
stopped; the site's three gateway accounts publish N readings of the pilot commune's 13 stations at
QoS 1 (fast raw publisher, every message acknowledged by the broker); the service is started again
and drains the backlog. Recorded: publish and drain time, evaluation rate, the service's peak RSS,
the most it held unacknowledged, how often backpressure engaged, and Mosquitto's RSS holding the
backlog. Exact: the service's ``evaluated`` and ``acked`` counters must equal N.
Results: bench/results/alerts-backlog-*.json and docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.stack import LocalStack, free_port, wait_until  # noqa: E402
from app.testing.secure_broker import SecureBroker, try_connect  # noqa: E402
from firmware_tools import provision as prov  # noqa: E402
from firmware_tools.workspace import Workspace  # noqa: E402
from simulator.loadgen import RawPublisher, value_pools  # noqa: E402
from villagewatch import contract  # noqa: E402
from villagewatch.config import MqttUrl  # noqa: E402
from villagewatch.health import read_health  # noqa: E402
from villagewatch.sites import load_site  # noqa: E402

COMMUNE = "tan-thuan-dong"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) / 1024
    except (OSError, AttributeError):
        return 0.0


class Alerts:
    def __init__(self, env: dict[str, str], work: Path, window: int):
        self.port = free_port()
        cfg = work / "alerts.yaml"
        cfg.write_text(json.dumps({"http_port": self.port, "intake_window": window}))
        self.env, self.work = env, work
        self.argv = [sys.executable, "-m", "app.cli", "alerts", "--alerts-config", str(cfg),
                     "--state-db", str(work / "alerts.sqlite")]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.work / "alerts.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out, cwd=REPO)

    def health(self) -> dict:
        return read_health(self.port) or {}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def build(n: int) -> dict[str, list[tuple[bytes, bytes]]]:
    """Per gateway, (topic, payload) in order: seq-major over that gateway's stations."""
    site = load_site(REPO / "sites" / f"{COMMUNE}.yaml")
    pools = value_pools()
    stations = list(site.stations.values())
    start = int(time.time() * 1000) - 4 * 86_400_000
    out: dict[str, list[tuple[bytes, bytes]]] = {gw: [] for gw in site.gateways}
    made, seq = 0, 0
    while made < n:
        for i, st in enumerate(stations):
            if made >= n:
                break
            pool = pools[st.kind]
            metrics = {k: v for k, v in pool[(seq + i * 7) % len(pool)].items() if k in st.metrics}
            r = contract.Reading(COMMUNE, st.id, start + seq * 1000 + i, seq, metrics)
            out[st.gateway].append((r.topic.encode(), r.to_payload()))
            made += 1
        seq += 1
    return out


async def publish(port: int, accounts: dict[str, tuple[str, str]], items: dict[str, list]) -> None:
    async def one(gw: str) -> None:
        user, password = accounts[gw]
        pub = await RawPublisher.connect(MqttUrl.parse(f"mqtt://{user}:{password}@127.0.0.1:{port}"), user, 2000)
        try:
            msgs = items[gw]
            for i in range(0, len(msgs), 2000):
                await pub.publish_many(msgs[i:i + 2000])
            await pub.drain(600)
        finally:
            pub.close()
    await asyncio.gather(*(one(gw) for gw in items if items[gw]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=2000, help="alerts intake_window")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vw-alerts-backlog-"))
    stack = LocalStack(work / "stack").start()  # InfluxDB (warm-up); its dev broker is not used
    ws = Workspace(work / "fw", work / "secure" / "broker")
    broker = SecureBroker(work / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    alerts = None
    try:
        site = load_site(REPO / "sites" / f"{COMMUNE}.yaml")
        accounts = {}
        for gw in site.gateways:
            p = prov.provision_gateway(ws, site, gw)
            accounts[gw] = (p.device.id, p.password)
        svc = prov.provision_service(ws, "alerts")
        wait_until(lambda: try_connect(broker.plain_port, svc.device.id, svc.password).connected, 10,
                   "accounts accepted")
        env = {**os.environ, **stack.env(), "VW_SITES": str(REPO / "sites"),
               "VW_MQTT_URL": f"mqtt://{svc.device.id}:{svc.password}@127.0.0.1:{broker.plain_port}"}
        alerts = Alerts(env, work, args.window)
        alerts.start()
        wait_until(lambda: alerts.health().get("subscribed"), 60, "alerts subscribed (session created)")
        alerts.stop()

        items = build(args.messages)
        payload_bytes = sum(len(p) for msgs in items.values() for _, p in msgs)
        log(f"publishing {args.messages} readings while the alerts service is down")
        t0 = time.perf_counter()
        asyncio.run(publish(broker.plain_port, accounts, items))
        publish_s = time.perf_counter() - t0
        broker_rss = rss_mb(broker.proc.pid)
        log(f"published in {publish_s:.1f} s; Mosquitto RSS {broker_rss:.0f} MB")

        peak_depth = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_depth
            while not stop.is_set():
                peak_depth = max(peak_depth, alerts.health().get("queue_depth", 0))
                stop.wait(0.2)

        t1 = time.perf_counter()
        alerts.start()
        wait_until(lambda: alerts.health(), 120, "alerts answering /healthz", interval=0.05)
        startup_s = time.perf_counter() - t1
        first = alerts.health().get("acked", 0)
        threading.Thread(target=sample, daemon=True).start()
        wait_until(lambda: alerts.health().get("acked", 0) >= args.messages, 900, "backlog drained", interval=0.2)
        drain_s = time.perf_counter() - t1 - startup_s
        stop.set()
        h = alerts.health()
        peak_rss = rss_mb(alerts.proc.pid, "VmHWM")
        result = {
            "bench": "alerts-backlog", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "broker_config": "broker_config/mosquitto.conf (production)", "messages": args.messages,
            "payload_mb": round(payload_bytes / 1e6, 1), "intake_window": args.window,
            "publish_seconds": round(publish_s, 1), "mosquitto_rss_mb_with_backlog": round(broker_rss, 1),
            "startup_seconds": round(startup_s, 1), "acked_at_startup": first,
            "drain_seconds_after_startup": round(drain_s, 1),
            "evaluated_per_s": round((args.messages - first) / drain_s),
            "evaluated": h.get("evaluated"), "acked": h.get("acked"), "lost": args.messages - h.get("evaluated", 0),
            "evaluation_errors": h.get("evaluation_errors"), "sessions_lost": h.get("sessions_lost"),
            "peak_unacked_sampled": peak_depth, "intake_waits": h.get("intake_waits"),
            "alerts_peak_rss_mb": round(peak_rss, 1), "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        out = REPO / "bench" / "results" / f"alerts-backlog-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        ok = h.get("evaluated") == args.messages and h.get("acked") == args.messages
        log("OK: every reading evaluated exactly once" if ok else "FAILED: counts differ")
        return 0 if ok else 1
    finally:
        if alerts is not None:
            alerts.stop()
        broker.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
