"""villagewatch's ingest against the flow a pilot would build instead (issue 11 §4) — one run.

    .venv/bin/python bench/peers.py --quick          # ≈ 3 minutes, 10,000 messages per scenario
    .venv/bin/python bench/peers.py                  # 100,000 messages per scenario (≈ 10 minutes)
    .venv/bin/python bench/peers.py --messages 50000 --rate 2000 --scenarios sigkill cpu

The peer is Node-RED 4 with the flow of bench/peers/flows.json: ``mqtt in`` (QoS 1, clean session
off, fixed client id) → ``function`` (parse JSON, build the point) → ``join`` (batches of 500 or 1 s)
→ ``influxdb batch`` (node-red-contrib-influxdb, InfluxDB 1.x /write). Install it once with
``npm ci --prefix bench/peers`` (node_modules is git-ignored; this script says so when it is missing).

Each (scenario, consumer) pair gets a fresh local stack (app.stack.LocalStack: real
Mosquitto + InfluxDB 1.6.7 on free ports in a temp folder), so counts are exact: ``landed`` is the
number of distinct points (``count(seq)``), ``duplicates`` is InfluxDB's own ``pointsWrittenOK``
minus distinct points (a redelivered reading overwrites its point, so it is counted here, not there).
Readiness of a consumer is measured, not assumed: a probe reading (its own commune, excluded from
the counts) is published and must land in InfluxDB.

Scenarios
1. backlog — the consumer runs once (its persistent session exists), is stopped with SIGTERM as a
   service manager would, N readings are published at QoS 1 (the broker acknowledges every one),
   then the consumer starts: how many land, how long from start until the last one. Node-RED is run
   twice: with the broker node's defaults ("Automatically unsubscribe when disconnecting" on) and
   with that box unticked (autoUnsubscribe false), which a pilot has to know to do.
2. sigkill — N readings published at --rate; halfway the consumer is SIGKILLed and restarted at once
   (as systemd's Restart=always would): how many of the N land, how many were written twice.
3. cpu — N readings at --rate to a running consumer: its process CPU time (user + system, from
   /proc) per reading written; Mosquitto's and InfluxDB's CPU per reading alongside.

Every wait has a deadline (--settle seconds without progress, or --max-wait), so a consumer that
loses readings ends its scenario instead of hanging it. Results print as a table and are saved as
JSON under bench/results/peers-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.stack import LocalStack, free_port, stop_pid  # noqa: E402
from simulator.loadgen import Fleet, run_load  # noqa: E402
from villagewatch import contract  # noqa: E402
from villagewatch.health import read_health  # noqa: E402

PEERS_DIR = REPO / "bench" / "peers"
RED_JS = PEERS_DIR / "node_modules" / "node-red" / "red.js"
PROBE_COMMUNE = "xa-probe"
COUNT_WHERE = f"WHERE commune != '{PROBE_COMMUNE}'"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    try:
        m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
        return int(m.group(1)) / 1024 if m else 0.0
    except OSError:
        return 0.0


# --------------------------------------------------------------------------- consumers


class Consumer:
    """A consumer as a child process in its own session, stopped or killed by PID."""

    label = "?"

    def __init__(self, stack: LocalStack, work: Path):
        self.stack, self.work = stack, work
        self.proc: subprocess.Popen | None = None
        self.peak_rss_mb = 0.0
        self.starts = 0

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        argv, env = self.argv_env()
        self.starts += 1
        with open(self.work / f"{self.label}.log", "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.work)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample(self) -> None:
        if self.alive():
            self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb(self.pid))

    def stop(self) -> None:
        """SIGTERM, as a service manager stops a service (graceful: each side runs its shutdown)."""
        if self.alive():
            self.sample()
            stop_pid(self.pid, timeout=30)
            self.proc.wait(5)

    def kill(self) -> None:
        if self.alive():
            self.sample()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, n: int = 20) -> str:
        p = self.work / f"{self.label}.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else "(no log)"


class VillagewatchIngest(Consumer):
    """``villagewatch ingest`` as tests/conftest.py IngestProcess runs it (persistent session, fixed id)."""

    label = "villagewatch"

    def __init__(self, stack: LocalStack, work: Path):
        super().__init__(stack, work)
        self.http_port = free_port()
        (work / "vw-data").mkdir(exist_ok=True)

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, **self.stack.env(), "VW_HTTP_PORT": str(self.http_port),
               "VW_SITES": str(REPO / "sites")}
        return [sys.executable, "-m", "app.cli", "ingest", "--data-dir", str(self.work / "vw-data")], env

    def subscribed(self) -> bool:
        return bool((read_health(self.http_port) or {}).get("subscribed"))


class NodeRed(Consumer):
    """Node-RED 4 running bench/peers/flows.json with its userDir in the scenario's temp folder."""

    def __init__(self, stack: LocalStack, work: Path, auto_unsubscribe: bool = True):
        super().__init__(stack, work)
        self.auto_unsubscribe = auto_unsubscribe
        self.label = "node-red" if auto_unsubscribe else "node-red-no-autounsub"
        self.user_dir = work / "node-red-userdir"
        self.user_dir.mkdir(exist_ok=True)
        values = {"__MQTT_PORT__": str(stack.mosquitto.port), "__CLIENT_ID__": "nodered-telemetry",
                  "__AUTO_UNSUBSCRIBE__": auto_unsubscribe, "__INFLUX_PORT__": str(stack.influxd.port),
                  "__INFLUX_DB__": stack.influx_db, "__BATCH_SIZE__": "500", "__BATCH_TIMEOUT_S__": "1"}
        flows = _fill(json.loads((PEERS_DIR / "flows.json").read_text()), values)
        (self.user_dir / "flows.json").write_text(json.dumps(flows, indent=1))

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        node = shutil.which("node") or "node"
        return [node, str(RED_JS), "--userDir", str(self.user_dir), "--settings", str(PEERS_DIR / "settings.js")], \
            dict(os.environ)


