"""One edge gateway: sources → processing → durable spool → MQTT (QoS 1), with health as data.

Threads: the asyncio loop owns the sources, the processing, the spool and the publishing decisions;
paho's network thread only moves bytes and reports PUBACKs (edge/link.py).

Replay policy (docs/edge.md): two lanes share the in-flight window.
- live: readings spooled since the current connection came up, oldest first; always served first.
- backlog: what was queued before (outage, restart), oldest first by spool id, in order per station,
  with at most ``backlog_share`` of the window and at most ``replay_rate`` messages/s.
So a reading taken now is published within one tick even while hours of backlog drain.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import health
from edge.link import Link
from edge.processing import PROCESSING_KEYS, PROCESSING_SCHEMA, StationProcessor
from edge.sources import SOURCES, source_class
from edge.sources.base import Bound, Source, SourceContext
from edge.spool import Spool
from villagewatch import contract
from villagewatch.config import MqttUrl
from villagewatch.schema import ConfigError, Ctx, LineDict, load_yaml
from villagewatch.sites import Site, Station
from villagewatch.status import (
    GatewayStatus,
    LinkStatus,
    QueueStatus,
    SourceStatus,
    SpoolSalvage,
    StationStatus,
)
from villagewatch.status import encode as encode_status
from villagewatch.status import to_dict as status_dict

log = logging.getLogger("edge.gateway")

MAX_PENDING = 100_000  # readings held in memory while the spool cannot be written (≈ 30 MB)


@dataclass
class GatewayOptions:
    brokers: list[MqttUrl]
    data_dir: Path
    budget_bytes: int = 256 * 1024 * 1024
    sync: str = "full"
    window: int = 500
    backlog_share: float = 0.8
    replay_rate: float = 5000.0
    status_interval_s: float = 10.0
    speed: float = 1.0
    seed: int = 0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    reconnect_max_s: int = 5
    extra: dict[str, Any] = field(default_factory=dict)


def _subset(raw: Any, keys: tuple[str, ...], keep: bool) -> LineDict:
    """The keys of a YAML mapping that are (keep=True) or are not in ``keys``, with their lines."""
    out = LineDict()
    out.start_line = getattr(raw, "start_line", None)
    for k, v in raw.items():
        if (k in keys) == keep:
            out[k] = v
            out.lines[k] = getattr(raw, "lines", {}).get(k, out.start_line)
    return out


def bind_sources(site: Site, stations: list[Station], ctx: SourceContext) -> tuple[list[Source], dict[str, dict]]:
    """Validate each station's ``source:`` (file:line errors) and group stations into source instances."""
    raw = load_yaml(site.path) if site.path else None
    raw_stations = {s.get("id"): (i, s) for i, s in enumerate(raw.get("stations", []))} if raw else {}
    groups: dict[tuple[str, str], list[Bound]] = {}
    processing: dict[str, dict] = {}
    for st in stations:
        i, raw_st = raw_stations.get(st.id, (0, None))
        src = raw_st.get("source") if raw_st is not None else None
        line = (raw_st.lines.get("source") if isinstance(raw_st, LineDict) else None)
        if src is None:
            src = LineDict(st.source)
        ctx_src = Ctx(site.path, f"stations[{i}].source", line or getattr(src, "start_line", None))
        type_name = src.get("type", "simulated")
        if type_name not in SOURCES:
            import difflib
            near = difflib.get_close_matches(str(type_name), list(SOURCES), n=1)
            raise ctx_src.child("type", src).error(
                f"unknown source type {type_name!r}",
                f"did you mean {near[0]!r}?" if near else f"source types: {', '.join(SOURCES)}")
        cls = source_class(type_name)
        processing[st.id] = PROCESSING_SCHEMA(_subset(src, PROCESSING_KEYS, True), ctx_src)
        options = _subset(src, (*PROCESSING_KEYS, "type"), False)
        opts = cls.options_schema(options, ctx_src)
        groups.setdefault((type_name, cls.bus_key(opts)), []).append(Bound(st, opts))
    sources = [source_class(t)(key, bound, ctx) for (t, key), bound in groups.items()]
    return sources, processing


