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
from edge.clock import Clock, ClockGuard, SystemClock
from edge.console import Console, first_reading
from edge.link import Link
from edge.processing import PROCESSING_KEYS, PROCESSING_SCHEMA, StationProcessor
from edge.sources import SOURCES, source_class
from edge.sources.base import Bound, Source, SourceContext
from edge.spool import Spool
from villagewatch import contract
from villagewatch.aio import wait_event
from villagewatch.config import MqttUrl
from villagewatch.schema import ConfigError, Ctx, LineDict, load_yaml
from villagewatch.sites import Site, Station
from villagewatch.status import (
    ClockStatus,
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
MAX_HELD = 500_000  # readings waiting for a trusted clock; beyond, the oldest go out flagged clock_unsynced
HELD_ROW_BYTES = 200
CLOCK_CORRECTED, CLOCK_UNSYNCED = "clock_corrected", "clock_unsynced"


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
    clock: Clock | None = None  # None: the system clocks (tests inject a fake one)
    clock_mode: str = "sane"  # "os": trust the wall clock only while the OS reports NTP sync
    clock_offset_s: float | None = None  # operator: wall clock + this is the true time
    clock_hold_max_s: float = 6 * 3600  # then held readings go out with a best estimate, flagged
    memory_budget_bytes: int = 32 * 1024 * 1024  # in-memory queue when the disk cannot be used
    console: Console | None = None  # None: lines on the log, one per cause per minute


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
        try:
            opts.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # read-only or unwritable: the spool says so and runs in memory
        self.guard = ClockGuard(opts.clock or SystemClock(), opts.clock_mode, operator_offset_s=opts.clock_offset_s)
        self.console = opts.console or Console(self.guard.monotonic)
        self._clock_said: str | None = None
        ctx = SourceContext(speed=opts.speed, seed=opts.seed, data_dir=str(opts.data_dir), site=site,
                            extra=opts.extra, clock=self.guard)
        self.sources, proc_cfg = bind_sources(site, list(self.stations.values()), ctx)
        self.source_of = {b.station.id: s for s in self.sources for b in s.bound}
        self.processors = {sid: StationProcessor(cfg) for sid, cfg in proc_cfg.items()}
        self.spool = Spool(opts.data_dir / "spool.sqlite", opts.budget_bytes, opts.sync, opts.memory_budget_bytes)
        self.guard.raise_floor(self.spool.newest_ts())  # time does not run backwards across a restart
        self.boot = self.guard.clock.boot_id()
        self._boot_last_mono: dict[str, float] = {}
        self.clock_released = Counter()  # flag -> readings re-timed (clock_corrected) or estimated
        self.gw_topic = contract.gateway_status_topic(site.commune, gateway_id)
        self.link = Link(opts.brokers, f"vw-edge-{site.commune}-{gateway_id}"[:64], self.gw_topic,
                         encode_status(GatewayStatus(online=False, ts=int(time.time() * 1000), gw=gateway_id,
                                                     reason=contract.STATUS_REASON_LWT)),
                         window=opts.window, ca_file=opts.ca_file, cert_file=opts.cert_file,
                         key_file=opts.key_file, reconnect_max_s=opts.reconnect_max_s, console=self.console)
        self.started = self.guard.monotonic()
        # (reading, monotonic time of its ts, clock trusted when it was taken)
        self.pending: list[tuple[contract.Reading, float, bool]] = []
        self.flush_scheduled = False
        self.spool_errors = 0
        self.last_spool_error: str | None = None
        self.memory_drops = 0
        self.wake: asyncio.Event | None = None
        self.stopping = False
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
    def reading(self, station_id: str, ts_ms: int, metrics: dict[str, float],
                flags: dict[str, list[str]] | None = None) -> None:
        st = self.stations.get(station_id)
        src = self.source_of.get(station_id)
        if st is None or src is None:
            return
        src.readings += 1
        wanted = {m: v for m, v in metrics.items() if m in st.metrics}
        if station_id not in self.last_reading:
            self.console.say(f"first:{station_id}", first_reading(station_id, wanted), logging.INFO)
        # station status ("online", last_reading_ts) on the best time we have, not on 1970
        self.last_reading[station_id] = ts_ms if self.guard.trusted else self.now_ms()
        for ts, values, fl in self.processors[station_id].process(ts_ms, wanted, flags):
            self._queue(st, src, ts, values, fl)

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
        # the monotonic instant of ts (an aggregation window's start is earlier than now)
        mono = self.guard.monotonic() - (self.guard.wall_ms() - ts) / 1000
        self.pending.append((contract.Reading(st.commune, st.id, ts, 0, good, self.gw,
                                              {k: v for k, v in flags.items() if k in good}),
                             mono, self.guard.trusted))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def error(self, source: Source, station_id: str | None, kind: str, detail: str) -> None:
        source.errors[kind] += 1
        source.last_error = f"{station_id or source.name}: {kind}: {detail}"
        if station_id in self.station_errors:
            self.station_errors[station_id][kind] += 1
        where = f"trạm {station_id}" if station_id else source.name
        self.console.say(f"source:{source.name}:{station_id}:{kind}",
                         f"lỗi nguồn {source.name}, {where}: {kind}: {detail} / "
                         f"source error {source.name}, {station_id or 'bus'}: {kind}: {detail}")

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
            trusted = self.guard.observe()
            self._say_clock()
            if trusted:
                self._release_held()
                self.spool.append([r if was_trusted else self._retimed(r, mono) for r, mono, was_trusted in batch])
            else:
                # not published with a made-up time: kept with their monotonic time until the clock is
                # trusted (docs/edge.md, "Clock policy")
                self.spool.hold([(r, mono) for r, mono, _ in batch], self.boot)
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

    # ------------------------------------------------------------------ clock
    def _retimed(self, r: contract.Reading, mono: float) -> contract.Reading:
        """A reading taken while the clock was not trusted, re-timed now that it is."""
        r.ts_ms = round((mono + self.guard.offset_now()) * 1000)
        r.flags = {m: sorted({*r.flags.get(m, ()), CLOCK_CORRECTED}) for m in r.metrics}
        self.clock_released[CLOCK_CORRECTED] += 1
        return r

    def _timing_trusted(self, mono: float, boot: str) -> tuple[int, str]:
        if boot == self.boot:
            self.clock_released[CLOCK_CORRECTED] += 1
            return round((mono + self.guard.offset_now()) * 1000), CLOCK_CORRECTED
        # another boot: its monotonic clock is gone; the best we know is "before now"
        return self._timing_estimate(mono, boot)

    def _timing_estimate(self, mono: float, boot: str) -> tuple[int, str]:
        self.clock_released[CLOCK_UNSYNCED] += 1
        if boot == self.boot:
            return self.guard.best_estimate_ms(mono), CLOCK_UNSYNCED
        # another boot: its monotonic times are only comparable among themselves; they were taken
        # before this boot, so they are placed just before it, with their spacing
        if boot not in self._boot_last_mono:
            self._boot_last_mono[boot] = self.spool.held_last_mono(boot) or mono
        return int(self.guard.start_estimate_ms - 1000 - (self._boot_last_mono[boot] - mono) * 1000), CLOCK_UNSYNCED

    def _say_clock(self) -> None:
        g = self.guard
        if g.state == self._clock_said:
            return
        self._clock_said = g.state
        text = {"synced": "đồng hồ đáng tin / clock trusted",
                "unsynced": "đồng hồ chưa đáng tin, bản ghi được giữ lại chờ giờ đúng / "
                            "clock not trusted, readings held until it is",
                "stepped": "đồng hồ vừa nhảy, bản ghi được giữ lại / clock stepped, readings held"}[g.state]
        self.console.say(f"clock:{g.state}", f"{text} ({g.reason})",
                         logging.INFO if g.state == "synced" else logging.WARNING)

    def _release_held(self) -> None:
        """Clock trusted: queue every held reading, re-timed from its monotonic time, oldest first."""
        while self.spool.held_depth:
            moved = self.spool.release(self._timing_trusted, self.boot)
            if not moved:
                break
            self.console.say("clock:released", f"{moved} bản ghi đã được chỉnh giờ và gửi đi ({CLOCK_CORRECTED}) / "
                                               f"{moved} held readings re-timed and queued ({CLOCK_CORRECTED})")

    def _release_timed_out(self) -> None:
        """Clock still not trusted: readings held longer than clock_hold_max_s (or beyond MAX_HELD)
        go out with the best estimate, flagged clock_unsynced — never silently, never dropped."""
        cutoff = self.guard.monotonic() - self.opts.clock_hold_max_s
        oldest = self.spool.held_oldest()
        moved = 0
        if oldest is not None and (oldest[0] < cutoff or oldest[1] != self.boot):  # cheap test first
            moved = self.spool.release(self._timing_estimate, self.boot, mono_before=cutoff)
        # bounded like the queue: a held reading costs about HELD_ROW_BYTES of the spool's budget
        excess = self.spool.held_depth - min(MAX_HELD, self.spool.budget_bytes // HELD_ROW_BYTES)
        if excess > 0:
            moved += self.spool.release(self._timing_estimate, self.boot, limit=excess)
        if moved:
            self.console.say("clock:timeout", f"đồng hồ vẫn chưa đáng tin: {moved} bản ghi gửi với giờ ước tính "
                                              f"({CLOCK_UNSYNCED}) / clock still not trusted: {moved} readings "
                                              f"published with a best-estimate time ({CLOCK_UNSYNCED})")

    async def _clock_loop(self) -> None:
        while True:
            try:
                if self.spool.held_depth:
                    trusted = self.guard.observe()
                    self._say_clock()
                    if trusted:
                        self._release_held()
                    else:
                        self._release_timed_out()
                    self.wake.set()
            except sqlite3.Error as exc:
                log.error("moving held readings failed (%s); retrying", exc)
            await asyncio.sleep(0.5)

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
        while not self.stopping:  # belt and braces: a swallowed cancellation still ends the loop
            busy = self.inflight or self.backlog
            # not asyncio.wait_for: it can swallow the cancel that stops this loop (villagewatch/aio.py)
            await wait_event(self.wake, 0.02 if busy else 0.25)
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

    def now_ms(self) -> int:
        """For status timestamps: the wall clock, never before the floor (so it is not rejected)."""
        self.guard.observe()
        return self.guard.wall_ms() if self.guard.trusted else self.guard.best_estimate_ms(self.guard.monotonic())

    def status(self) -> dict[str, Any]:
        return status_dict(self.status_struct())

    def status_struct(self) -> GatewayStatus:
        now_ms = self.now_ms()
        oldest = self.spool.oldest_ts()
        link = self.link
        salvage = self.spool.salvage
        return GatewayStatus(
            online=True, ts=now_ms, gw=self.gw, uptime_s=round(self.guard.monotonic() - self.started, 1),
            clock=ClockStatus(**self.guard.status(), held=self.spool.held_depth,
                              released=dict(self.clock_released)),
            queue=QueueStatus(
                depth=self.spool.depth, bytes=self.spool.bytes, budget_bytes=self.spool.budget_bytes,
                oldest_ts=oldest, oldest_age_s=round((now_ms - oldest) / 1000, 1) if oldest else 0,
                inflight=len(self.inflight), replaying=bool(self.backlog),
                drops=self.spool.total_drops, drops_by_station=dict(self.spool.drops),
                write_errors=self.spool_errors, last_write_error=self.last_spool_error,
                salvage=SpoolSalvage(**salvage) if salvage else None,
                storage=self.spool.storage, storage_error=self.spool.storage_reason,
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
        now_ms = self.now_ms()
        out = {}
        for sid, st in self.stations.items():
            last = self.last_reading.get(sid)
            grace_ms = 3 * st.interval_s * 1000 / self.opts.speed + 5000
            out[sid] = StationStatus(online=bool(last and now_ms - last <= grace_ms), ts=now_ms, gw=self.gw,
                                            last_reading_ts=last, errors=dict(self.station_errors[sid]))
        return out

    def _publish_status(self, force_stations: bool = True) -> None:
        body = self.status()
        self._write_status_file(body)
        if not self.link.connected.is_set():
            return
        self._status_generation = self.link.generation
        self.link.publish(self.gw_topic, contract.encode_json(body), retain=True)
        for sid, st_body in self._station_statuses().items():
            if force_stations or self.station_online.get(sid) != st_body.online:
                self.station_online[sid] = st_body.online
                self.link.publish(contract.station_status_topic(self.site.commune, sid),
                                  encode_status(st_body), retain=True)

    def _write_status_file(self, body: dict[str, Any]) -> None:
        if self.spool.storage != "disk":
            return  # the disk refused the spool: don't fight it every 10 s (the status goes over MQTT)
        try:
            health.write_status_file(self.opts.data_dir / "status.json", body)
        except OSError as exc:
            log.debug("status file not written: %s", exc)

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
                  asyncio.create_task(self._clock_loop(), name="clock"),
                  asyncio.create_task(self._status_loop(), name="status")]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and t.exception():
                    raise t.exception()
        finally:
            self.stopping = True
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
        # a moment to publish what the last ticks spooled and to collect PUBACKs; what is not
        # acknowledged by then stays in the spool for the next start
        deadline = time.monotonic() + drain_s
        last = time.monotonic()
        while ((self.inflight or self.spool.depth) and self.link.connected.is_set()
               and time.monotonic() < deadline):
            self._take_acks()
            now = time.monotonic()
            self._fill_window(now - last)
            last = now
            await asyncio.sleep(0.02)
        self._take_acks()
        now_ms = self.now_ms()
        if self.link.connected.is_set():
            for sid in self.stations:
                self.link.publish(contract.station_status_topic(self.site.commune, sid),
                                  contract.encode_json({"online": False, "ts": now_ms, "gw": self.gw,
                                                        "last_reading_ts": self.last_reading.get(sid),
                                                        "reason": "gateway_stopped"}), retain=True)
        final = self.status() | {"online": False, "reason": "stopped"}
        self._write_status_file(final)
        await asyncio.to_thread(self.link.stop, (self.gw_topic, contract.encode_json(final)))
        self.spool.close()