def _fill(obj, values: dict):
    if isinstance(obj, dict):
        return {k: _fill(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, values) for v in obj]
    if isinstance(obj, str) and obj in values:
        return values[obj]
    return obj


def make_consumer(kind: str, stack: LocalStack, work: Path) -> Consumer:
    if kind == "villagewatch":
        return VillagewatchIngest(stack, work)
    if kind == "node-red":
        return NodeRed(stack, work, auto_unsubscribe=True)
    if kind == "node-red-no-autounsub":
        return NodeRed(stack, work, auto_unsubscribe=False)
    raise ValueError(kind)


# --------------------------------------------------------------------------- measuring


class Probe:
    """Readings from a probe station (excluded from the counts): has the consumer really subscribed?"""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.seq = 0
        self.topic = contract.telemetry_topic(PROBE_COMMUNE, "probe").encode()

    def message(self) -> tuple[int, bytes, bytes]:
        self.seq += 1
        # timestamped now: a reading far in the future is rightly refused by villagewatch's contract
        body = {"ts": int(time.time() * 1000), "seq": self.seq, "metrics": self.fleet.pools["pond"][0]}
        return 0, self.topic, json.dumps(body).encode()


def landed(stack: LocalStack, probe: bool = False) -> int:
    where = f"WHERE commune = '{PROBE_COMMUNE}'" if probe else COUNT_WHERE
    rows = stack.query_values(f"SELECT count(seq) FROM telemetry {where}")
    return int(rows[0][1]) if rows else 0


def lost_positions(stack: LocalStack, fleet: Fleet, first_seq: int, published: int) -> list[list[int]]:
    """Publish positions (0-based) of the readings that did not land, as [first, last] runs.

    The fleet publishes round by round in station order, so reading (station i, seq first_seq + r)
    was the (r * stations + i)-th published: a run of positions says *which* readings were lost.
    """
    index = {station: i for i, (_, station) in enumerate(fleet.ids)}
    seen = bytearray(published)
    for _, seq, station in stack.query_values(f"SELECT seq, station FROM telemetry {COUNT_WHERE}"):
        pos = (int(seq) - first_seq) * fleet.stations + index[station]
        if 0 <= pos < published:
            seen[pos] = 1
    runs: list[list[int]] = []
    for pos in range(published):
        if not seen[pos]:
            if runs and runs[-1][1] == pos - 1:
                runs[-1][1] = pos
            else:
                runs.append([pos, pos])
    return runs


