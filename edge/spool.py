"""Store-and-forward spool: every reading is on disk before it is published, gone only after PUBACK.

SQLite in WAL mode, one connection, used only by the gateway's event-loop thread.

Sync policy (docs/edge.md, "Power loss"):
- ``full`` (default): every commit fsyncs the WAL. A reading acknowledged by ``append`` survives a
  power cut. Cost: one fsync per commit; the gateway commits once per event-loop tick (all readings
  produced in that tick together), so the cost is per batch, not per reading.
- ``normal``: WAL without fsync at commit. Survives SIGKILL and crashes of the gateway (the OS still
  has the pages); a power cut may roll back the last commits (never corrupts the database).

``seq`` is a per-station counter owned by the spool and committed in the same transaction as the
reading, so a restart neither reuses nor skips a number: a gap downstream means a loss after the
gateway (or a disk-budget drop, which is counted here).

Disk budget: when the queued payload bytes exceed the budget, the OLDEST rows are deleted and the
drops are counted per station (persisted), so the newest readings are always kept.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from villagewatch import contract

log = logging.getLogger("vw.edge.spool")


class _Held(msgspec.Struct):
    metrics: dict[str, float]
    gw: str | None = None
    flags: dict[str, list[str]] = {}


_encoder = msgspec.json.Encoder()
_held_decoder = msgspec.json.Decoder(_Held)
SALVAGE_MAX_PROBES = 5_000_000
SALVAGE_ABSENT_RUN = 100_000
ROW_OVERHEAD_BYTES = 48  # id, ts, seq, station, b-tree cell: rough, keeps the budget honest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    station TEXT NOT NULL,
    ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seqs (station TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drops (station TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commune TEXT NOT NULL,
    station TEXT NOT NULL,
    mono REAL NOT NULL,
    boot TEXT NOT NULL,
    body BLOB NOT NULL
);
"""
MEMORY_BUDGET_BYTES = 32 * 1024 * 1024  # the in-memory queue when the disk cannot be used (≈ 100k readings)



