"""``villagewatch demo``: the pilot smart village on one machine.

Starts the local stack (Mosquitto + InfluxDB), backfills recent history from the simulator, runs
the ingest, one edge gateway per gateway of the site (simulated sensors, sped up), the commune
portal (map, live stations, feedback), the alert service and the inspector page, then prints where
to look — the portal first — and live counts. Ctrl-C stops everything, children first, and leaves
no process behind; a child that stops by itself is reported with the tail of its log, never as a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.stack import LocalStack, free_port, port_open, stop_pid, wait_until
from villagewatch.errors import UserError, env_value
from villagewatch.health import read_health
from villagewatch.sites import DEFAULT_SITES_DIR, load_site

DEFAULT_SITE = DEFAULT_SITES_DIR / "tan-thuan-dong.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="chạy thử làng thông minh / run the pilot-village demo (portal, gateways, ingest, alerts)",
        description="Chạy thử làng thông minh thí điểm trên một máy.\n"
                    "Runs Mosquitto + InfluxDB, simulated gateways of the pilot commune, the ingest (and the "
                    "alerts service when installed); prints URLs, a query and live counts. Ctrl-C stops all.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", default=str(DEFAULT_SITE), help="site file (default: the Đồng Tháp pilot commune)")
    p.add_argument("--data-dir", default="var/demo", help="folder for all demo state (default var/demo)")
    p.add_argument("--speed", type=float, default=30.0,
                   help="simulated stations report this many times faster than their interval (30)")
    p.add_argument("--backfill-hours", type=float, default=24.0,
                   help="hours of simulated history written before going live (24; 0 = none)")
    p.add_argument("--duration", type=float, default=env_value("VW_DEMO_DURATION", float, 0.0),
                   help="stop by itself after this many seconds (0 = run until Ctrl-C; env VW_DEMO_DURATION)")
    p.add_argument("--http-port", type=int, default=env_value("VW_HTTP_PORT", int, 8480),
                   help="ingest /healthz and /metrics port (8480, env VW_HTTP_PORT; 0 = free ports for all pages)")
    p.add_argument("--portal-port", type=int, default=env_value("VW_PORTAL_PORT", int, 8482),
                   help="commune portal port (8482, env VW_PORTAL_PORT; with --http-port 0 a free port)")
    p.add_argument("--no-alerts", action="store_true", help="do not start the alerts service")
    p.set_defaults(func=run)


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.data_dir = Path(args.data_dir).resolve()
        self.site = load_site(args.site)
        self.stack = LocalStack(self.data_dir / "stack")
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.http_port = args.http_port if args.http_port else free_port()
        self.alerts_url: str | None = None
        self.portal_url = ""
        self.stopping = False  # set on Ctrl-C / SIGTERM: children exiting then are expected
        self.alerts_port = 0
        self.demo_password = ""

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.stack.env(), "VW_SITES": str(Path(self.args.site).resolve().parent),
                "VW_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", *argv], env=env or self.env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.children.append((name, proc))
        return proc

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        say(f"▶ Khởi động Mosquitto + InfluxDB / starting the stack in {self.data_dir}/stack …")
        self.stack.start()
        if self.args.backfill_hours > 0:
            from edge.sources.simulated.model import Faults, backfill
            now = int(time.time() * 1000)
            start = now - int(self.args.backfill_hours * 3_600_000)
            n = backfill(self.site, start, now - 60_000, self.stack.influx_url, self.stack.influx_db,
                         faults=Faults())
            say(f"▶ Đã ghi {n:,} điểm dữ liệu lịch sử mô phỏng / backfilled {n:,} simulated points "
                f"({self.args.backfill_hours:g} h)")
        ingest_env = {**self.env(), "VW_HTTP_PORT": str(self.http_port)}
        self.spawn("ingest", ["ingest", "--data-dir", str(self.data_dir)], ingest_env)
        wait_until(self._ingest_ready, 30, "the ingest to connect to the broker")
        for gw in self.site.gateways:
            self.spawn(f"edge-{gw}", ["edge", "--site", self.args.site, "--gateway", gw,
                                      "--data-dir", str(self.data_dir / "edge" / gw),
                                      "--speed", str(self.args.speed), "--status-interval", "5"])
        portal_port = free_port() if self.args.http_port == 0 else self.args.portal_port
        self.spawn("portal", ["portal", "--port", str(portal_port)])
        self.portal_url = f"http://127.0.0.1:{portal_port}/"
        wait_until(lambda: self._listening(portal_port), 30, "the portal to listen")
        if not self.args.no_alerts and importlib.util.find_spec("alerts.service") is not None:
            cfg = self.write_alerts_config()
            self.spawn("alerts", ["alerts", "--alerts-config", str(cfg)],
                       {**self.env(), "VW_ALERTS_SECRET": secrets.token_hex(16)})
            self.alerts_url = f"http://127.0.0.1:{self.alerts_port}"

    def write_alerts_config(self) -> Path:
        """Inspector page with one demo account (all communes); the password is printed in the banner."""
        from alerts.settings import hash_password
        self.alerts_port = free_port() if self.args.http_port == 0 else 8481
        self.demo_password = secrets.token_urlsafe(8)
        cfg = self.data_dir / "alerts.yaml"
        cfg.write_text(
            f"public_url: http://127.0.0.1:{self.alerts_port}\n"
            f"http_port: {self.alerts_port}\n"
            f"state_db: {self.data_dir / 'alerts.sqlite'}\n"
            "users:\n"
            "  - username: thanhtra\n"
            '    name: "Thanh tra môi trường (demo)"\n'
            f"    password_hash: '{hash_password(self.demo_password)}'\n"
            '    communes: ["*"]\n'
            "    role: inspector\n", encoding="utf-8")
        return cfg

    def _ingest_ready(self) -> bool:
        self.check_children()
        h = self.health()
        return bool(h and h.get("subscribed"))

    def _listening(self, port: int) -> bool:
        self.check_children()
        return port_open(port)

    def check_children(self) -> None:
        """A child that stopped by itself ends the demo with its name and the tail of its log."""
        if self.stopping:
            return
        for name, proc in self.children:
            if proc.poll() is not None:
                raise ChildStopped(name, proc.returncode, self.data_dir / f"{name}.log")

    def health(self) -> dict | None:
        return read_health(self.http_port)

    def banner(self, since_ms: int) -> None:
        q = f"SELECT count(seq) FROM telemetry WHERE time >= {since_ms}ms GROUP BY station"
        say(f"""
