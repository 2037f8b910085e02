"""aiohttp application of the portal: JSON API, SSE stream, feedback, Jinja2 pages (autoescaped)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
import paho.mqtt.client as mqtt
from aiohttp import web

from portal import queue_web, status
from portal.feedback import (
    CATEGORIES,
    MAX_PHOTO_BYTES,
    STATUSES,
    FeedbackRejected,
    FeedbackStore,
    RateLimiter,
    validate,
)
from portal.signin_web import AUTH_KEY, SignIn, add_routes, csrf_cookie_middleware, template_context
from rules.rulepack import RuleSet
from villagewatch import contract
from villagewatch.aio import get_or_timeout
from villagewatch.config import Settings
from villagewatch.influx import InfluxError, InfluxReader, quote_ident, quote_tag
from villagewatch.mqtt import MqttOptions, paho_client
from villagewatch.signin import CSRF_COOKIE, Account, check_csrf, same_origin
from villagewatch.sites import Site, Station
from villagewatch.storage import Telemetry as T
from villagewatch.textfmt import quantity

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
UPLOT_DIR = STATIC_DIR / "node_modules" / "uplot" / "dist"
# marker colour per station state (issue 15's words); "warn"/"exceeded" come with the alert rules
STATE_STYLE = {"ok": ("Tốt", "#2e9e44"), "warn": ("Cần chú ý", "#e6b800"), "exceeded": ("Vượt ngưỡng", "#d7301f"),
               "offline": ("Mất kết nối", "#777777"), "no_data": ("Chưa có số liệu", "#ffffff")}
APP_KEY = web.AppKey("portal", object)


def may_see(account: Account | None, st: Station) -> bool:
    """Residents (no account) see public stations; staff every station of their communes."""
    return st.public if account is None else account.sees(st.commune)


@dataclass(eq=False)
class StreamClient:
    """One SSE connection: what it asked for and who is asking (hashable by identity)."""

    commune: str | None
    account: Account | None
    queue: asyncio.Queue


@dataclass
class Portal:
    settings: Settings
    sites: dict[str, Site]
    influx: InfluxReader
    feedback: FeedbackStore
    signin: SignIn
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(FEEDBACK_PER_ADDRESS, 3600))
    clients: set[StreamClient] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None
    ruleset: RuleSet | None = None  # limits for the map's states and the station page
    # last values per station as read by a page/API or received live; bounded by the site files' stations
    snapshots: dict[tuple[str, str], tuple[int, dict, dict]] = field(default_factory=dict)
    # alerts seen on the broker since start that are not resolved (the alert service keeps the truth)
    active_alerts: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    mqtt: mqtt.Client | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)  # for tests and health

    # ------------------------------------------------------------------ visibility
    def account(self, request: web.Request) -> Account | None:
        s = self.signin.session(request)
        return s.account if s else None

    def visible(self, request: web.Request, commune: str | None) -> list[Station]:
        """Stations the caller may see: public ones without a session, else the account's communes."""
        account = self.account(request)
        out = []
        for site in self.sites.values():
            if commune and site.commune != commune:
                continue
            out.extend(s for s in site.stations.values() if may_see(account, s))
        return out

    def station(self, request: web.Request, commune: str, station: str) -> Station:
        site = self.sites.get(commune)
        st = site.stations.get(station) if site else None
        if st is None or not may_see(self.account(request), st):
            # the same answer for "does not exist" and "not yours": ids of other communes stay unknown
            raise web.HTTPNotFound(text="không tìm thấy trạm / station not found")
        return st

    # ------------------------------------------------------------------ InfluxDB
    def latest(self, stations: list[Station], now_ms: int) -> tuple[dict, dict]:
        """(latest, today) per (commune, station): the last value of each metric with its time, and
        today's (site's local day) lowest and highest value. Two statements per metric per commune:
        last() of several fields in one SELECT would share one timestamp, hiding each one's age."""
        latest: dict[tuple[str, str], dict[str, dict]] = {}
        today: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        by_commune: dict[str, list[Station]] = {}
        for st in stations:
            by_commune.setdefault(st.commune, []).append(st)
        for commune, group in by_commune.items():
            midnight = _local_midnight_ms(now_ms, self.sites[commune].timezone)
            for m in sorted({m for st in group for m in st.metrics}):
                where = f"FROM {contract.MEASUREMENT_TELEMETRY} WHERE commune = {quote_tag(commune)}"
                for s in self.influx.query(f"SELECT last({quote_ident(m)}) {where} GROUP BY station"):
                    ts, value = s.values[0][0], s.values[0][1]
                    latest.setdefault((commune, s.tags.get("station", "")), {})[m] = _value(m, value, ts)
                for s in self.influx.query(f"SELECT min({quote_ident(m)}), max({quote_ident(m)}) {where} "
                                           f"AND time >= {midnight}ms GROUP BY station"):
                    lo, hi = s.values[0][1], s.values[0][2]
                    if lo is not None:
                        today.setdefault((commune, s.tags.get("station", "")), {})[m] = (lo, hi)
        return latest, today

    def assess(self, st: Station, latest: dict[str, dict], today: dict[str, tuple[float, float]],
               now_ms: int) -> status.Assessment:
        a = status.assess(st, self.ruleset, latest, today, now_ms, self.sites[st.commune].timezone)
        alerts = [x for x in self.alerts_of(st) if x.get("severity") in ("warning", "critical")]
        if alerts and a.state in ("ok", "warn"):
            # an active alert is the alert service's judgement (with the regulation's averaging)
            worst = "exceeded" if any(x.get("limit") is not None for x in alerts) else "warn"
            if status.RANK[worst] > status.RANK[a.state]:
                a.state = worst
                a.summary_vi = f"{a.summary_vi.split(':')[0]}: {alerts[0].get('message_vi') or 'có cảnh báo'}"
                a.summary_en = f"{a.summary_en.split(':')[0]}: {alerts[0].get('message_en') or 'alert active'}"
        return a

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
        c.on_subscribe = lambda *_a: self.subscribed.set()
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
        if st is None:
            return
        if info.kind == "telemetry":
            decoded = contract.decode_telemetry(info.commune, st.id, msg.payload, int(time.time() * 1000))
            if decoded.reading is None:
                return
            if self.loop:
                self.loop.call_soon_threadsafe(self._on_reading, st, decoded.reading)
        elif info.kind == "alert":
            try:
                body = json.loads(msg.payload)
            except ValueError:
                return
            if isinstance(body, dict) and self.loop:
                self.loop.call_soon_threadsafe(self._on_alert, st, body)

    # ------------------------------------------------------------------ live state (event-loop thread)
    def remember(self, st: Station, latest: dict[str, dict], today: dict[str, tuple[float, float]],
                 now_ms: int) -> None:
        """Cache what a page or the API just read, so a live reading can be judged with today's extremes."""
        day = _local_midnight_ms(now_ms, self.sites[st.commune].timezone)
        self.snapshots[(st.commune, st.id)] = (day, dict(latest), dict(today))

    def _on_reading(self, st: Station, r: contract.Reading) -> None:
        now_ms = int(time.time() * 1000)
        day = _local_midnight_ms(now_ms, self.sites[st.commune].timezone)
        cached_day, latest, today = self.snapshots.get((st.commune, st.id), (day, {}, {}))
        if cached_day != day:
            today = {}
        for m, v in r.metrics.items():
            if m not in st.metrics or not isinstance(v, int | float):
                continue
            if latest.get(m, {}).get("ts", 0) <= r.ts_ms:
                latest[m] = _value(m, v, r.ts_ms)
            if r.ts_ms >= day:
                lo, hi = today.get(m, (v, v))
                today[m] = (min(lo, v), max(hi, v))
        self.snapshots[(st.commune, st.id)] = (day, latest, today)
        a = self.assess(st, latest, today, now_ms)
        texts = {m: _value(m, v, r.ts_ms)["text"] for m, v in r.metrics.items() if isinstance(v, int | float)}
        self._fan_out(st, ("reading", {"commune": r.commune, "station": r.station, "ts": r.ts_ms, "metrics": r.metrics,
                                       "texts": texts, "state": a.state, "summary_vi": a.summary_vi,
                                       "summary_en": a.summary_en}))

    def _on_alert(self, st: Station, body: dict) -> None:
        key = (st.commune, st.id, str(body.get("rule", body.get("id", ""))))
        if body.get("state") == "resolved":
            self.active_alerts.pop(key, None)
        else:
            self.active_alerts[key] = body
        self._fan_out(st, ("alert", {"commune": st.commune, "station": st.id, "alert": body}))

    def alerts_of(self, st: Station) -> list[dict]:
        return [a for (c, s, _), a in self.active_alerts.items() if c == st.commune and s == st.id]

    def _fan_out(self, st: Station, event: tuple[str, dict]) -> None:
        for client in list(self.clients):
            if (client.commune and client.commune != st.commune) or not may_see(client.account, st):
                continue
            self.deliver(client, event)

    def fan_out_staff(self, commune: str, event: tuple[str, dict]) -> None:
        """An event for signed-in pages of ``commune`` only (feedback queue changes)."""
        for client in list(self.clients):
            if client.account is not None and client.account.sees(commune) and client.commune in (None, commune):
                self.deliver(client, event)

    def deliver(self, client: StreamClient, event: tuple[str, dict]) -> None:
        try:
            client.queue.put_nowait(event)
        except asyncio.QueueFull:
            # policy at the bound: a client this far behind is dropped (its browser reconnects
            # and reloads the latest values); the queue is emptied to deliver the end marker
            self.clients.discard(client)
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(None)


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
    now_ms = int(time.time() * 1000)
    try:
        latest, today = await asyncio.to_thread(p.latest, stations, now_ms)
    except InfluxError as exc:
        log.warning("latest values unavailable: %s", exc)
        latest, today = {}, {}
    out = []
    for st in stations:
        values = latest.get((st.commune, st.id), {})
        last_ts = max((v["ts"] for v in values.values()), default=None)
        a = p.assess(st, values, today.get((st.commune, st.id), {}), now_ms)
        p.remember(st, values, today.get((st.commune, st.id), {}), now_ms)
        out.append({"commune": st.commune, "station": st.id, "name_vi": st.name_vi, "name_en": st.name_en,
                    "kind": st.kind, "lat": st.lat, "lon": st.lon, "state": a.state,
                    "last_ts": last_ts, "latest": values, "public": st.public,
                    "summary_vi": a.summary_vi, "summary_en": a.summary_en, "aqi": a.aqi})
    return web.json_response(out)