def split_lost(runs: list[list[int]], at: int) -> tuple[int, int]:
    """(lost before publish position ``at``, lost from ``at`` on)."""
    before = sum(max(0, min(b, at - 1) - a + 1) for a, b in runs)
    return before, sum(b - a + 1 for a, b in runs) - before


def points_written_ok(stack: LocalStack) -> int:
    """InfluxDB's own count of points accepted over HTTP since it started (duplicates included)."""
    body = stack.influx_query("SHOW STATS")
    for s in body["results"][0].get("series", []):
        if s["name"] == "httpd":
            row = dict(zip(s["columns"], s["values"][0], strict=True))
            return int(row.get("pointsWrittenOK", 0))
    return 0


def telemetry_points_total(stack: LocalStack) -> int:
    """Distinct points of every measurement (the ingest also writes its own status points)."""
    total = 0
    for (name,) in stack.query_values("SHOW MEASUREMENTS"):
        rows = stack.query_values(f'SELECT count(*) FROM "{name}"')
        if rows:
            total += max(int(v) for v in rows[0][1:] if v is not None)
    return total


async def wait_ready(stack: LocalStack, consumer: Consumer, probe: Probe, timeout: float = 60) -> float:
    """Publish probe readings until one lands; seconds from now until it did."""
    t0 = time.monotonic()
    before = landed(stack, probe=True)
    while time.monotonic() - t0 < timeout:
        if not consumer.alive():
            raise RuntimeError(f"{consumer.label} exited during start-up:\n{consumer.log_tail()}")
        await run_load(stack.mqtt_url, probe.fleet, 0, messages=[probe.message()], connections=1)
        for _ in range(10):
            await asyncio.sleep(0.2)
            if landed(stack, probe=True) > before:
                return time.monotonic() - t0
    raise TimeoutError(f"{consumer.label}: no probe reading landed within {timeout:.0f} s:\n{consumer.log_tail()}")


async def wait_landed(stack: LocalStack, consumer: Consumer, expected: int, settle: float, max_wait: float) -> tuple[int, float]:
    """Poll until ``expected`` landed, or nothing new for ``settle`` s, or ``max_wait`` s; (count, seconds)."""
    t0 = time.monotonic()
    last, last_change = -1, t0
    t_done = t0
    while True:
        consumer.sample()
        n = landed(stack)
        now = time.monotonic()
        if n != last:
            last, last_change, t_done = n, now, now
        if n >= expected or now - last_change > settle or now - t0 > max_wait:
            return n, t_done - t0
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- scenarios