══ Làng thông minh {self.site.name_vi} ({self.site.province}) — demo ══
  Cổng thông tin xã / commune portal:  {self.portal_url}
  Kiểm tra sức khỏe / health:   http://127.0.0.1:{self.http_port}/healthz
  Số liệu dịch vụ / metrics:     http://127.0.0.1:{self.http_port}/metrics
  MQTT broker:                   {self.stack.mqtt_url}   (mosquitto_sub -p {self.stack.mosquitto.port} -t 'vw/v1/#' -v)
  InfluxDB:                      {self.stack.influx_url}  database "{self.stack.influx_db}"
  Truy vấn / query:  influx -port {self.stack.influxd.port} -database {self.stack.influx_db} -execute "{q}"
  Nhật ký / logs:                {self.data_dir}/*.log
  Dừng / stop:                   Ctrl-C
""" + (f"""  Trang cảnh báo / alerts page:  {self.alerts_url}   đăng nhập / login: thanhtra / {self.demo_password}
""" if self.alerts_url else ""))

    def count_since(self, since_ms: int) -> int:
        rows = self.stack.query_values(f"SELECT count(seq) FROM telemetry WHERE time >= {since_ms}ms")
        return int(rows[0][1]) if rows else 0

    def watch(self) -> None:
        since = int(time.time() * 1000)
        self.banner(since)
        deadline = time.monotonic() + self.args.duration if self.args.duration else None
        while deadline is None or time.monotonic() < deadline:
            self.check_children()
            h = self.health() or {}
            say(f"[{time.strftime('%H:%M:%S')}] điểm mới trong InfluxDB / new points in InfluxDB: "
                f"{self.count_since(since):,}   ingest nhận / received {h.get('received', '?')}, "
                f"ghi / written {h.get('written', '?')}, đệm / spooled batches {h.get('spool_batches', '?')}")
            time.sleep(5 if deadline is None else min(5, max(0.1, deadline - time.monotonic())))

    def stop(self) -> None:
        self.stopping = True
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_pid(proc.pid, timeout=1)
        self.stack.stop()
        say("■ Đã dừng tất cả / everything stopped.")


class ChildStopped(UserError):
    """A service of the demo stopped by itself: a message with its log, not a traceback."""

    def __init__(self, name: str, returncode: int | None, log: Path):
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        super().__init__(f"dịch vụ {name} đã dừng bất ngờ (mã {returncode}) / the {name} service stopped "
                         f"unexpectedly (exit {returncode}); nhật ký / log: {log}\n{tail}",
                         hint=f"read {log}; a port in use? try `villagewatch demo --http-port 0`")


def say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    demo = Demo(args)
    # Ctrl-C reaches the whole foreground process group; the children handle SIGINT themselves,
    # and we stop them in order below.
    def interrupted(*_: object) -> None:
        # children got the same Ctrl-C (one process group) and may exit before we look at them
        demo.stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        demo.start()
        demo.watch()
    except KeyboardInterrupt:
        say("\n■ Đang dừng / stopping …")
    finally:
        with contextlib.suppress(Exception):
            demo.stop()
    return 0
