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

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from villagewatch import contract

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
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={sync.upper()}")
        self.db.execute("PRAGMA journal_size_limit=16777216")
        self.db.executescript(_SCHEMA)
        self.next_seq: dict[str, int] = dict(self.db.execute("SELECT station, next FROM seqs"))
        self.drops: dict[str, int] = dict(self.db.execute("SELECT station, count FROM drops"))
        depth, size = self.db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(payload) + length(topic) + {ROW_OVERHEAD_BYTES}), 0) FROM queue"
        ).fetchone()
        self.depth: int = depth
        self.bytes: int = size

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