class Gateway:
    def __init__(self, site: Site, gateway_id: str, opts: GatewayOptions):
        site.gateway(gateway_id)  # raises a ConfigError with a hint if unknown
        self.site, self.gw, self.opts = site, gateway_id, opts
        self.stations = {s.id: s for s in site.stations_of(gateway_id)}
        if not self.stations:
            raise ConfigError(f"gateway {gateway_id!r} has no stations", file=site.path)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        ctx = SourceContext(speed=opts.speed, seed=opts.seed, data_dir=str(opts.data_dir), site=site,
                            extra=opts.extra)
        self.sources, proc_cfg = bind_sources(site, list(self.stations.values()), ctx)
        self.source_of = {b.station.id: s for s in self.sources for b in s.bound}
        self.processors = {sid: StationProcessor(cfg) for sid, cfg in proc_cfg.items()}
        self.spool = Spool(opts.data_dir / "spool.sqlite", opts.budget_bytes, opts.sync)
        self.gw_topic = contract.gateway_status_topic(site.commune, gateway_id)
        self.link = Link(opts.brokers, f"vw-edge-{site.commune}-{gateway_id}"[:64], self.gw_topic,
                         encode_status(GatewayStatus(online=False, ts=int(time.time() * 1000), gw=gateway_id,
                                                     reason=contract.STATUS_REASON_LWT)),
                         window=opts.window, ca_file=opts.ca_file, cert_file=opts.cert_file,
                         key_file=opts.key_file, reconnect_max_s=opts.reconnect_max_s)
        self.started = time.time()
        self.pending: list[contract.Reading] = []
        self.flush_scheduled = False
        self.spool_errors = 0
        self.last_spool_error: str | None = None
        self.memory_drops = 0
        self.wake: asyncio.Event | None = None
        # publishing state (event-loop thread only)
        self.inflight: dict[int, int] = {}  # mid -> spool row id
        self.backlog_mids: set[int] = set()
        self.lv = 0  # live lane: last spool id handed to paho
        self.backlog: deque[list[int]] = deque()  # [after_id, upto_id] ranges still to replay
        self.generation = 0
        self.tokens = 0.0
        self.published = 0
        self.replayed = 0
        self.last_reading: dict[str, int] = {}
        self.station_errors: dict[str, Counter[str]] = {sid: Counter() for sid in self.stations}
        self.station_online: dict[str, bool] = {}

    # ------------------------------------------------------------------ sink (sources call these)
    def reading(self, station_id: str, ts_ms: int, metrics: dict[str, float]) -> None:
        st = self.stations.get(station_id)
        src = self.source_of.get(station_id)
        if st is None or src is None:
            return
        src.readings += 1
        self.last_reading[station_id] = ts_ms
        wanted = {m: v for m, v in metrics.items() if m in st.metrics}
        for ts, values, flags in self.processors[station_id].process(ts_ms, wanted):
            self._queue(st, src, ts, values, flags)

    def _queue(self, st: Station, src: Source, ts: int, values: dict[str, float], flags: dict[str, list[str]]) -> None:
        good: dict[str, float] = {}
        for name, v in values.items():
            metric = contract.METRICS[name]
            if not math.isfinite(v) or not metric.in_range(v):
                # physically impossible: a broken sensor, never a reading
                self.error(src, st.id, "out_of_range", f"{name}={v} outside {metric.lo}..{metric.hi} {metric.unit}")
                continue
            good[name] = round(v, max(metric.decimals, 3))
        if not good:
            return
        self.pending.append(contract.Reading(st.commune, st.id, ts, 0, good, self.gw,
                                             {k: v for k, v in flags.items() if k in good}))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def error(self, source: Source, station_id: str | None, kind: str, detail: str) -> None:
        source.errors[kind] += 1
        source.last_error = f"{station_id or source.name}: {kind}: {detail}"
        if station_id in self.station_errors:
            self.station_errors[station_id][kind] += 1
        log.debug("source %s station %s: %s %s", source.name, station_id, kind, detail)

    def _flush(self) -> None:
        """Make everything produced in this event-loop tick durable in one transaction.

        If the disk refuses (full, I/O error), the readings are not thrown away: they stay in memory,
        oldest first, and the write is retried every second. Memory is bounded by MAX_PENDING; beyond
        it the oldest are dropped and counted (``memory_drops`` in the gateway status), the same
        policy as the spool's disk budget.
        """
        self.flush_scheduled = False
        batch, self.pending = self.pending, []
        try:
            self.spool.append(batch)
        except sqlite3.Error as exc:
            self.spool_errors += 1
            self.last_spool_error = f"{type(exc).__name__}: {exc}"
            log.error("spool write failed (%s); %d readings kept in memory, retrying in 1 s",
                      self.last_spool_error, len(batch))
            batch.extend(self.pending)
            overflow = len(batch) - MAX_PENDING
            if overflow > 0:
                self.memory_drops += overflow
                del batch[:overflow]
            self.pending = batch
            self.flush_scheduled = True
            asyncio.get_running_loop().call_later(1.0, self._flush)
            return
        if self.wake is not None:
            self.wake.set()

    # ------------------------------------------------------------------ publishing
    def _take_acks(self) -> None:
        acks = self.link.acks
        ids = []
        while acks:
            mid = acks.popleft()
            row_id = self.inflight.pop(mid, None)
            if row_id is not None:
                ids.append(row_id)
                self.backlog_mids.discard(mid)
        if ids:
            self.published += self.spool.delete(ids)

    def _send(self, rows, lane_backlog: bool) -> None:
        for row in rows:
            mid = self.link.publish(row.topic, row.payload)
            self.inflight[mid] = row.id
            if lane_backlog:
                self.backlog_mids.add(mid)
        if lane_backlog:
            self.replayed += len(rows)

    def _fill_window(self, dt: float) -> None:
        if self.link.generation != self.generation:
            # new connection: paho re-sends what it holds; whatever was queued and not yet handed
            # to paho becomes backlog (ranges of spool ids, oldest first)
            self.generation = self.link.generation
            top = self.spool.max_id()
            if top > self.lv:
                self.backlog.append([self.lv, top])
            self.lv = top
        free = self.opts.window - len(self.inflight)
        if free <= 0:
            return
        rows = self.spool.fetch(self.lv, free)
        if rows:
            self._send(rows, False)
            self.lv = rows[-1].id
            free -= len(rows)
        if not self.backlog:
            return
        cap = max(self.opts.window, self.opts.replay_rate * 0.25)
        self.tokens = min(cap, self.tokens + self.opts.replay_rate * dt)
        allowance = min(free, int(self.opts.window * self.opts.backlog_share) - len(self.backlog_mids),
                        int(self.tokens))
        while allowance > 0 and self.backlog:
            after, upto = self.backlog[0]
            rows = self.spool.fetch(after, allowance, upto)
            if not rows:
                self.backlog.popleft()
                continue
            self._send(rows, True)
            self.tokens -= len(rows)
            allowance -= len(rows)
            self.backlog[0][0] = rows[-1].id

    async def _publisher(self) -> None:
        last = time.monotonic()
        while True:
            busy = self.inflight or self.backlog
            try:
                await asyncio.wait_for(self.wake.wait(), 0.02 if busy else 0.25)
            except TimeoutError:
                pass
            self.wake.clear()
            now = time.monotonic()
            self._take_acks()
            if self.link.connected.is_set():
                self._fill_window(now - last)
                if self.link.generation != self._status_generation:
                    self._publish_status()
            last = now

    # ------------------------------------------------------------------ health
    _status_generation = -1

    def status(self) -> dict[str, Any]:
        return status_dict(self.status_struct())

    def status_struct(self) -> GatewayStatus:
        now_ms = int(time.time() * 1000)
        oldest = self.spool.oldest_ts()
        link = self.link
        salvage = self.spool.salvage
        return GatewayStatus(
            online=True, ts=now_ms, gw=self.gw, uptime_s=round(time.time() - self.started, 1),
            queue=QueueStatus(
                depth=self.spool.depth, bytes=self.spool.bytes, budget_bytes=self.spool.budget_bytes,
                oldest_ts=oldest, oldest_age_s=round((now_ms - oldest) / 1000, 1) if oldest else 0,
                inflight=len(self.inflight), replaying=bool(self.backlog),
                drops=self.spool.total_drops, drops_by_station=dict(self.spool.drops),
                write_errors=self.spool_errors, last_write_error=self.last_spool_error,
                salvage=SpoolSalvage(**salvage) if salvage else None,
                pending_in_memory=len(self.pending), memory_drops=self.memory_drops),
            published=self.published, replayed=self.replayed,
            link=LinkStatus(
                state="connected" if link.connected.is_set() else "disconnected",
                broker=link.broker.redacted(), since_ts=int(link.state_since * 1000),
                connects=link.connects, disconnects=link.disconnects, last_error=link.last_error),
            sources={s.name: SourceStatus(type=s.type_name, stations=[b.station.id for b in s.bound],
                                                 readings=s.readings, errors=dict(s.errors), last_error=s.last_error)
                     for s in self.sources},
            **health.platform_health(self.opts.data_dir),
        )

    def _station_statuses(self) -> dict[str, StationStatus]:
        now_ms = int(time.time() * 1000)
        out = {}
        for sid, st in self.stations.items():
            last = self.last_reading.get(sid)
            grace_ms = 3 * st.interval_s * 1000 / self.opts.speed + 5000
            out[sid] = StationStatus(online=bool(last and now_ms - last <= grace_ms), ts=now_ms, gw=self.gw,
                                            last_reading_ts=last, errors=dict(self.station_errors[sid]))
        return out

    def _publish_status(self, force_stations: bool = True) -> None:
        body = self.status()
        health.write_status_file(self.opts.data_dir / "status.json", body)
        if not self.link.connected.is_set():
            return
        self._status_generation = self.link.generation
        self.link.publish(self.gw_topic, contract.encode_json(body), retain=True)
        for sid, st_body in self._station_statuses().items():
            if force_stations or self.station_online.get(sid) != st_body.online:
                self.station_online[sid] = st_body.online
                self.link.publish(contract.station_status_topic(self.site.commune, sid),
                                  encode_status(st_body), retain=True)

    async def _status_loop(self) -> None:
        while True:
            self._publish_status()
            await asyncio.sleep(self.opts.status_interval_s)

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        self.wake = asyncio.Event()
        self.link.start()
        tasks = [asyncio.create_task(s.run(self), name=s.name) for s in self.sources]
        tasks += [asyncio.create_task(self._publisher(), name="publisher"),
                  asyncio.create_task(self._status_loop(), name="status")]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and t.exception():
                    raise t.exception()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in self.sources:
                await s.close()
            await self._shutdown()

    async def _shutdown(self, drain_s: float = 3.0) -> None:
        for sid, proc in self.processors.items():
            closed = proc.flush()
            if closed:
                self._queue(self.stations[sid], self.source_of[sid], *closed)
        if self.pending:
            self._flush()
        # give in-flight messages a moment to be acknowledged; what is not stays in the spool
        deadline = time.monotonic() + drain_s
        while self.inflight and self.link.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            self._take_acks()
        self._take_acks()
        now_ms = int(time.time() * 1000)
        if self.link.connected.is_set():
            for sid in self.stations:
                self.link.publish(contract.station_status_topic(self.site.commune, sid),
                                  contract.encode_json({"online": False, "ts": now_ms, "gw": self.gw,
                                                        "last_reading_ts": self.last_reading.get(sid),
                                                        "reason": "gateway_stopped"}), retain=True)
        final = self.status() | {"online": False, "reason": "stopped"}
        health.write_status_file(self.opts.data_dir / "status.json", final)
        await asyncio.to_thread(self.link.stop, (self.gw_topic, contract.encode_json(final)))
        self.spool.close()
