"""The v2 write path, measured: villagewatch.influx (plain aiohttp) vs influxdb-client, on VictoriaMetrics.

    .venv/bin/python bench/influx_v2.py [--batches 60] [--lines 5000]

Why: docs/architecture.md chose plain aiohttp for `/api/v2/write` (one pooled session per process,
one error vocabulary). This checks that the choice costs nothing in speed. Both clients write the
same 5,000-line batches of telemetry, one batch at a time, to a fresh VictoriaMetrics (Debian
`victoria-metrics`, which accepts `/api/v2/write`) started on a free port in a temp folder.
influxdb-client runs its synchronous write API (its async API needs `aiocsv`, not a dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.stack import free_port, wait_until  # noqa: E402
from villagewatch.influx import InfluxClient, InfluxTarget  # noqa: E402


def batches(n: int, lines: int, offset: int) -> list[bytes]:
    t0 = 1_780_000_000_000 + offset
    return [("\n".join(f"telemetry,commune=xa,station=s{i % 500} ph={7 + (i % 10) / 10},seq={b * lines + i}i "
                       f"{t0 + (b * lines + i) * 10}" for i in range(lines))).encode() for b in range(n)]


async def ours(url: str, data: list[bytes]) -> float:
    target = InfluxTarget(url, "vw", token="t", org="o", bucket="vw", api="v2", timeout_s=60)
    async with InfluxClient(target) as client:
        start = time.perf_counter()
        for body in data:
            await client.write(body)
        return time.perf_counter() - start


def theirs(url: str, data: list[bytes]) -> float:
    from influxdb_client import InfluxDBClient, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS
    with InfluxDBClient(url=url, token="t", org="o", timeout=60_000) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        start = time.perf_counter()
        for body in data:
            api.write(bucket="vw", org="o", record=body.decode(), write_precision=WritePrecision.MS)
        return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60, help="batches per client per round")
    ap.add_argument("--lines", type=int, default=5000, help="lines per batch")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (the best of each is kept)")
    args = ap.parse_args()
    vm = shutil.which("victoria-metrics")
    if not vm:
        print("victoria-metrics is not installed (apt-get install victoria-metrics)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([vm, f"-storageDataPath={tmp}/data", f"-httpListenAddr=127.0.0.1:{port}",
                                 "-retentionPeriod=100y", "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/health", timeout=1).status == 200
            except OSError:
                return False
        try:
            wait_until(up, 30, "VictoriaMetrics")
            best = {"villagewatch.influx (aiohttp)": float("inf"), "influxdb-client (sync)": float("inf")}
            for r in range(args.rounds):
                data = batches(args.batches, args.lines, r * 10**9)
                best["villagewatch.influx (aiohttp)"] = min(best["villagewatch.influx (aiohttp)"],
                                                            asyncio.run(ours(url, data)))
                data = batches(args.batches, args.lines, r * 10**9 + 5 * 10**8)
                best["influxdb-client (sync)"] = min(best["influxdb-client (sync)"], theirs(url, data))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    n = args.batches * args.lines
    print(f"{n:,} lines per round, batches of {args.lines:,}, best of {args.rounds} rounds")
    for name, seconds in best.items():
        print(f"  {name:32s} {n / seconds:12,.0f} lines/s   ({seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