def _pad_to_header_size(path: Path) -> None:
    """A file cut short (torn last pages) is refused whole by SQLite, whose header still counts the
    missing pages; zero-filling them back makes only the rows on those pages unreadable."""
    try:
        with open(path, "r+b") as fh:
            header = fh.read(100)
            if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
                return
            page_size = int.from_bytes(header[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            pages = int.from_bytes(header[28:32], "big")
            fh.seek(0, os.SEEK_END)
            if pages and fh.tell() < pages * page_size:
                fh.truncate(pages * page_size)
    except OSError:
        pass


def _read_what_survives(path: Path) -> tuple[list[tuple], dict[str, int], int | None]:
    """Queue rows readable from a damaged spool, row by row (skipping what cannot be read), its
    per-station seq counters, and how many row ids could not be read (None when not even the range
    of ids can be read)."""
    rows: list[tuple] = []
    seqs: dict[str, int] = {}
    _pad_to_header_size(path)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return rows, seqs, None
    try:
        try:
            seqs = dict(db.execute("SELECT station, next FROM seqs"))
        except sqlite3.DatabaseError:
            pass
        try:
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").fetchone()[0]
        except (sqlite3.DatabaseError, TypeError):
            try:  # the index may be gone while the table still reads
                rows = list(db.execute("SELECT id, station, ts, seq, topic, payload FROM queue ORDER BY id"))
            except sqlite3.DatabaseError:
                rows = []
            return rows, seqs, None
        # Walk down from the newest id, row by row, so one unreadable page costs only its rows; the
        # queued rows are the newest ids (older ones were deleted on PUBACK): stop after a long run
        # of ids that are simply absent. Bounded: at most SALVAGE_MAX_PROBES lookups.
        unreadable = absent_run = 0
        for rowid in range(last, max(0, last - SALVAGE_MAX_PROBES), -1):
            try:
                row = db.execute("SELECT id, station, ts, seq, topic, payload FROM queue WHERE id = ?",
                                 (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                unreadable += 1
                absent_run = 0
                continue
            if row is None:
                absent_run += 1
                if absent_run >= SALVAGE_ABSENT_RUN:
                    break
                continue
            absent_run = 0
            rows.append(row)
        rows.reverse()
        return rows, seqs, unreadable
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    station: str
    ts: int
    seq: int
    topic: str
    payload: bytes


class Spool:
    def __init__(self, path: str | Path, budget_bytes: int = 256 * 1024 * 1024, sync: str = "full",
                 memory_budget_bytes: int = MEMORY_BUDGET_BYTES):
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        self.path = Path(path)
        self.budget_bytes = int(budget_bytes)
        # what start-up found: None, or {"damaged_file", "salvaged", "lost"} (gateway status, log)
        self.salvage: dict | None = None
        # "disk", or "memory" when the disk cannot be written at start (read-only, full, no permission)
        self.storage = "disk"
        self.storage_reason: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._open(sync)
            except sqlite3.OperationalError:
                raise  # cannot open/write the file at all: not damage (below)
            except sqlite3.DatabaseError as exc:
                # An SD card torn by a power cut: never crash-loop on our own file. Set it aside, keep
                # what can still be read, and start on a fresh spool (docs/edge.md, "Spool damage").
                self._salvage(sync, exc)
        except (OSError, sqlite3.OperationalError) as exc:
            # Read-only file system, full disk, no permission: run on a bounded in-memory queue
            # rather than not at all (docs/edge.md, "Memory mode"). Readings queued there are lost
            # on a restart; the status says so.
            self._open_in_memory(sync, exc, memory_budget_bytes)
        depth, size = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(payload) + length(topic) + {ROW_OVERHEAD_BYTES}), 0) FROM queue"
        ).fetchone()
        self.depth: int = depth
        self.bytes: int = size
        self.held_depth: int = self.db.execute("SELECT COUNT(*) FROM held").fetchone()[0]

    def _open_in_memory(self, sync: str, exc: Exception, budget: int) -> None:
        self.storage = "memory"
        self.storage_reason = f"{type(exc).__name__}: {exc}"
        self.budget_bytes = min(self.budget_bytes, int(budget))
        seqs: dict[str, int] = {}
        try:  # keep numbering where the file left off, so no seq is reused downstream
            ro = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                seqs = dict(ro.execute("SELECT station, next FROM seqs"))
            finally:
                ro.close()
        except sqlite3.Error:
            pass
        self._open(sync, ":memory:")
        self.db.executemany("INSERT INTO seqs (station, next) VALUES (?, ?)", list(seqs.items()))
        self.next_seq = seqs
        log.error("spool %s cannot be used (%s): readings are kept in memory only (at most %d MB); "
                  "they are lost if the gateway restarts before they are published",
                  self.path, self.storage_reason, self.budget_bytes // 2**20)

    def _open(self, sync: str, target: str | None = None) -> None:
        self.db = sqlite3.connect(target or self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={sync.upper()}")
            self.db.execute("PRAGMA journal_size_limit=16777216")
            self.db.executescript(_SCHEMA)
            check = self.db.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            self.next_seq: dict[str, int] = dict(self.db.execute("SELECT station, next FROM seqs"))
            self.drops: dict[str, int] = dict(self.db.execute("SELECT station, count FROM drops"))
        except sqlite3.DatabaseError:
            self.db.close()
            raise

    def _salvage(self, sync: str, exc: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        damaged = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(f"{damaged}{suffix}")
        rows, seqs, lost = _read_what_survives(damaged)
        self._open(sync)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT INTO queue (station, ts, seq, topic, payload) VALUES (?, ?, ?, ?, ?)",
                            [(r[1], r[2], r[3], r[4], r[5]) for r in rows])
        for r in rows:  # never reuse a seq that may already have been published
            seqs[r[1]] = max(seqs.get(r[1], 0), r[3] + 1)
        self.db.executemany("INSERT INTO seqs (station, next) VALUES (?, ?)", list(seqs.items()))
        self.db.execute("COMMIT")
        self.next_seq = dict(seqs)
        self.salvage = {"damaged_file": str(damaged), "error": str(exc), "salvaged": len(rows), "lost": lost}
        log.error("spool %s was damaged (%s): moved to %s; %d queued readings salvaged, %s lost",
                  self.path, exc, damaged, len(rows), lost if lost is not None else "an unknown number")

    # ------------------------------------------------------------------ writing
    def append(self, readings: Sequence[contract.Reading]) -> list[contract.Reading]:
        """Give each reading its station's next ``seq`` and make them durable in one transaction."""
        if not readings:
            return []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._insert(readings)
            self.db.execute("COMMIT")
        except BaseException:
            self._undo(readings)
            raise
        return list(readings)

    def _undo(self, readings: Sequence[contract.Reading]) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        # the numbers were not committed: hand them out again
        for r in readings:
            self.next_seq[r.station] = min(self.next_seq.get(r.station, r.seq), r.seq)
        self._recount()

    def _insert(self, readings: Sequence[contract.Reading]) -> None:
        """Inside the caller's transaction: queue readings with their stations' next seq."""
        rows = []
        touched: dict[str, int] = {}
        added = 0
        for r in readings:
            r.seq = self.next_seq.get(r.station, 0)
            self.next_seq[r.station] = touched[r.station] = r.seq + 1
            payload = r.to_payload()
            topic = r.topic
            rows.append((r.station, r.ts_ms, r.seq, topic, payload))
            added += len(payload) + len(topic) + ROW_OVERHEAD_BYTES
        self.db.executemany("INSERT INTO queue (station, ts, seq, topic, payload) VALUES (?, ?, ?, ?, ?)", rows)
        self.db.executemany(
            "INSERT INTO seqs (station, next) VALUES (?, ?) ON CONFLICT(station) DO UPDATE SET next = excluded.next",
            list(touched.items()))
        self.depth += len(rows)
        self.bytes += added
        if self.bytes > self.budget_bytes:
            self._drop_oldest()

    # ------------------------------------------------------------------ held (clock not trusted)
    def hold(self, entries: Sequence[tuple[contract.Reading, float]], boot: str) -> None:
        """Keep readings whose wall time is not trusted, with their monotonic time, unpublished and
        without a seq (docs/edge.md, "Clock policy"); ``release`` queues them once re-timed."""
        if not entries:
            return
        rows = [(r.commune, r.station, mono, boot,
                 _encoder.encode({"metrics": r.metrics, "gw": r.gw, "flags": r.flags}))
                for r, mono in entries]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT INTO held (commune, station, mono, boot, body) VALUES (?, ?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.held_depth += len(rows)

    def held_oldest(self) -> tuple[float, str] | None:
        """(mono, boot) of the oldest held reading: O(1) on the primary key."""
        row = self.db.execute("SELECT mono, boot FROM held ORDER BY id LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def held_last_mono(self, boot: str) -> float | None:
        row = self.db.execute("SELECT MAX(mono) FROM held WHERE boot = ?", (boot,)).fetchone()
        return row[0] if row else None

    def release(self, timing, boot: str, limit: int = 5000, mono_before: float | None = None) -> int:
        """Move held readings (oldest first) into the queue: ``timing(mono, boot) -> (ts_ms, flag)``
        gives each its time and the flag that says how it was timed. One transaction per call."""
        sql = "SELECT id, commune, station, mono, boot, body FROM held"
        args: tuple = ()
        if mono_before is not None:
            # time-outs: this boot's readings held too long, and any of another boot
            sql += " WHERE mono < ? OR boot != ?"
            args = (mono_before, boot)
        rows = self.db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        if not rows:
            return 0
        readings = []
        for _id, commune, station, mono, boot, body in rows:
            d = _held_decoder.decode(body)
            ts, flag = timing(mono, boot)
            flags = {m: sorted({*d.flags.get(m, ()), flag}) for m in d.metrics}
            readings.append(contract.Reading(commune, station, ts, 0, d.metrics, d.gw, flags))
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._insert(readings)
            self.db.execute(f"DELETE FROM held WHERE id IN ({','.join(str(r[0]) for r in rows)})")
            self.db.execute("COMMIT")
        except BaseException:
            self._undo(readings)
            raise
        self.held_depth -= len(rows)
        return len(rows)

    def _drop_oldest(self) -> None:
        """Inside the caller's transaction: delete oldest rows until the queue fits the budget."""
        target = int(self.budget_bytes * 0.95)  # drop a little extra so we don't do this every append
        dropped: dict[str, int] = {}
        while self.bytes > target and self.depth:
            batch = self.db.execute(
                f"SELECT id, station, length(payload) + length(topic) + {ROW_OVERHEAD_BYTES} FROM queue "
                "ORDER BY id LIMIT 500").fetchall()
            cut = []
            for row_id, station, size in batch:
                if self.bytes <= target:
                    break
                cut.append(row_id)
                dropped[station] = dropped.get(station, 0) + 1
                self.bytes -= size
                self.depth -= 1
            self.db.execute(f"DELETE FROM queue WHERE id <= {cut[-1]}")
        for station, n in dropped.items():
            self.drops[station] = self.drops.get(station, 0) + n
        self.db.executemany(
            "INSERT INTO drops (station, count) VALUES (?, ?) ON CONFLICT(station) DO UPDATE SET count = excluded.count",
            [(s, self.drops[s]) for s in dropped])

    def delete(self, ids: Iterable[int]) -> int:
        """Remove published rows (PUBACK received). Unknown ids (dropped, already gone) are ignored."""
        ids = list(ids)
        if not ids:
            return 0
        removed = 0
        self.db.execute("BEGIN")
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            sizes = self.db.execute(
                f"DELETE FROM queue WHERE id IN ({marks}) "
                f"RETURNING length(payload) + length(topic) + {ROW_OVERHEAD_BYTES}", chunk).fetchall()
            removed += len(sizes)
            self.bytes -= sum(s for (s,) in sizes)
        self.db.execute("COMMIT")
        self.depth -= removed
        return removed

    # ------------------------------------------------------------------ reading
    def fetch(self, after_id: int, limit: int, upto_id: int | None = None) -> list[Row]:
        """Rows with ``after_id < id [<= upto_id]``, oldest first."""
        if upto_id is None:
            cur = self.db.execute("SELECT id, station, ts, seq, topic, payload FROM queue WHERE id > ? "
                                  "ORDER BY id LIMIT ?", (after_id, limit))
        else:
            cur = self.db.execute("SELECT id, station, ts, seq, topic, payload FROM queue WHERE id > ? AND id <= ? "
                                  "ORDER BY id LIMIT ?", (after_id, upto_id, limit))
        return [Row(*r) for r in cur]

    def max_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM queue").fetchone()[0]

    def newest_ts(self) -> int | None:
        row = self.db.execute("SELECT ts FROM queue ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def oldest_ts(self) -> int | None:
        # by id, not MIN(ts): O(1) on the primary key, and rows are appended in time order
        row = self.db.execute("SELECT ts FROM queue ORDER BY id LIMIT 1").fetchone()
        return row[0] if row else None

    @property
    def total_drops(self) -> int:
        return sum(self.drops.values())

    def _recount(self) -> None:
        self.depth, self.bytes = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(payload) + length(topic) + {ROW_OVERHEAD_BYTES}), 0) FROM queue"
        ).fetchone()

    def close(self) -> None:
        self.db.close()