async def scenario_backlog(stack: LocalStack, consumer: Consumer, fleet: Fleet, probe: Probe, args) -> dict:
    consumer.start()
    await wait_ready(stack, consumer, probe)
    consumer.stop()
    msgs = list(fleet.messages(args.messages // fleet.stations))
    t0 = time.monotonic()
    pub = await run_load(stack.mqtt_url, fleet, 0, messages=msgs)
    publish_s = time.monotonic() - t0
    consumer.start()
    n, took = await wait_landed(stack, consumer, len(msgs), args.settle, args.max_wait)
    elapsed = took  # wait_landed starts right after the consumer: start → last new point
    runs = lost_positions(stack, fleet, 0, len(msgs))
    return {"published": len(msgs), "acked_by_broker": pub.sent, "publish_s": round(publish_s, 2),
            "landed": n, "lost": len(msgs) - n, "start_to_last_point_s": round(elapsed, 2),
            "drain_rate_per_s": round(n / elapsed) if elapsed and n else 0,
            "lost_positions_in_queue": runs[:20]}


async def scenario_sigkill(stack: LocalStack, consumer: Consumer, fleet: Fleet, probe: Probe, args) -> dict:
    consumer.start()
    await wait_ready(stack, consumer, probe)
    msgs = list(fleet.messages(args.messages // fleet.stations, first_seq=1000))
    loop = asyncio.get_running_loop()
    flood_s = len(msgs) / args.rate
    killed: dict = {}
    sent = [0]

    async def kill_halfway() -> None:
        await asyncio.sleep(flood_s / 2)
        killed["landed_before_kill"] = landed(stack)
        consumer.kill()
        killed["killed_at_s"] = round(time.monotonic() - t0, 2)
        killed["published_before_kill"] = sent[0]
        await loop.run_in_executor(None, consumer.start)  # restarted at once, like Restart=always

    t0 = time.monotonic()
    killer = asyncio.create_task(kill_halfway())
    pub = await run_load(stack.mqtt_url, fleet, 0, rate=args.rate, messages=msgs,
                         progress=lambda n: sent.__setitem__(0, n))
    await killer
    n, took = await wait_landed(stack, consumer, len(msgs), args.settle, args.max_wait)
    await asyncio.sleep(1.5)  # the last points' write statistics
    dups = points_written_ok(stack) - telemetry_points_total(stack)
    # published before the kill: acknowledged by the consumer before it died, or still queued for it
    runs = lost_positions(stack, fleet, 1000, len(msgs))
    before, after = split_lost(runs, killed["published_before_kill"])
    return {"published": len(msgs), "acked_by_broker": pub.sent, "rate": args.rate, **killed,
            "landed": n, "lost": len(msgs) - n, "duplicates_written": dups,
            "lost_published_before_kill": before, "lost_published_after_kill": after,
            "lost_positions": runs[:20],
            "after_publish_to_last_point_s": round(took, 2)}


async def scenario_cpu(stack: LocalStack, consumer: Consumer, fleet: Fleet, probe: Probe, args) -> dict:
    consumer.start()
    await wait_ready(stack, consumer, probe)
    await asyncio.sleep(1.0)  # start-up work (imports, flow deploy) is not per-message cost
    pids = {"consumer": consumer.pid, "mosquitto": stack.mosquitto.pid, "influxd": stack.influxd.pid}
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    msgs = list(fleet.messages(args.messages // fleet.stations, first_seq=2000))
    t0 = time.monotonic()
    await run_load(stack.mqtt_url, fleet, 0, rate=args.rate, messages=msgs)
    n, _ = await wait_landed(stack, consumer, len(msgs), args.settle, args.max_wait)
    elapsed = time.monotonic() - t0
    cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
    consumer.sample()
    return {"published": len(msgs), "rate": args.rate, "landed": n, "lost": len(msgs) - n,
            "seconds": round(elapsed, 2),
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "cpu_us_per_message": {k: round(v / max(n, 1) * 1e6, 1) for k, v in cpu.items()},
            "consumer_percent_of_one_core": round(cpu["consumer"] / elapsed * 100, 1)}


SCENARIOS = {"backlog": scenario_backlog, "sigkill": scenario_sigkill, "cpu": scenario_cpu}
CONSUMERS = {"backlog": ["villagewatch", "node-red", "node-red-no-autounsub"],
             "sigkill": ["villagewatch", "node-red"], "cpu": ["villagewatch", "node-red"]}


async def run_one(scenario: str, kind: str, fleet: Fleet, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"vw-peers-{scenario}-{kind}-"))
    stack = LocalStack(work / "stack").start()
    consumer = make_consumer(kind, stack, work)
    try:
        r = await SCENARIOS[scenario](stack, consumer, fleet, Probe(fleet), args)
        consumer.sample()
        r["consumer_peak_rss_mb"] = round(consumer.peak_rss_mb, 1)
        return {"scenario": scenario, "consumer": kind, **r}
    except Exception as exc:  # one broken pair must not lose the others' results
        log(f"  {scenario}/{kind} failed: {exc}")
        return {"scenario": scenario, "consumer": kind, "error": str(exc)[:2000]}
    finally:
        consumer.stop()
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def ratios(results: list[dict]) -> dict:
    by = {(r["scenario"], r["consumer"]): r for r in results if "error" not in r}
    out: dict = {}
    for scen in ("backlog", "sigkill"):
        vw = by.get((scen, "villagewatch"))
        for kind in ("node-red", "node-red-no-autounsub"):
            nr = by.get((scen, kind))
            if vw and nr:
                out[f"{scen}: landed villagewatch / {kind}"] = (
                    round(vw["landed"] / nr["landed"], 2) if nr["landed"] else "inf (peer landed 0)")
    vw, nr = by.get(("cpu", "villagewatch")), by.get(("cpu", "node-red"))
    if vw and nr:
        a, b = vw["cpu_us_per_message"]["consumer"], nr["cpu_us_per_message"]["consumer"]
        out["cpu: node-red µs per message / villagewatch µs per message"] = round(b / a, 2) if a else None
    return out


def table(results: list[dict]) -> str:
    lines = []
    for r in results:
        head = f"{r['scenario']:8} {r['consumer']:22}"
        if "error" in r:
            lines.append(f"{head} ERROR {r['error'].splitlines()[0]}")
        elif r["scenario"] == "backlog":
            lines.append(f"{head} published {r['published']:>8,}  landed {r['landed']:>8,}  lost {r['lost']:>8,}"
                         f"  start→last point {r['start_to_last_point_s']:>6} s  peak RSS {r['consumer_peak_rss_mb']} MB")
        elif r["scenario"] == "sigkill":
            lines.append(f"{head} published {r['published']:>8,}  landed {r['landed']:>8,}  lost {r['lost']:>8,}"
                         f"  written twice {r['duplicates_written']:>6,}")
        else:
            lines.append(f"{head} landed {r['landed']:>8,} at {r['rate']:,.0f}/s  consumer "
                         f"{r['cpu_us_per_message']['consumer']:>6} µs CPU/msg ({r['consumer_percent_of_one_core']} % of a core)"
                         f"  mosquitto {r['cpu_us_per_message']['mosquitto']} µs, influxd {r['cpu_us_per_message']['influxd']} µs"
                         f"  peak RSS {r['consumer_peak_rss_mb']} MB")
    return "\n".join(lines)


async def run(args) -> dict:
    fleet = Fleet(args.stations)
    results = []
    t0 = time.monotonic()
    for scenario in args.scenarios:
        for kind in CONSUMERS[scenario]:
            log(f"{scenario} / {kind} …")
            r = await run_one(scenario, kind, fleet, args)
            log(f"  {json.dumps(r)}")
            results.append(r)
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
            "node_red": json.loads((RED_JS.parent / "package.json").read_text())["version"],
            "node_red_contrib_influxdb": json.loads((PEERS_DIR / "node_modules" / "node-red-contrib-influxdb"
                                                     / "package.json").read_text())["version"],
            "load_average_at_end": os.getloadavg(), "args": vars(args),
            "seconds": round(time.monotonic() - t0, 1), "results": results, "ratios": ratios(results)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,000 messages at 1,000/s (≈ 3 minutes)")
    p.add_argument("--messages", type=int, help="readings per scenario (100,000; --quick 10,000)")
    p.add_argument("--rate", type=float, help="publish rate of the sigkill and cpu floods, msg/s (2,000; --quick 1,000)")
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--settle", type=float, default=10.0, help="give up waiting after this long without a new point (10 s)")
    p.add_argument("--max-wait", type=float, default=300.0, help="hard cap on any wait for points (300 s)")
    p.add_argument("--keep", action="store_true", help="keep the temp folders (logs) of each pair")
    args = p.parse_args()
    args.messages = args.messages or (10_000 if args.quick else 100_000)
    args.rate = args.rate or (1_000.0 if args.quick else 2_000.0)
    if args.messages < args.stations:
        p.error("--messages must be at least --stations (one reading per station per round)")
    if not RED_JS.exists():
        print(f"Node-RED is not installed in {PEERS_DIR}: run  npm ci --prefix bench/peers", file=sys.stderr)
        return 2
    out = asyncio.run(run(args))
    print(table(out["results"]))
    for k, v in out["ratios"].items():
        print(f"{k}: {v}")
    d = REPO / "bench" / "results"
    d.mkdir(exist_ok=True)
    path = d / f"peers-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(f"results: {path.relative_to(REPO)}")
    return 0 if all("error" not in r for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