def _value(metric: str, value: float | None, ts: int) -> dict:
    """A value as the API gives it: number, unit, time, and the text a person reads (textfmt)."""
    m = contract.METRICS.get(metric)
    unit = m.unit if m else ""
    return {"value": value, "unit": unit, "ts": ts, "text": quantity(value, unit, m.decimals if m else 2)}


def _local_midnight_ms(now_ms: int, tz: str) -> int:
    local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz))
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


async def api_series(request: web.Request) -> web.Response:
    p = _portal(request)
    st = p.station(request, request.match_info["commune"], request.match_info["station"])
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
    st = p.station(request, request.match_info["commune"], request.match_info["station"])
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
    entry = StreamClient(commune, p.account(request), queue)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(b": connected\n\n")
    p.clients.add(entry)
    try:
        while True:
            got, event = await get_or_timeout(queue, 15)  # cancellable, unlike wait_for (villagewatch/aio.py)
            if not got:
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
    if not same_origin(request.headers.get("Origin"), p.signin.public_url, request.host):
        return web.json_response({"error": "yêu cầu từ trang khác / cross-site request refused"}, status=403)
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
        # the portal's own form sends the double-submit token; API clients without the cookie do not
        browser_token = request.cookies.get(CSRF_COOKIE)
        if browser_token and "csrf" in fields and not check_csrf(browser_token, fields["csrf"]):
            raise FeedbackRejected("biểu mẫu hết hạn, hãy tải lại trang / form expired, reload the page", 403)
        sub = validate(fields, photo, set(p.sites))
    except FeedbackRejected as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    except (AssertionError, ValueError) as exc:  # not multipart / malformed body
        return web.json_response({"error": f"biểu mẫu không hợp lệ / malformed form: {exc}"}, status=400)
    code = await asyncio.to_thread(p.feedback.add, sub)
    queue_web.notify_new(p, code)
    return web.json_response({"code": code, "url": f"/phan-anh/{code}"}, status=201)


