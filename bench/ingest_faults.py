"""Ingest durability under load (issue #4): faults at a steady publish rate, exact counts after.

    .venv/bin/python bench/ingest_faults.py                 # all three scenarios (≈ 4 minutes)
    .venv/bin/python bench/ingest_faults.py influx-down     # one of: influx-down, broker-restart, sigkill

- influx-down: InfluxDB stopped for --outage s (60) while --rate msg/s (5,000) are published; the
  ingest spools to disk and keeps acknowledging; its peak RSS is recorded; after InfluxDB returns
  the spool drains. Zero loss is checked by an exact count.
- broker-restart: Mosquitto stopped (SIGTERM, persistence saved) and started again mid-stream; the
  ingest's persistent session resumes. The publisher is the paho-based villagewatch.publish
  (it re-sends unacknowledged messages after reconnecting).
- sigkill: the ingest SIGKILLed mid-stream and restarted; duplicates land on the same points.
"""

from __future__ import annotations

import argparse
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
from simulator.loadgen import Fleet  # noqa: E402
from villagewatch.health import read_health  # noqa: E402
from villagewatch.publish import Publisher  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Ingest:
    def __init__(self, stack: LocalStack, work: Path):
        self.stack, self.work = stack, work
        self.port = free_port()
        self.peak_rss_mb = 0.0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, **self.stack.env(), "VW_HTTP_PORT": str(self.port), "VW_SITES": str(REPO / "sites")}
        log_file = open(self.work / "ingest.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", "--data-dir", str(self.work)],
                                     env=env, stdout=log_file, stderr=log_file)
        wait_until(lambda: self.health().get("subscribed", False), 30, "ingest healthy")

    def health(self) -> dict:
        return read_health(self.port) or {}

    def rss(self) -> float:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
            cur = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
            self.peak_rss_mb = max(self.peak_rss_mb, int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024)
            return cur
        except (OSError, AttributeError):
            return 0.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.rss()
            self.proc.terminate()
            self.proc.wait(30)


def count(stack: LocalStack) -> int:
    rows = stack.query_values("SELECT count(seq) FROM telemetry")
    return int(rows[0][1]) if rows else 0


def paced_publish(stack: LocalStack, msgs: list, rate: float, at_fraction: float, fault, ingest: Ingest) -> dict:
    """Publish msgs at `rate`; call fault() once `at_fraction` has been published; sample RSS."""
    samples: list[float] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            samples.append(ingest.rss())
            time.sleep(0.5)

    threading.Thread(target=sampler, daemon=True).start()
    t0 = time.perf_counter()
    with Publisher(stack.mqtt_url, max_inflight=2000) as pub:
        pub.client.reconnect_delay_set(0.1, 1)
        fault_done = False
        for i, (_, topic, payload) in enumerate(msgs):
            if not fault_done and i >= len(msgs) * at_fraction:
                fault_done = True
                fault()
            pub.publish(topic.decode(), payload)
            if i % 500 == 0:
                ahead = i / rate - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        pub.wait_acked(600)
    stop.set()
    return {"publish_seconds": time.perf_counter() - t0, "max_rss_mb_sampled": max(samples or [0])}


def scenario_influx_down(stack: LocalStack, ingest: Ingest, rate: float, outage: float) -> dict:
    fleet = Fleet(1000)
    total_s = outage + 40
    msgs = list(fleet.messages(int(rate * total_s / 1000)))
    state: dict = {}

    def fault() -> None:
        stack.stop_influx()
        state["down_at"] = time.monotonic()

        def later() -> None:
            time.sleep(outage)  # the outage itself
            stack.start_influx()
            state["up_at"] = time.monotonic()
        threading.Thread(target=later, daemon=True).start()

    info = paced_publish(stack, msgs, rate, 10 / total_s, fault, ingest)
    wait_until(lambda: "up_at" in state, outage + 120, "InfluxDB back")
    t_up = time.monotonic()
    wait_until(lambda: count(stack) >= len(msgs), 600, "every point written", interval=0.5)
    drain_s = time.monotonic() - t_up
    n = count(stack)
    return {"scenario": "influx-down", "rate": rate, "outage_s": outage, "messages": len(msgs),
            "count_in_influxdb": n, "lost": len(msgs) - n, "drain_after_recovery_s": round(drain_s, 1),
            "ingest_peak_rss_mb": round(max(ingest.peak_rss_mb, info["max_rss_mb_sampled"]), 1), **info}


def scenario_broker_restart(stack: LocalStack, ingest: Ingest, rate: float) -> dict:
    fleet = Fleet(1000)
    msgs = list(fleet.messages(int(rate * 40 / 1000)))

    def fault() -> None:
        stack.stop_broker()
        stack.start_broker()

    info = paced_publish(stack, msgs, rate, 0.5, fault, ingest)
    wait_until(lambda: count(stack) >= len(msgs), 300, "every point written", interval=0.5)
    n = count(stack)
    return {"scenario": "broker-restart", "rate": rate, "messages": len(msgs), "count_in_influxdb": n,
            "lost": len(msgs) - n, **info}


def scenario_sigkill(stack: LocalStack, ingest: Ingest, rate: float) -> dict:
    fleet = Fleet(1000)
    msgs = list(fleet.messages(int(rate * 40 / 1000)))

    def fault() -> None:
        ingest.proc.send_signal(signal.SIGKILL)
        ingest.proc.wait()
        ingest.start()

    info = paced_publish(stack, msgs, rate, 0.5, fault, ingest)
    wait_until(lambda: count(stack) >= len(msgs), 300, "every point written", interval=0.5)
    n = count(stack)
    return {"scenario": "sigkill", "rate": rate, "messages": len(msgs), "count_in_influxdb": n,
            "lost": len(msgs) - n, **info}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", default=["influx-down", "broker-restart", "sigkill"])
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--outage", type=float, default=60)
    args = p.parse_args()
    results = []
    for name in args.scenarios:
        work = Path(tempfile.mkdtemp(prefix=f"vw-fault-{name}-"))
        stack = LocalStack(work / "stack").start()
        ingest = Ingest(stack, work)
        try:
            ingest.start()
            log(f"{name} at {args.rate:,.0f} msg/s …")
            if name == "influx-down":
                r = scenario_influx_down(stack, ingest, args.rate, args.outage)
            elif name == "broker-restart":
                r = scenario_broker_restart(stack, ingest, args.rate)
            elif name == "sigkill":
                r = scenario_sigkill(stack, ingest, args.rate)
            else:
                raise SystemExit(f"unknown scenario {name!r}")
            log(json.dumps(r))
            results.append(r)
        finally:
            ingest.stop()
            stack.stop()
    for r in results:
        print(f"{r['scenario']:15} {r['messages']:>9,} messages at {r['rate']:,.0f} msg/s → "
              f"{r['count_in_influxdb']:,} points, lost {r['lost']}"
              + (f", drained {r['drain_after_recovery_s']} s after recovery, ingest peak RSS "
                 f"{r['ingest_peak_rss_mb']} MB" if r["scenario"] == "influx-down" else ""))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"ingest-faults-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
