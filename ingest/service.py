"""The ingest service: consumer + pipeline + durable stores + HTTP health/metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import time
from pathlib import Path

from aiohttp import web

from ingest import health
from ingest.consumer import MqttConsumer
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.stores import DeadLetterStore, WriteSpool
from ingest.writer import make_writer
from villagewatch import lineproto, storage
from villagewatch.config import Settings
from villagewatch.sites import SiteIndex, load_sites

log = logging.getLogger("villagewatch.ingest")

STATS_MEASUREMENT = storage.IngestStats.MEASUREMENT
STATS_INTERVAL_S = 10.0


def state_dir(settings: Settings) -> Path:
    """Per-instance folder (several workers may share a data dir): spool and dead letters."""
    return settings.data_path / "ingest" / settings.ingest_client_id


class IngestService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = IngestMetrics()
        sites = load_sites(settings.sites) if settings.sites and Path(settings.sites).is_dir() else {}
        self.sites = SiteIndex(sites)
        folder = state_dir(settings)
        self.dead_letters = DeadLetterStore(folder / "deadletter.sqlite", settings.deadletter_max_bytes)
        self.spool = WriteSpool(folder / "spool.sqlite", settings.ingest_spool_max_bytes)
        self.writer = make_writer(settings)
        self.pipeline = Pipeline(self.writer, self.dead_letters, self.spool, self.sites, self.metrics,
                                 settings.batch_max_points, settings.batch_max_age_s)
        self.consumer = MqttConsumer(settings, self.pipeline, self.metrics)
        self.stop_event = asyncio.Event()
        self.http_port: int | None = None
        self._runner: web.AppRunner | None = None
        self.started = time.time()

    # ------------------------------------------------------------------ http
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    def _health(self) -> list[tuple[str, str]]:
        """Evaluate health now and publish the figures to the metrics (for /healthz and /metrics)."""
        m, spool = self.metrics, self.spool
        m.oldest_unacked_age_s = self.pipeline.oldest_unacked_age_s()
        oldest_ms = spool.oldest_created_ms
        m.spool_oldest_age_s = max(0.0, time.time() - oldest_ms / 1000) if oldest_ms is not None else 0.0
        m.spool_bytes, m.spool_max_bytes = spool.bytes, spool.max_bytes
        found = health.reasons(health.HealthInputs(
            connected=self.consumer.connected, subscribed=self.consumer.subscribed,
            oldest_unacked_age_s=m.oldest_unacked_age_s, spool_oldest_age_s=m.spool_oldest_age_s,
            spool_bytes=spool.bytes, spool_max_bytes=spool.max_bytes,
            stalled_after_s=self.settings.ingest_stalled_after_s))
        m.unhealthy = tuple(reason for reason, _ in found)
        return found

    async def _healthz(self, request: web.Request) -> web.Response:
        db = await self.writer.ping()
        found = self._health()
        m = self.metrics
        body = {"healthy": not found, "reasons": [{"reason": r, "detail": d} for r, d in found],
                "broker": self.consumer.connected, "subscribed": self.consumer.subscribed, "database": db,
                "oldest_unacked_age_s": round(m.oldest_unacked_age_s, 1),
                "spool_oldest_age_s": round(m.spool_oldest_age_s, 1),
                "stalled_after_s": self.settings.ingest_stalled_after_s,
                "spool_batches": self.spool.batches, "spool_bytes": self.spool.bytes,
                "spool_max_bytes": self.spool.max_bytes,
                "inflight": m.inflight, "received": m.received, "written": m.written,
                "sessions_lost": m.sessions_lost, "uptime_s": round(time.time() - self.started, 1)}
        return web.json_response(body, status=503 if found else 200,
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _metrics(self, request: web.Request) -> web.Response:
        store = self.dead_letters  # plain attributes: safe to read while the disk thread writes
        self.metrics.deadletter_bytes, self.metrics.deadletter_rows = store.bytes, store.rows
        self.metrics.deadletter_evicted = store.evicted
        self._health()
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # noqa: SLF001 - the bound port when 0 was asked for
        self.http_port = sock.getsockname()[1]

    # ------------------------------------------------------------------ self-metrics as data
    async def _stats_loop(self) -> None:
        """Write counters to InfluxDB measurement ingest_stats (the devices dashboard reads it)."""
        instance = f"{socket.gethostname()}:{self.settings.ingest_client_id}"
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            m, s = self.metrics, storage.IngestStats
            fields = {s.RECEIVED: float(m.received), s.WRITTEN: float(m.written),
                      s.REJECTED: float(sum(m.rejected.values())), s.SPOOL_BATCHES: float(self.spool.batches),
                      s.INFLIGHT: float(m.inflight)}
            line = lineproto.line(s.MEASUREMENT, {s.INSTANCE: instance}, fields, int(time.time() * 1000))
            with contextlib.suppress(Exception):  # self-metrics are best effort, never readings
                await self.writer.write(line.encode())

    # ------------------------------------------------------------------ lifecycle
    async def run(self, install_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop_event.set)
        await self.writer.start()
        self.pipeline.start()
        await self._start_http()
        log.info("ingest: health http://%s:%s/healthz, writing to %s db=%s", self.settings.http_host,
                 self.http_port, self.settings.influx_url, self.settings.influx_db)
        stats = loop.create_task(self._stats_loop())
        try:
            await self.consumer.start(self.stop_event)
            await self.stop_event.wait()
        finally:
            stats.cancel()
            # Commit (and so acknowledge) what was taken, then leave; anything taken after the
            # flush is committed by close() but its PUBACK may not reach the broker: it is
            # redelivered later and lands on the same point.
            await self.pipeline.flush()
            await self.consumer.stop()
            await self.pipeline.close()
            if self._runner:
                await self._runner.cleanup()
            await self.writer.close()
            self.dead_letters.close()
            self.spool.close()