async def tracking_lookup(request: web.Request) -> web.Response:
    code = "".join(ch for ch in request.query.get("ma", "").upper() if ch.isalnum())[:16]
    if not code:
        raise web.HTTPSeeOther("/#phan-anh")
    raise web.HTTPSeeOther(f"/phan-anh/{code}")


@aiohttp_jinja2.template("tracking.html")
async def page_tracking(request: web.Request) -> dict:
    item = _portal(request).feedback.get(request.match_info["code"])
    if item is None:
        raise web.HTTPNotFound(text="không tìm thấy mã phản ánh / no feedback with this code")
    return {"item": item, "category": CATEGORIES.get(item["category"], item["category"]),
            "status_vi": STATUSES.get(item["status"], item["status"]), "local": queue_web._local}


@aiohttp_jinja2.template("index.html")
async def page_index(request: web.Request) -> dict:
    p = _portal(request)
    stations = p.visible(request, None)
    markers = [{"commune": st.commune, "station": st.id, "name": st.name_vi, "lat": st.lat, "lon": st.lon,
                "kind": st.kind} for st in stations]
    groups = [(site, [st for st in stations if st.commune == site.commune]) for site in p.sites.values()]
    groups = [(site, sts) for site, sts in groups if sts]
    centers = [{"lat": s.center[0], "lon": s.center[1]} for s in p.sites.values() if s.center]
    outlines = [{"commune": s.commune, "name": s.name_vi, "points": [list(pt) for pt in s.outline]}
                for s, _ in groups if s.outline]
    return {"sites": list(p.sites.values()), "groups": groups, "categories": CATEGORIES, "markers": markers,
            "centers": centers, "outlines": outlines, "states": STATE_STYLE, "tile_url": os.environ.get("VW_PORTAL_TILE_URL", DEFAULT_TILE_URL)}


