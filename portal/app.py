"""aiohttp application of the portal: JSON API, SSE stream, feedback, Jinja2 pages (autoescaped)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import paho.mqtt.client as mqtt
from aiohttp import web

from portal.feedback import (
    CATEGORIES,
    MAX_PHOTO_BYTES,
    FeedbackRejected,
    FeedbackStore,
    RateLimiter,
    validate,
)
from villagewatch import contract
from villagewatch.config import Settings
from villagewatch.influx import InfluxError, InfluxReader, quote_ident, quote_tag
from villagewatch.mqtt import MqttOptions, paho_client
from villagewatch.sites import Site, Station
from villagewatch.storage import Telemetry as T

log = logging.getLogger(__name__)

MAX_SERIES_POINTS = 2000
OPEN_DATA_DAYS_DEFAULT = 30
OPEN_DATA_DAYS_MAX = 366  # one query per request; a year of daily rows stays small
OPEN_DATA_COLUMNS = ("date", "metric", "unit", "mean", "count")
SSE_QUEUE_MAX = 256  # per client; a client this far behind is disconnected (it reloads and resyncs)
FEEDBACK_PER_ADDRESS = 5  # submissions per address per hour
# the map's background tiles; the map works without them (stations drawn over the commune)
DEFAULT_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
STATIC_DIR = Path(__file__).parent / "static"
LEAFLET_DIR = STATIC_DIR / "node_modules" / "leaflet" / "dist"  # installed by scripts/bootstrap.sh (npm)
# marker colour per station state (issue 15's words); "warn"/"exceeded" come with the alert rules
STATE_STYLE = {"ok": ("Tốt", "#2e9e44"), "warn": ("Cần chú ý", "#e6b800"), "exceeded": ("Vượt ngưỡng", "#d7301f"),
               "offline": ("Mất kết nối", "#777777"), "no_data": ("Chưa có số liệu", "#ffffff")}
APP_KEY = web.AppKey("portal", object)


@dataclass
class Portal:
    settings: Settings
    sites: dict[str, Site]
    influx: InfluxReader
    feedback: FeedbackStore
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(FEEDBACK_PER_ADDRESS, 3600))
    clients: set[tuple[str | None, asyncio.Queue]] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None
    mqtt: mqtt.Client | None = None

    # ------------------------------------------------------------------ visibility
    def visible(self, request: web.Request, commune: str | None) -> list[Station]:
        """Stations the caller may see: public ones without a session (sign-in not built yet)."""
        out = []
        for site in self.sites.values():
            if commune and site.commune != commune:
                continue
            out.extend(s for s in site.stations.values() if s.public)
        return out

    def station(self, commune: str, station: str) -> Station:
        site = self.sites.get(commune)
        st = site.stations.get(station) if site else None
        if st is None or not st.public:
            raise web.HTTPNotFound(text="không tìm thấy trạm / station not found")
        return st

    # ------------------------------------------------------------------ InfluxDB
    def latest(self, stations: list[Station]) -> dict[tuple[str, str], dict[str, dict]]:
        """Last value of each metric per station, in one query per commune."""
        out: dict[tuple[str, str], dict[str, dict]] = {}
        by_commune: dict[str, list[Station]] = {}
        for st in stations:
            by_commune.setdefault(st.commune, []).append(st)
        for commune, group in by_commune.items():
            metrics = sorted({m for st in group for m in st.metrics})
            # one statement per metric: last() of several fields in one SELECT would share one
            # timestamp, hiding how old each metric's value really is
            for m in metrics:
                q = (f"SELECT last({quote_ident(m)}) FROM {contract.MEASUREMENT_TELEMETRY} "
                     f"WHERE {quote_ident(T.COMMUNE)} = {quote_tag(commune)} GROUP BY {quote_ident(T.STATION)}")
                for s in self.influx.query(q):
                    ts, value = s.values[0][0], s.values[0][1]
                    out.setdefault((commune, s.tags.get(T.STATION, "")), {})[m] = {
                        "value": value, "unit": contract.METRICS[m].unit, "ts": ts}
        return out

    def series(self, st: Station, metric: str, start_ms: int, end_ms: int) -> list[list]:
        span = max(1, end_ms - start_ms)
        base = (f"FROM {quote_ident(T.MEASUREMENT)} WHERE {quote_ident(T.COMMUNE)} = {quote_tag(st.commune)} "
                f"AND {quote_ident(T.STATION)} = {quote_tag(st.id)} AND time >= {start_ms}ms AND time <= {end_ms}ms")
        count_rows = self.influx.query(f"SELECT count({quote_ident(metric)}) {base}")
        count = count_rows[0].values[0][1] if count_rows else 0
        if count <= MAX_SERIES_POINTS:
            rows = self.influx.query(f"SELECT {quote_ident(metric)} {base}")
        else:
            bucket_ms = -(-span // MAX_SERIES_POINTS)  # ceil: at most MAX buckets over the span
            rows = self.influx.query(f"SELECT mean({quote_ident(metric)}) {base} "
                                     f"GROUP BY time({bucket_ms}ms) fill(none)")
        points = [[r[0], r[1]] for s in rows for r in s.values if r[1] is not None]
        return points[:MAX_SERIES_POINTS]

    def daily_means(self, st: Station, days: int, now_ms: int) -> list[dict]:
        """Mean and count per metric per local day of the site (its timezone), oldest first.

        Days are the site's local calendar days (tz() shifts InfluxDB's day buckets), so a reading
        at 23:30 in Vietnam counts for that day, not the next UTC one.
        """
        tz_name = self.sites[st.commune].timezone
        tz = ZoneInfo(tz_name)
        today = datetime.fromtimestamp(now_ms / 1000, tz).replace(hour=0, minute=0, second=0, microsecond=0)
        start_ms = int(today.timestamp() * 1000) - (days - 1) * 86_400_000
        fields = ", ".join(f"mean({quote_ident(m)}) AS {quote_ident('mean_' + m)}, "
                           f"count({quote_ident(m)}) AS {quote_ident('count_' + m)}" for m in st.metrics)
        q = (f"SELECT {fields} FROM {quote_ident(T.MEASUREMENT)} "
             f"WHERE {quote_ident(T.COMMUNE)} = {quote_tag(st.commune)} AND {quote_ident(T.STATION)} = {quote_tag(st.id)} "
             f"AND time >= {start_ms}ms AND time <= {now_ms}ms "
             f"GROUP BY time(1d) fill(none) tz({quote_tag(tz_name)})")
        rows = []
        for series in self.influx.query(q):
            cols = series.columns
            for values in series.values:
                rec = dict(zip(cols, values, strict=True))
                day = datetime.fromtimestamp(rec["time"] / 1000, tz).date().isoformat()
                for m in st.metrics:
                    if rec.get(f"mean_{m}") is None:
                        continue
                    rows.append({"date": day, "metric": m, "unit": contract.METRICS[m].unit,
                                 "mean": rec[f"mean_{m}"], "count": rec[f"count_{m}"]})
        return rows

    # ------------------------------------------------------------------ MQTT → SSE
    def start_mqtt(self) -> None:
        opts = MqttOptions.from_settings(self.settings, f"villagewatch-portal-{id(self)}")
        url = opts.broker
        c = paho_client(opts)  # CA, client certificate, auth: villagewatch/mqtt.py
        c.reconnect_delay_set(1, 10)
        c.on_connect = lambda cl, *_a: cl.subscribe([(contract.TELEMETRY_SUBSCRIPTION, 0),
                                                     (contract.ALERTS_SUBSCRIPTION, 0)])
        c.on_message = self._on_message
        c.connect_async(url.host, url.port, keepalive=30)
        c.loop_start()
        self.mqtt = c

    def _on_message(self, client, userdata, msg) -> None:
        try:
            info = contract.parse_topic(msg.topic)
        except contract.TopicError:
            return
        site = self.sites.get(info.commune)
        st = site.stations.get(info.station or "") if site else None
        if st is None or not st.public:
            return
        if info.kind == "telemetry":
            decoded = contract.decode_telemetry(info.commune, st.id, msg.payload, int(time.time() * 1000))
            if decoded.reading is None:
                return
            r = decoded.reading
            event = ("reading", {"commune": r.commune, "station": r.station, "ts": r.ts_ms, "metrics": r.metrics})
        elif info.kind == "alert":
            try:
                body = json.loads(msg.payload)
            except ValueError:
                return
            event = ("alert", {"commune": info.commune, "station": st.id, "alert": body})
        else:
            return
        if self.loop:
            self.loop.call_soon_threadsafe(self._fan_out, info.commune, event)

    def _fan_out(self, commune: str, event: tuple[str, dict]) -> None:
        for wanted, queue in list(self.clients):
            if wanted and wanted != commune:
                continue
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # policy at the bound: a client this far behind is dropped (its browser reconnects
                # and reloads the latest values); the queue is emptied to deliver the end marker
                self.clients.discard((wanted, queue))
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)


def _portal(request: web.Request) -> Portal:
    return request.app[APP_KEY]  # type: ignore[return-value]


def _int_arg(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be integer milliseconds") from None


async def api_stations(request: web.Request) -> web.Response:
    p = _portal(request)
    stations = p.visible(request, request.query.get("commune"))
    try:
        latest = await asyncio.to_thread(p.latest, stations)
    except InfluxError as exc:
        log.warning("latest values unavailable: %s", exc)
        latest = {}
    now_ms = int(time.time() * 1000)
    out = []
    for st in stations:
        values = latest.get((st.commune, st.id), {})
        last_ts = max((v["ts"] for v in values.values()), default=None)
        out.append({"commune": st.commune, "station": st.id, "name_vi": st.name_vi, "name_en": st.name_en,
                    "kind": st.kind, "lat": st.lat, "lon": st.lon, "state": _state(st, last_ts, now_ms),
                    "last_ts": last_ts, "latest": values})
    return web.json_response(out)


def _state(st: Station, last_ts: int | None, now_ms: int) -> str:
    """no_data / offline (silent for 3 intervals) / ok. Limits come from the alert rules (not yet)."""
    if last_ts is None:
        return "no_data"
    if now_ms - last_ts > 3 * st.interval_s * 1000:
        return "offline"
    return "ok"


async def api_series(request: web.Request) -> web.Response:
    p = _portal(request)
    st = p.station(request.match_info["commune"], request.match_info["station"])
    metric = request.query.get("metric", "")
    if metric not in st.metrics:
        raise web.HTTPBadRequest(text=f"metric {metric!r} is not measured here (one of: {', '.join(st.metrics)})")
    now_ms = int(time.time() * 1000)
    end = _int_arg(request, "to", now_ms)
    start = _int_arg(request, "from", end - 86_400_000)
    if start > end:
        raise web.HTTPBadRequest(text="from must not be after to")
    points = await asyncio.to_thread(p.series, st, metric, start, end)
    return web.json_response(points)


async def _daily(request: web.Request) -> tuple[Station, list[dict]]:
    p = _portal(request)
    st = p.station(request.match_info["commune"], request.match_info["station"])
    days = _int_arg(request, "days", OPEN_DATA_DAYS_DEFAULT)
    if not 1 <= days <= OPEN_DATA_DAYS_MAX:
        raise web.HTTPBadRequest(text=f"days must be between 1 and {OPEN_DATA_DAYS_MAX} / số ngày không hợp lệ")
    rows = await asyncio.to_thread(p.daily_means, st, days, int(time.time() * 1000))
    return st, rows


async def api_daily_json(request: web.Request) -> web.Response:
    st, rows = await _daily(request)
    return web.json_response({"commune": st.commune, "station": st.id, "name_vi": st.name_vi,
                              "name_en": st.name_en, "timezone": _portal(request).sites[st.commune].timezone,
                              "daily": rows})


async def api_daily_csv(request: web.Request) -> web.Response:
    st, rows = await _daily(request)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=OPEN_DATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{st.commune}-{st.id}-daily.csv"'})


async def api_stream(request: web.Request) -> web.StreamResponse:
    p = _portal(request)
    commune = request.query.get("commune") or None
    queue: asyncio.Queue = asyncio.Queue(SSE_QUEUE_MAX)
    entry = (commune, queue)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(b": connected\n\n")
    p.clients.add(entry)
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), 15)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if event is None:  # too slow: dropped from fan-out, the browser reconnects
                break
            name, body = event
            await resp.write(f"event: {name}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        p.clients.discard(entry)
    return resp


async def api_feedback(request: web.Request) -> web.Response:
    p = _portal(request)
    address = request.remote or "?"
    if not p.limiter.allow(address):
        return web.json_response({"error": "quá nhiều phản ánh, vui lòng thử lại sau / too many submissions"},
                                 status=429)
    if request.content_length and request.content_length > MAX_PHOTO_BYTES + 64 * 1024:
        return web.json_response({"error": "ảnh lớn hơn 5 MB / photo larger than 5 MB"}, status=413)
    fields: dict[str, str] = {}
    photo: bytes | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "photo":
                data = await part.read(decode=False)
                if len(data) > MAX_PHOTO_BYTES:
                    raise FeedbackRejected("ảnh lớn hơn 5 MB / photo larger than 5 MB", 413)
                photo = bytes(data) or None
            elif part.name:
                fields[part.name] = (await part.text())[:10_000]
        sub = validate(fields, photo, set(p.sites))
    except FeedbackRejected as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    except (AssertionError, ValueError) as exc:  # not multipart / malformed body
        return web.json_response({"error": f"biểu mẫu không hợp lệ / malformed form: {exc}"}, status=400)
    code = await asyncio.to_thread(p.feedback.add, sub)
    return web.json_response({"code": code}, status=201)


@aiohttp_jinja2.template("tracking.html")
async def page_tracking(request: web.Request) -> dict:
    item = _portal(request).feedback.get(request.match_info["code"])
    if item is None:
        raise web.HTTPNotFound(text="không tìm thấy mã phản ánh / no feedback with this code")
    return {"item": item, "category": CATEGORIES.get(item["category"], item["category"])}


@aiohttp_jinja2.template("index.html")
async def page_index(request: web.Request) -> dict:
    p = _portal(request)
    markers = [{"commune": st.commune, "station": st.id, "name": st.name_vi, "lat": st.lat, "lon": st.lon,
                "kind": st.kind} for st in p.visible(request, None)]
    centers = [{"lat": s.center[0], "lon": s.center[1]} for s in p.sites.values() if s.center]
    return {"sites": list(p.sites.values()), "categories": CATEGORIES, "markers": markers,
            "centers": centers, "states": STATE_STYLE, "tile_url": os.environ.get("VW_PORTAL_TILE_URL", DEFAULT_TILE_URL)}


@aiohttp_jinja2.template("station.html")
async def page_station(request: web.Request) -> dict:
    p = _portal(request)
    st = p.station(request.match_info["commune"], request.match_info["station"])
    return {"st": st, "metrics": [contract.METRICS[m] for m in st.metrics]}


def build_app(portal: Portal) -> web.Application:
    app = web.Application(client_max_size=MAX_PHOTO_BYTES + 64 * 1024)
    app[APP_KEY] = portal
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                         autoescape=True)
    app.router.add_get("/", page_index)
    if LEAFLET_DIR.is_dir():  # absent only when bootstrap's npm step was skipped: the list still works
        app.router.add_static("/static/leaflet", LEAFLET_DIR)
    else:
        log.warning("Leaflet not installed at %s (run: bash scripts/bootstrap.sh setup): no map", LEAFLET_DIR)
    app.router.add_get("/tram/{commune}/{station}", page_station)
    app.router.add_get("/phan-anh/{code}", page_tracking)
    app.router.add_get("/api/v1/stations", api_stations)
    app.router.add_get("/api/v1/stations/{commune}/{station}/series", api_series)
    app.router.add_get("/api/v1/stations/{commune}/{station}/daily.csv", api_daily_csv)
    app.router.add_get("/api/v1/stations/{commune}/{station}/daily.json", api_daily_json)
    app.router.add_get("/api/v1/stream", api_stream)
    app.router.add_post("/api/v1/feedback", api_feedback)

    async def on_startup(app: web.Application) -> None:
        portal.loop = asyncio.get_running_loop()
        portal.start_mqtt()

    async def on_cleanup(app: web.Application) -> None:
        if portal.mqtt:
            portal.mqtt.loop_stop()
            portal.mqtt.disconnect()
        for _, q in list(portal.clients):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        portal.feedback.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
