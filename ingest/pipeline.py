"""Validate → batch → write-or-spool, and tell the consumer when each message is durable.

Invariant (docs/protocol.md): a message is acknowledged to the broker only after every part of it
is durable — its good readings written to InfluxDB or committed to the disk spool, its bad parts
committed to the dead-letter store. A crash before that means the broker redelivers it, and a
redelivered reading lands on the same point (same series, same timestamp).

Memory is bounded by: the broker's inflight window (MQTT v5 Receive Maximum), the batch size, and
the number of concurrent commits. Beyond that, while InfluxDB is down, batches go to the spool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ingest.metrics import IngestMetrics
from ingest.stores import DeadLetterStore, WriteSpool
from ingest.writer import WriteError
from villagewatch import contract, lineproto, status, storage
from villagewatch.sites import SiteIndex

log = logging.getLogger("villagewatch.ingest")

DeadRow = tuple[int, str, bytes, str, str]  # received_ms, topic, payload, reasons, detail
# one message can carry thousands of rejections (unknown metric names): its row keeps the
# first details up to this size and says how many more there were
DEAD_DETAIL_MAX_CHARS = 2000
# dead payload bytes after which a batch is committed: bounds memory and each SQLite transaction
DEAD_BATCH_MAX_BYTES = 4 * 1024**2


class Writer:  # protocol of ingest.writer.*
    async def write(self, body: bytes) -> None: ...
    async def ping(self) -> bool: ...


@dataclass
class Batch:
    # encoded line protocol: encoding at intake makes a line that cannot be encoded (a lone
    # UTF-16 surrogate in a flag or status string) fail with its own message, not its batch
    lines: list[bytes] = field(default_factory=list)
    # (topic, payload) of each line, same index: a line the database refuses is dead-lettered
    # as the message it came from
    sources: list[tuple[str, bytes]] = field(default_factory=list)
    dead: list[DeadRow] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)  # acknowledgement tokens (MQTT packet ids)
    messages: int = 0
    started: float = 0.0
    dead_bytes: int = 0


def status_line(info: contract.TopicInfo, body: dict[str, Any]) -> str:
    """Status payload → point; storage.status_fields is the rule (nested objects flattened).

    Raises ValueError naming the field when a field of the contract (villagewatch/status.py) has
    the wrong type: stored, it would change the type of its InfluxDB field and be refused later."""
    (status.as_gateway if info.kind == "gateway_status" else status.as_station)(body)
    fields = storage.status_fields(body)
    if info.kind == "gateway_status":
        gw = storage.GatewayStatus
        tags = {gw.COMMUNE: info.commune, gw.GATEWAY: info.gateway or ""}
        measurement = gw.MEASUREMENT
    else:
        st = storage.StationStatus
        tags = {st.COMMUNE: info.commune, st.STATION: info.station or ""}
        measurement = st.MEASUREMENT
    return lineproto.line(measurement, tags, fields, body["ts"])


class Pipeline:
    def __init__(self, writer: Writer, dead_letters: DeadLetterStore, spool: WriteSpool,
                 sites: SiteIndex | None = None, metrics: IngestMetrics | None = None,
                 batch_max_points: int = 5000, batch_max_age_s: float = 0.5, max_concurrent_writes: int = 3,
                 clock: Callable[[], float] = time.time,
                 on_durable: Callable[[list[Any]], None] | None = None):
        self.writer = writer
        self.dead_letters = dead_letters
        self.spool = spool
        self.sites = sites or SiteIndex()
        self.metrics = metrics or IngestMetrics()
        self.batch_max_points = batch_max_points
        self.batch_max_age_s = batch_max_age_s
        self.clock = clock
        # called with the tokens of a batch once all of it is durable: the consumer acks them
        self.on_durable = on_durable or (lambda tokens: None)
        self._batch = Batch()
        self._msg_dead_start, self._msg_hidden = 0, 0  # dead rows of the message being taken
        self._wake = asyncio.Event()
        self._write_slots = asyncio.Semaphore(max_concurrent_writes)
        self._commits: set[asyncio.Task] = set()
        # first-message time (monotonic) of each batch cut but not yet durable: /healthz "stalled"
        self._committing_started: dict[int, float] = {}
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-disk")  # SQLite: one thread
        self._tasks: list[asyncio.Task] = []
        self.db_up = True
        self._spool_wake = asyncio.Event()
        self.metrics.spool_batches = spool.batches

    # ------------------------------------------------------------------ intake
    def submit(self, topic: str, payload: bytes, token: Any = None) -> None:
        """Take one message. ``token`` (if not None) is handed to ``on_durable`` once it is durable.

        Synchronous and allocation-light on purpose: this runs once per message at tens of
        thousands of messages per second.
        """
        m = self.metrics
        m.received += 1
        now_ms = int(self.clock() * 1000)
        batch = self._batch
        if not batch.messages:
            batch.started = time.monotonic()
        batch.messages += 1
        if token is not None:
            batch.tokens.append(token)
        lines_before, dead_before = len(batch.lines), len(batch.dead)
        self._msg_dead_start, self._msg_hidden = dead_before, 0
        try:
            self._take(batch, topic, payload, now_ms)
        except UnicodeEncodeError as exc:
            # a string of the message cannot be stored (lone surrogate): this message only
            del batch.lines[lines_before:]
            del batch.sources[lines_before:]
            del batch.dead[dead_before:]
            self._msg_hidden = 0
            self._reject(batch, now_ms, topic, payload, contract.R_BAD_UTF8,
                         f"a string cannot be encoded as UTF-8 for storage: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug must not turn into a lost reading
            # The message will be acknowledged with its batch, so it must be durable somewhere:
            # keep it in the dead-letter store, whole, to be replayed once the bug is fixed.
            log.exception("internal error on a message from %s; kept in the dead-letter store", topic)
            del batch.lines[lines_before:]
            del batch.sources[lines_before:]
            del batch.dead[dead_before:]
            self._msg_hidden = 0
            self._reject(batch, now_ms, topic, payload, contract.R_INTERNAL, f"{type(exc).__name__}: {exc}")
        if self._msg_hidden:
            row = batch.dead[-1]
            batch.dead[-1] = (*row[:4], f"{row[4]}; … and {self._msg_hidden} more")
        if len(batch.dead) > dead_before:
            batch.dead_bytes += len(payload)
        m.inflight += 1
        if (len(batch.lines) + len(batch.dead) >= self.batch_max_points
                or batch.dead_bytes >= min(DEAD_BATCH_MAX_BYTES, self.dead_letters.max_bytes // 8)):
            self._cut()
        elif batch.messages == 1:
            self._wake.set()

    def _take(self, batch: Batch, topic: str, payload: bytes, now_ms: int) -> None:
        """Decode one message into points and/or dead letters of ``batch``."""
        m = self.metrics
        try:
            info = contract.parse_topic(topic)
        except contract.TopicError as exc:
            self._reject(batch, now_ms, topic, payload, contract.R_BAD_TOPIC, str(exc))
        else:
            if info.kind == "telemetry":
                decoded = contract.decode_telemetry(info.commune, info.station or "", payload, now_ms)
                if decoded.reading is not None:
                    kind = self.sites.kind(info.commune, decoded.reading.station)
                    batch.lines.append(lineproto.telemetry_line(decoded.reading, kind).encode())
                    batch.sources.append((topic, payload))
                    m.readings += 1
                for rej in decoded.rejections:
                    detail = rej.detail if rej.metric is None else f"[{rej.metric}] {rej.detail}"
                    self._reject(batch, now_ms, topic, payload, rej.reason, detail)
            elif info.kind in ("station_status", "gateway_status"):
                try:
                    body = contract.decode_status(payload)
                    if body.get("reason") == contract.STATUS_REASON_LWT:
                        # a Last Will is composed when the client connects: its ts is the connect
                        # time, not when the device went silent. Stored at the time it arrives.
                        body["ts"] = now_ms
                        if info.kind == "gateway_status" and info.gateway:
                            # the gateway cannot say goodbye for its stations: they are offline too
                            for st in self.sites.stations_of_gateway(info.commune, info.gateway):
                                batch.lines.append(status_line(
                                    contract.TopicInfo("station_status", info.commune, station=st.id),
                                    {"online": False, "ts": now_ms, "gw": info.gateway,
                                     "reason": "gateway_offline"}).encode())
                                batch.sources.append((topic, payload))
                    batch.lines.append(status_line(info, body).encode())
                    batch.sources.append((topic, payload))
                    m.status_points += 1
                except (ValueError, TypeError) as exc:
                    reason = getattr(exc, "reason", contract.R_BAD_STATUS)  # contract.StatusError
                    self._reject(batch, now_ms, topic, payload, reason, str(exc))
            # other contract topics (alerts) are not ingest's to store: acknowledged as they are

    def _reject(self, batch: Batch, now_ms: int, topic: str, payload: bytes, reason: str, detail: str) -> None:
        """Record a reason against the message being taken: one dead-letter row per message."""
        self.metrics.rejected[reason] += 1
        if not detail.isascii():
            # SQLite refuses a str it cannot encode: a lone surrogate quoted in a detail would make
            # the dead-letter commit fail, and be retried, forever
            detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(batch.dead) > self._msg_dead_start:  # this message already has a row: add to it
            received_ms, topic, payload, reasons, details = batch.dead[-1]
            if reason not in reasons.split(","):
                reasons = f"{reasons},{reason}"
            if len(details) < DEAD_DETAIL_MAX_CHARS:
                details = f"{details}; {reason}: {detail}"[:DEAD_DETAIL_MAX_CHARS]
            else:
                self._msg_hidden += 1
            batch.dead[-1] = (received_ms, topic, payload, reasons, details)
        else:
            batch.dead.append((now_ms, topic, bytes(payload), reason, f"{reason}: {detail}"[:DEAD_DETAIL_MAX_CHARS]))

    # ------------------------------------------------------------------ batching
    def cut(self) -> None:
        """Commit the batch being filled now, whatever its size or age."""
        self._cut()

    def oldest_unacked_age_s(self) -> float:
        """Seconds since the oldest message not yet durable was received; 0 when there is none."""
        starts = list(self._committing_started.values())
        if self._batch.messages:
            starts.append(self._batch.started)
        return max(0.0, time.monotonic() - min(starts)) if starts else 0.0

    def _cut(self) -> None:
        batch, self._batch = self._batch, Batch()
        if batch.messages:
            self._committing_started[id(batch)] = batch.started
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)

    async def _age_flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._batch.messages:
                remaining = self.batch_max_age_s - (time.monotonic() - self._batch.started)
                if remaining <= 0:
                    self._cut()
                    break
                await asyncio.sleep(remaining)

    async def _commit(self, batch: Batch) -> None:
        """Make a batch durable, then release its acknowledgements. Retries until it succeeds."""
        delay = 0.2
        async with self._write_slots:
            while True:
                try:
                    if batch.dead:
                        await self._on_disk(self.dead_letters.add_many, batch.dead)
                        batch.dead = []
                    if batch.lines:
                        await self._write_or_spool(batch.lines, batch.sources)
                        batch.lines = []
                        batch.sources = []
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - never ack, never drop: log and retry
                    log.exception("could not make a batch durable; retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
        self._committing_started.pop(id(batch), None)
        self.metrics.inflight -= batch.messages
        if batch.tokens:
            self.metrics.acked += len(batch.tokens)
            self.on_durable(batch.tokens)

    async def _write_or_spool(self, lines: list[bytes], sources: list[tuple[str, bytes]]) -> None:
        body = b"\n".join(lines)
        if self.db_up and not self.spool.batches:
            for attempt in range(3):
                try:
                    await self._timed_write(body, len(lines))
                    return
                except WriteError as exc:
                    if not exc.retryable:
                        await self._bisect(lines, sources, exc)
                        return
                    self.metrics.write_errors += 1
                    log.warning("write failed (attempt %d): %s", attempt + 1, exc)
                    if attempt < 2:
                        await asyncio.sleep(0.1 * (attempt + 1))
            self._set_db_up(False)
        await self._on_disk(self.spool.put, body, len(lines))
        self.metrics.spooled_points += len(lines)
        self.metrics.spool_batches = self.spool.batches
        self._spool_wake.set()

    async def _timed_write(self, body: bytes, points: int) -> None:
        t0 = time.perf_counter()
        await self.writer.write(body)
        self.metrics.write_seconds.observe(time.perf_counter() - t0)
        self.metrics.batch_points.observe(points)
        self.metrics.written += points
        self._set_db_up(True)

    async def _bisect(self, lines: list[bytes], sources: list[tuple[str, bytes]] | None,
                      error: WriteError) -> None:
        """The database refused part of a batch: find the refused lines, write the rest.

        InfluxDB 1.x writes the valid points of a refused batch anyway; re-writing them is harmless
        (same series and time), so splitting in halves until single lines is safe. ``sources``
        (topic, payload per line) is None for spooled batches: their refused line is kept as is.
        A retryable error on the way is raised: the caller retries (rewrites are harmless).
        """
        if len(lines) == 1:
            now_ms = int(self.clock() * 1000)
            self.metrics.rejected[contract.R_DB_REJECTED] += 1
            topic, payload = sources[0] if sources else ("influxdb:/write", lines[0])
            detail = str(error) if not sources else f"{error} | line: {lines[0][:1000].decode(errors='replace')}"
            await self._on_disk(self.dead_letters.add_many, [
                (now_ms, topic, payload, contract.R_DB_REJECTED, detail)])
            return
        mid = len(lines) // 2
        for lo, hi in ((0, mid), (mid, len(lines))):
            part = lines[lo:hi]
            try:
                await self._timed_write(b"\n".join(part), len(part))
            except WriteError as exc:
                if exc.retryable:
                    raise
                await self._bisect(part, sources[lo:hi] if sources else None, exc)

    def _set_db_up(self, up: bool) -> None:
        if up != self.db_up:
            log.warning("InfluxDB is %s", "reachable again" if up else "unavailable: spooling batches to disk")
        self.db_up = up
        self.metrics.db_up = up

    async def _drain_spool(self) -> None:
        """Write spooled batches back, oldest first, with backoff while the database is down.

        Nothing may end this loop but cancellation: a dead drainer would strand the spool."""
        delay = 0.25
        while True:
            try:
                delay = await self._drain_one(delay)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - log, back off, keep draining
                log.exception("spool drain failed; retrying in %.1f s", delay)
                self.metrics.write_errors += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _drain_one(self, delay: float) -> float:
        """One step of the drainer; returns the next backoff delay."""
        item = await self._on_disk(self.spool.oldest)
        if item is None:
            if not self.db_up and await self.writer.ping():
                self._set_db_up(True)
            if self.db_up:
                self._spool_wake.clear()
                await self._spool_wake.wait()
                return delay
            await asyncio.sleep(delay)
            return min(delay * 2, 5.0)
        batch_id, body, points = item
        try:
            await self._timed_write(body, points)
        except WriteError as exc:
            if exc.retryable:
                self._set_db_up(False)
                self.metrics.write_errors += 1
                await asyncio.sleep(delay)
                return min(delay * 2, 5.0)
            # refused lines go to the dead-letter store; a retryable error in there is raised
            # and retried by the loop above (re-writing lines is harmless: same points)
            await self._bisect(body.split(b"\n"), None, exc)
        await self._on_disk(self.spool.remove, batch_id)
        self.metrics.spool_batches = self.spool.batches
        return 0.25

    async def _on_disk(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._disk, fn, *args)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._age_flusher()), loop.create_task(self._drain_spool())]

    async def flush(self) -> None:
        """Commit everything taken so far (used at shutdown and by tests)."""
        self._cut()
        while self._commits:
            await asyncio.gather(*list(self._commits))

    async def close(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._disk.shutdown(wait=True)