@aiohttp_jinja2.template("station.html")
async def page_station(request: web.Request) -> dict:
    p = _portal(request)
    st = p.station(request, request.match_info["commune"], request.match_info["station"])
    now_ms = int(time.time() * 1000)
    try:
        latest_all, today_all = await asyncio.to_thread(p.latest, [st], now_ms)
    except InfluxError as exc:
        log.warning("latest values unavailable: %s", exc)
        latest_all, today_all = {}, {}
    latest, today = latest_all.get((st.commune, st.id), {}), today_all.get((st.commune, st.id), {})
    p.remember(st, latest, today, now_ms)
    a = p.assess(st, latest, today, now_ms)
    tz = p.sites[st.commune].timezone
    rows = []
    for name in st.metrics:
        m = contract.METRICS[name]
        v = latest.get(name)
        rows.append({"name": name, "label_vi": m.label_vi, "label_en": m.label_en, "unit": m.unit,
                     "decimals": m.decimals, "text": v["text"] if v else "—",
                     "when": datetime.fromtimestamp(v["ts"] / 1000, ZoneInfo(tz)).strftime("%H:%M %d/%m") if v else "",
                     **a.metrics[name]})
    regulations = sorted({lim["citation_vi"].split(",")[0] for r in rows for lim in r["limits"]})
    return {"st": st, "rows": rows, "assessment": a, "states": STATE_STYLE, "regulations": regulations, "tz": tz,
            "chart_metric": next((r["name"] for r in rows if r["limits"]), st.metrics[0]),
            "alerts": p.alerts_of(st) if p.account(request) else []}


def build_app(portal: Portal) -> web.Application:
    app = web.Application(client_max_size=MAX_PHOTO_BYTES + 64 * 1024, middlewares=[csrf_cookie_middleware])
    app[APP_KEY] = portal
    app[AUTH_KEY] = portal.signin
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                         autoescape=True,
                         context_processors=[template_context, aiohttp_jinja2.request_processor])
    add_routes(app)
    queue_web.add_routes(app)
    app.router.add_get("/", page_index)
    if UPLOT_DIR.is_dir():
        app.router.add_static("/static/uplot", UPLOT_DIR)
    else:
        log.warning("uPlot not installed at %s (run: bash scripts/bootstrap.sh setup): no charts", UPLOT_DIR)
    if LEAFLET_DIR.is_dir():  # absent only when bootstrap's npm step was skipped: the list still works
        app.router.add_static("/static/leaflet", LEAFLET_DIR)
    else:
        log.warning("Leaflet not installed at %s (run: bash scripts/bootstrap.sh setup): no map", LEAFLET_DIR)
    app.router.add_get("/tram/{commune}/{station}", page_station)
    app.router.add_get("/phan-anh", tracking_lookup)
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
        for client in list(portal.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
        portal.feedback.close()
        portal.signin.store.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
