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

from villagewatch import contract

log = logging.getLogger("vw.edge.spool")
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
"""


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
    def __init__(self, path: str | Path, budget_bytes: int = 256 * 1024 * 1024, sync: str = "full"):
        if sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = int(budget_bytes)
        # what start-up found: None, or {"damaged_file", "salvaged", "lost"} (gateway status, log)
        self.salvage: dict | None = None
        try:
            self._open(sync)
        except sqlite3.DatabaseError as exc:
            # An SD card torn by a power cut: never crash-loop on our own file. Set it aside, keep
            # what can still be read, and start on a fresh spool (docs/edge.md, "Spool damage").
            self._salvage(sync, exc)
        depth, size = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(payload) + length(topic) + {ROW_OVERHEAD_BYTES}), 0) FROM queue"
        ).fetchone()
        self.depth: int = depth
        self.bytes: int = size

    def _open(self, sync: str) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
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
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO queue (station, ts, seq, topic, payload) VALUES (?, ?, ?, ?, ?)", rows)
            self.db.executemany(
                "INSERT INTO seqs (station, next) VALUES (?, ?) ON CONFLICT(station) DO UPDATE SET next = excluded.next",
                list(touched.items()))
            self.depth += len(rows)
            self.bytes += added
            if self.bytes > self.budget_bytes:
                self._drop_oldest()
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            # the numbers were not committed: hand them out again
            for r in readings:
                self.next_seq[r.station] = min(self.next_seq.get(r.station, r.seq), r.seq)
            self._recount()
            raise
        return list(readings)

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
