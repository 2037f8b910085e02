"""Portal benchmark (issue 15): `/api/v1/stations` for 1,000 stations and 100 concurrent SSE clients.

    .venv/bin/python bench/portal.py            # ≈ 1–2 minutes
    .venv/bin/python bench/portal.py --quick    # fewer requests and readings

Everything runs on this machine: a fresh Mosquitto + InfluxDB (app.stack) and
`villagewatch portal` as a child process reading generated site files: 10 communes × 100
tap-water stations (4 metrics each) = 1,000 stations, all public. InfluxDB holds one hour of
readings per station (every 5 min, 12,000 points × 4 fields).

1. `/api/v1/stations` (all 1,000 stations: latest value of every metric, today's extremes, state
   and sentence): cold requests (each after the 2 s window in which the portal shares one read),
   back-to-back requests, then 10 concurrent clients; p50/p95/max latency.
2. 100 SSE clients on `/api/v1/stream` (aiohttp, one connection each); readings are published to the
   broker at 20/s with their publish time inside; latency = publish → event read by the client, over
   every (reading, client) pair; every client must receive every reading.
3. The portal's RSS (VmRSS) idle, after phase 1, with 100 clients connected, and its peak (VmHWM).
Results print as a table and are saved as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.stack import LocalStack, free_port, port_open, wait_until  # noqa: E402
from villagewatch import contract  # noqa: E402

COMMUNES = 10
PER_COMMUNE = 100
METRICS = ("chlorine", "turbidity", "ph", "temp")


def write_sites(folder: Path) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for c in range(COMMUNES):
        commune = f"xa-{c:02d}"
        lines = [f"commune: {commune}", f'name_vi: "Xã thử {c}"', "gateways:",
                 f'  - {{id: gw-{c}, name_vi: "Cổng {c}"}}', "stations:"]
        for s in range(PER_COMMUNE):
            station = f"tram-{s:03d}"
            ids.append((commune, station))
            lines.append(f'  - {{id: {station}, kind: water_supply, name_vi: "Trạm {c}-{s}", '
                         f"lat: {10 + c * 0.01 + s * 0.0001:.4f}, lon: {105 + s * 0.0001:.4f}, gateway: gw-{c}, "
                         f"interval_s: 300, metrics: [{', '.join(METRICS)}]}}")
        (folder / f"{commune}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def seed_influx(stack: LocalStack, ids: list[tuple[str, str]]) -> int:
    import urllib.request
    now = int(time.time() * 1000)
    lines = []
    for i, (commune, station) in enumerate(ids):
        for k in range(12):
            lines.append(f"telemetry,commune={commune},kind=water_supply,station={station} "
                         f"chlorine={0.3 + (i % 7) / 20},turbidity={0.5 + k / 10},ph=7.1,temp=28.5,seq={k}i "
                         f"{now - (12 - k) * 300_000}")
    for start in range(0, len(lines), 5000):
        req = urllib.request.Request(f"{stack.influx_url}/write?db={stack.influx_db}&precision=ms",
                                     data="\n".join(lines[start:start + 5000]).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 204
    return len(lines)


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def pct(values: list[float]) -> dict[str, float]:
    a = np.array(values)
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1), "max_ms": round(float(a.max()), 1)}


async def stations_phase(base: str, sequential: int, concurrent_clients: int, per_client: int) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/v1/stations") as r:  # warm-up, and a sanity check
            body = await r.json()
            assert r.status == 200 and len(body) == COMMUNES * PER_COMMUNE, (r.status, len(body))
            assert all(x["latest"].get("chlorine") for x in body), "latest values missing"
        cold = []  # each after the portal's 2 s sharing window: a full database read and judgement
        for _ in range(5):
            await asyncio.sleep(2.2)
            t = time.perf_counter()
            async with s.get(f"{base}/api/v1/stations") as r:
                await r.read()
            cold.append((time.perf_counter() - t) * 1000)
        seq = []
        for _ in range(sequential):
            t = time.perf_counter()
            async with s.get(f"{base}/api/v1/stations") as r:
                await r.read()
            seq.append((time.perf_counter() - t) * 1000)

        async def client() -> list[float]:
            out = []
            for _ in range(per_client):
                t = time.perf_counter()
                async with s.get(f"{base}/api/v1/stations") as r:
                    await r.read()
                out.append((time.perf_counter() - t) * 1000)
            return out
        conc = [x for xs in await asyncio.gather(*(client() for _ in range(concurrent_clients))) for x in xs]
    return {"cold": pct(cold), "sequential": pct(seq), f"concurrent_{concurrent_clients}": pct(conc), "bytes": len(json.dumps(body))}


async def sse_phase(base: str, mqtt_port: int, clients: int, readings: int, rate: float, pid: int) -> dict:
    latencies: list[float] = []
    received = [0] * clients
    connected = asyncio.Event()
    opened = 0

    async def listen(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal opened
        async with session.get(f"{base}/api/v1/stream?commune=xa-00", timeout=aiohttp.ClientTimeout(total=None)) as r:
            await r.content.readline()
            opened += 1
            if opened == clients:
                connected.set()
            while received[i] < readings:
                line = await r.content.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    sent = json.loads(line[6:])["ts"]  # the reading's time is its publish time
                    latencies.append(time.time() * 1000 - sent)
                    received[i] += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(listen(i, session)) for i in range(clients)]
        await asyncio.wait_for(connected.wait(), 60)
        mem_connected = rss_kb(pid)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", mqtt_port)
        pub.loop_start()
        try:
            for k in range(readings):
                now = time.time() * 1000
                pub.publish(contract.telemetry_topic("xa-00", f"tram-{k % PER_COMMUNE:03d}"),
                            json.dumps({"ts": int(now), "seq": k, "metrics": {"temp": 28.0}}), qos=0)
                await asyncio.sleep(1 / rate)  # pacing the load generator, not synchronising a test
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            pub.loop_stop()
            pub.disconnect()
    return {"clients": clients, "readings": readings, "rate_per_s": rate,
            "all_delivered": all(n == readings for n in received), **pct(latencies),
            "rss_connected_kb": mem_connected["VmRSS"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests and readings")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vw-bench-portal-"))
    stack = LocalStack(tmp / "stack")
    stack.start()
    proc = None
    try:
        ids = write_sites(tmp / "sites")
        points = seed_influx(stack, ids)
        port = free_port()
        env = {**os.environ, **stack.env(), "VW_SITES": str(tmp / "sites"), "VW_DATA_DIR": str(tmp / "var"),
               "VW_PORTAL_PORT": str(port), "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "portal"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(port), 60, "portal listening")
        base = f"http://127.0.0.1:{port}"
        idle = rss_kb(proc.pid)
        n = 10 if args.quick else 40
        stations = asyncio.run(stations_phase(base, n, 10, 2 if args.quick else 5))
        after_api = rss_kb(proc.pid)
        sse = asyncio.run(sse_phase(base, stack.mosquitto.port, 100, 100 if args.quick else 400, 20, proc.pid))
        peak = rss_kb(proc.pid)
        result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
                  "cpus": os.cpu_count(), "stations": len(ids), "influx_points": points,
                  "api_stations": stations, "sse": sse,
                  "rss_kb": {"idle": idle["VmRSS"], "after_api": after_api["VmRSS"],
                             "sse_connected": sse["rss_connected_kb"], "peak": peak["VmHWM"]}}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        stack.stop()
    out = REPO / "bench" / "results" / f"portal-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
