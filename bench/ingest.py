"""Ingest benchmark (issue #4): end-to-end rate, baseline, ceilings, latency, memory — one run.

    .venv/bin/python bench/ingest.py                 # full run (≈ 4–5 minutes)
    .venv/bin/python bench/ingest.py --quick         # smoke run (≈ 1 minute, shorter phases)

Everything runs on this machine: a fresh Mosquitto + InfluxDB (app.stack), the load
generator (simulator.loadgen, its own MQTT 3.1.1 publisher), and `villagewatch ingest` as a
child process. Phases, each against its own database:
1. ceilings — the broker's delivery rate to a count-only QoS 1 subscriber, with the same publisher;
   InfluxDB's raw bulk write rate (5,000-point batches of the same points, 2 connections);
2. naive baseline — a paho callback writing each message to InfluxDB as it arrives;
3. sustained — publish for --seconds as fast as the ingest keeps up (the publisher waits when the
   ingest falls more than --backlog messages behind), then wait until every point is written;
   rate = messages / (first publish → last point written), count checked exactly in InfluxDB;
4. latency — paced at 25 % and 75 % of the sustained rate; a probe station publishes every 100 ms
   and a poller queries InfluxDB every 20 ms for the probe's latest seq (resolution ±20 ms);
5. the ingest's peak RSS (VmHWM) over the whole run.
Results print as a table and are saved as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.append(str(REPO / "bench"))  # after the repo: bench/edge.py must not shadow the edge package

from _mqtt import CountingSubscriber, NaiveIngest  # noqa: E402

from app.stack import LocalStack, free_port  # noqa: E402
from simulator.loadgen import Fleet, RawPublisher  # noqa: E402
from villagewatch import contract, lineproto  # noqa: E402
from villagewatch.config import MqttUrl  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def influx_count(session: aiohttp.ClientSession, url: str, db: str, where: str = "") -> int:
    async with session.get(f"{url}/query", params={"db": db, "q": f"SELECT count(seq) FROM telemetry {where}"}) as r:
        body = await r.json()
    series = body["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


async def influx_create(session: aiohttp.ClientSession, url: str, db: str) -> None:
    async with session.post(f"{url}/query", params={"q": f'CREATE DATABASE "{db}"'}) as r:
        await r.read()


# --------------------------------------------------------------------------- ceilings


async def broker_ceiling(stack: LocalStack, fleet: Fleet, n: int) -> float:
    sub = await CountingSubscriber.start(stack.mqtt_url, contract.TELEMETRY_SUBSCRIPTION)
    url = MqttUrl.parse(stack.mqtt_url)
    pubs = [await RawPublisher.connect(url, f"vw-bench-ceil-{i}", 2000) for i in range(4)]
    rounds = -(-n // fleet.stations)
    msgs = list(fleet.messages(rounds))[:n]
    t0 = time.perf_counter()
    for i in range(0, len(msgs), 800):
        chunk = msgs[i:i + 800]
        per = [[] for _ in pubs]
        for s, t, p in chunk:
            per[s % 4].append((t, p))
        await asyncio.gather(*(p.publish_many(items) for p, items in zip(pubs, per, strict=True) if items))
    while sub.count < n:
        await asyncio.sleep(0.005)
        if time.perf_counter() - t0 > 300:
            raise TimeoutError(f"count-only subscriber got {sub.count} of {n}")
    rate = n / (time.perf_counter() - t0)
    for p in pubs:
        p.close()
    sub.close()
    return rate


async def influx_ceiling(stack: LocalStack, fleet: Fleet, n: int, concurrency: int = 2) -> float:
    db = "ceiling"
    async with aiohttp.ClientSession() as s:
        await influx_create(s, stack.influx_url, db)
        rounds = -(-n // fleet.stations)
        lines = []
        for station, _topic, payload in fleet.messages(rounds):
            c, st = fleet.ids[station]
            d = contract.decode_telemetry(c, st, payload, int(time.time() * 1000))
            lines.append(lineproto.telemetry_line(d.reading))
            if len(lines) >= n:
                break
        bodies = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
        queue = list(bodies)
        url = f"{stack.influx_url}/write?db={db}&precision=ms"

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with s.post(url, data=body) as r:
                    assert r.status == 204, await r.text()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate = len(lines) / (time.perf_counter() - t0)
        assert await influx_count(s, stack.influx_url, db) == len(lines)
    return rate


# --------------------------------------------------------------------------- baseline


async def naive_baseline(stack: LocalStack, fleet: Fleet, seconds: float) -> float:
    db = "baseline"
    async with aiohttp.ClientSession() as s:
        await influx_create(s, stack.influx_url, db)
    naive = NaiveIngest(stack.mqtt_url, stack.influx_url, db)
    url = MqttUrl.parse(stack.mqtt_url)
    pub = await RawPublisher.connect(url, "vw-bench-naive-pub", 500)
    source = fleet.messages(10**6, first_seq=200_000)
    t0 = time.perf_counter()
    sent = 0
    while time.perf_counter() - t0 < seconds:
        if sent - naive.written < 2000:
            await pub.publish_many([(t, p) for _, t, p in (next(source) for _ in range(200))])
            sent += 200
        else:
            await asyncio.sleep(0.01)
    await pub.drain()
    deadline = time.monotonic() + 120
    while naive.written < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    naive.close()
    pub.close()
    async with aiohttp.ClientSession() as s:
        assert await influx_count(s, stack.influx_url, db) == sent, "baseline lost points"
    return sent / elapsed


# --------------------------------------------------------------------------- ours


class IngestChild:
    def __init__(self, stack: LocalStack, data_dir: Path, db: str, extra_args: list[str] | None = None):
        self.port = free_port()
        env = {**os.environ, **stack.env(), "VW_INFLUX_DB": db, "VW_HTTP_PORT": str(self.port),
               "VW_SITES": str(REPO / "sites")}
        self.log = open(data_dir / f"ingest-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", "--data-dir", str(data_dir),
                                      *(extra_args or [])], env=env, stdout=self.log, stderr=self.log)
        self.peak_rss_mb = 0.0

    async def metrics(self, s: aiohttp.ClientSession) -> dict[str, float]:
        async with s.get(f"http://127.0.0.1:{self.port}/metrics") as r:
            text = await r.text()
        out = {}
        for m in re.finditer(r"^(vw_ingest_\w+) ([0-9.e+]+)$", text, re.M):
            out[m.group(1)] = float(m.group(2))
        return out

    async def healthy(self, s: aiohttp.ClientSession) -> bool:
        try:
            async with s.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                return bool((await r.json()).get("subscribed"))
        except aiohttp.ClientError:
            return False

    def sample_rss(self) -> float:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
            self.peak_rss_mb = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
        except (OSError, AttributeError):
            pass
        return self.peak_rss_mb

    def stop(self) -> None:
        self.sample_rss()
        self.proc.terminate()
        self.proc.wait(30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sustained(stack: LocalStack, fleet: Fleet, workers: list[IngestChild], db: str, seconds: float,
                    backlog: int) -> dict:
    pids = {"ingest": [w.proc.pid for w in workers], "mosquitto": [stack.mosquitto.pid],
            "influxd": [stack.influxd.pid], "publisher (this process)": [os.getpid()]}
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    url = MqttUrl.parse(stack.mqtt_url)
    conns = 4
    pubs = [await RawPublisher.connect(url, f"vw-bench-pub-{i}", 2000) for i in range(conns)]
    source = fleet.messages(10**6)
    async with aiohttp.ClientSession() as s:
        written = 0.0

        async def watch() -> None:
            nonlocal written
            while True:
                total = 0.0
                for w in workers:
                    total += (await w.metrics(s)).get("vw_ingest_written_points_total", 0.0)
                    w.sample_rss()
                written = total
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        t0 = time.perf_counter()
        sent = 0
        last_log = t0
        while time.perf_counter() - t0 < seconds:
            if sent - written > backlog:
                await asyncio.sleep(0.005)
                continue
            per = [[] for _ in pubs]
            for _ in range(1000):
                station, topic, payload = next(source)
                per[station % conns].append((topic, payload))
            await asyncio.gather(*(p.publish_many(items) for p, items in zip(pubs, per, strict=True)))
            sent += 1000
            if time.perf_counter() - last_log > 10:
                last_log = time.perf_counter()
                log(f"  sustained: sent {sent:,}, written {int(written):,}, "
                    f"{written / (last_log - t0):,.0f} points/s so far")
        publish_s = time.perf_counter() - t0
        await asyncio.gather(*(p.drain() for p in pubs))
        while written < sent:
            await asyncio.sleep(0.01)
            if time.perf_counter() - t0 > seconds + 300:
                raise TimeoutError(f"only {written} of {sent} written")
        elapsed = time.perf_counter() - t0
        watcher.cancel()
        cpu = {k: round((sum(cpu_seconds(p) for p in v) - cpu0[k]) / elapsed * 100) for k, v in pids.items()}
        count = await influx_count(s, stack.influx_url, db)
    for p in pubs:
        p.close()
    return {"messages": sent, "seconds": elapsed, "publish_seconds": publish_s, "rate": sent / elapsed,
            "count_in_influxdb": count, "exact": count == sent, "cpu_percent_of_one_core": cpu}


async def latency(stack: LocalStack, fleet: Fleet, db: str, rate: float, seconds: float, first_seq: int) -> dict:
    url = MqttUrl.parse(stack.mqtt_url)
    conns = 4
    pubs = [await RawPublisher.connect(url, f"vw-bench-lat-{i}", 2000) for i in range(conns)]
    probe_topic = contract.telemetry_topic("xa-bench", "probe-latency").encode()
    sent_at: dict[int, float] = {}
    seen: dict[int, float] = {}
    source = fleet.messages(10**6, first_seq=first_seq)
    async with aiohttp.ClientSession() as s:
        async def poll() -> None:
            best = first_seq - 1
            while True:
                async with s.get(f"{stack.influx_url}/query", params={
                        "db": db, "q": "SELECT max(seq) FROM telemetry WHERE station = 'probe-latency'"}) as r:
                    body = await r.json()
                series = body["results"][0].get("series")
                if series:
                    top = int(series[0]["values"][0][1])
                    now = time.perf_counter()
                    for k in range(best + 1, top + 1):
                        seen.setdefault(k, now)
                    best = max(best, top)
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        t0 = time.perf_counter()
        sent = 0
        probe = 0
        next_probe = t0
        base_ts = int(time.time() * 1000) - 60_000
        while time.perf_counter() - t0 < seconds:
            now = time.perf_counter()
            if now >= next_probe:
                payload = json.dumps({"ts": base_ts + probe, "seq": first_seq + probe,
                                      "metrics": {"ph": 7.0}}).encode()
                sent_at[first_seq + probe] = time.perf_counter()
                await pubs[0].publish_many([(probe_topic, payload)])
                probe += 1
                next_probe += 0.1
            due = int((now - t0) * rate) - sent
            if due > 0:
                per = [[] for _ in pubs]
                for _ in range(min(due, 2000)):
                    station, topic, payload = next(source)
                    per[station % conns].append((topic, payload))
                await asyncio.gather(*(p.publish_many(items) for p, items in zip(pubs, per, strict=True) if items))
                sent += min(due, 2000)
            await asyncio.sleep(0.002)
        await asyncio.gather(*(p.drain() for p in pubs))
        deadline = time.perf_counter() + 60
        while any(k not in seen for k in sent_at) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        poller.cancel()
    for p in pubs:
        p.close()
    lat = np.array([seen[k] - sent_at[k] for k in sent_at if k in seen])
    return {"target_rate": rate, "achieved_rate": sent / seconds, "probes": len(sent_at), "probes_seen": len(lat),
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
            "max_s": float(lat.max())}


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vw-bench-ingest-"))
    stack = LocalStack(work / "stack").start()
    results: dict = {"stations": args.stations, "host": platform.node(), "cpus": os.cpu_count(),
                     "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        fleet = Fleet(args.stations)
        log("ceiling: broker delivery to a count-only subscriber …")
        results["broker_ceiling"] = await broker_ceiling(stack, fleet, args.ceiling_messages)
        log(f"  {results['broker_ceiling']:,.0f} msg/s")
        log("ceiling: InfluxDB raw bulk write …")
        results["influx_ceiling"] = await influx_ceiling(stack, fleet, args.ceiling_messages)
        log(f"  {results['influx_ceiling']:,.0f} points/s")
        log(f"baseline: naive paho callback → one /write per message ({args.baseline_seconds:g} s) …")
        results["baseline"] = await naive_baseline(stack, fleet, args.baseline_seconds)
        log(f"  {results['baseline']:,.0f} msg/s")

        db = "villagewatch"
        shared = ["--share-group", "bench"] if args.workers > 1 else []
        workers = [IngestChild(stack, work, db, shared + ["--client-id", f"ingest-{i}"]) for i in range(args.workers)]
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 30
            for w in workers:
                while not await w.healthy(s):
                    if time.monotonic() > deadline:
                        raise TimeoutError("ingest did not become healthy")
                    await asyncio.sleep(0.1)
        results["workers"] = args.workers
        log(f"sustained: {args.seconds:g} s, {args.stations:,} stations, {args.workers} ingest worker(s) …")
        results["sustained"] = await sustained(stack, fleet, workers, db, args.seconds, args.backlog)
        rate = results["sustained"]["rate"]
        log(f"  {rate:,.0f} msg/s end to end, exact count: {results['sustained']['exact']}")
        seq = 300_000
        for frac in (0.25, 0.75):
            log(f"latency at {frac:.0%} of sustained ({rate * frac:,.0f} msg/s, {args.latency_seconds:g} s) …")
            r = await latency(stack, fleet, db, rate * frac, args.latency_seconds, seq)
            seq += 100_000
            results[f"latency_{int(frac * 100)}"] = r
            log(f"  p50 {r['p50_s'] * 1000:.0f} ms, p99 {r['p99_s'] * 1000:.0f} ms")
        for w in workers:
            w.stop()
        results["ingest_peak_rss_mb"] = max(w.peak_rss_mb for w in workers)
    finally:
        stack.stop()
    lower = min(results["broker_ceiling"], results["influx_ceiling"])
    results["ratio_vs_baseline"] = results["sustained"]["rate"] / results["baseline"]
    results["fraction_of_lower_ceiling"] = results["sustained"]["rate"] / lower
    return results


def report(r: dict) -> str:
    s = r["sustained"]
    rows = [
        ("stations / ingest workers", f"{r['stations']:,} / {r.get('workers', 1)}", ""),
        ("sustained end-to-end (QoS 1, publish → written)", f"{s['rate']:,.0f} msg/s",
         f"{s['messages']:,} msgs in {s['seconds']:.1f} s; InfluxDB count {s['count_in_influxdb']:,} "
         f"({'exact' if s['exact'] else 'MISMATCH'})"),
        ("naive baseline (paho callback, /write per message)", f"{r['baseline']:,.0f} msg/s",
         f"ours ÷ baseline = {r['ratio_vs_baseline']:,.1f}×"),
        ("ceiling: broker → count-only subscriber", f"{r['broker_ceiling']:,.0f} msg/s", ""),
        ("ceiling: InfluxDB raw bulk write", f"{r['influx_ceiling']:,.0f} points/s", ""),
        ("ours ÷ lower ceiling", f"{r['fraction_of_lower_ceiling']:.0%}", "target ≥ 60 %"),
        ("CPU during the sustained run (% of one core)", "",
         ", ".join(f"{k} {v}" for k, v in s["cpu_percent_of_one_core"].items())),
    ]
    for k in ("latency_25", "latency_75"):
        lat = r[k]
        rows.append((f"latency at {k[-2:]} % load ({lat['achieved_rate']:,.0f} msg/s)",
                     f"p50 {lat['p50_s'] * 1000:,.0f} ms, p99 {lat['p99_s'] * 1000:,.0f} ms",
                     f"{lat['probes_seen']}/{lat['probes']} probes; target p99 ≤ 2 s at 75 %"))
    rows.append(("ingest peak RSS (per worker)", f"{r['ingest_peak_rss_mb']:.0f} MB", "target ≤ 250 MB"))
    w = max(len(a) for a, _, _ in rows)
    return "\n".join(f"{a:<{w}}  {b:>28}  {c}" for a, b, c in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--baseline-seconds", type=float, default=20)
    p.add_argument("--latency-seconds", type=float, default=30)
    p.add_argument("--ceiling-messages", type=int, default=600_000)
    p.add_argument("--backlog", type=int, default=50_000, help="max messages the publisher runs ahead of the ingest")
    p.add_argument("--workers", type=int, default=1, help="ingest workers sharing the load (MQTT v5 shared subscription)")
    p.add_argument("--quick", action="store_true", help="short phases (smoke run, not for docs)")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.baseline_seconds, args.latency_seconds, args.ceiling_messages = 15, 5, 8, 150_000
    results = asyncio.run(run(args))
    print(report(results))
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nsaved {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
