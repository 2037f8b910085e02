"""Durable stores of the ingest: the dead-letter store and the write spool (SQLite).

Both commit with ``synchronous=FULL`` before the broker is acknowledged: a message is only
acknowledged once it is written to InfluxDB, spooled here, or recorded here as rejected.
One transaction per batch keeps the fsync cost to one per few thousand points.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_ms: int
    topic: str
    payload: bytes
    reason: str
    detail: str


class DeadLetterStore:
    """Rejected messages: topic, raw payload (bytes, any content), reason, detail, time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = _connect(self.path)
        self.db.execute("""CREATE TABLE IF NOT EXISTS rejected (
            id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL,
            payload BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS rejected_reason ON rejected(reason)")

    def add_many(self, rows: Iterable[tuple[int, str, bytes, str, str]]) -> int:
        rows = list(rows)
        if rows:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO rejected(received_ms, topic, payload, reason, detail) VALUES (?,?,?,?,?)", rows)
            self.db.execute("COMMIT")
        return len(rows)

    def list(self, limit: int = 50, reason: str | None = None, topic_prefix: str | None = None) -> list[DeadLetter]:
        q = "SELECT id, received_ms, topic, payload, reason, detail FROM rejected"
        where, args = [], []
        if reason:
            where.append("reason = ?")
            args.append(reason)
        if topic_prefix:
            where.append("topic LIKE ?")
            args.append(topic_prefix.replace("%", r"\%") + "%")
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [DeadLetter(*row) for row in self.db.execute(q, args)]

    def count(self, reason: str | None = None) -> int:
        if reason:
            return self.db.execute("SELECT count(*) FROM rejected WHERE reason = ?", (reason,)).fetchone()[0]
        return self.db.execute("SELECT count(*) FROM rejected").fetchone()[0]

    def counts_by_reason(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT reason, count(*) FROM rejected GROUP BY reason"))

    def close(self) -> None:
        self.db.close()


class WriteSpool:
    """Line-protocol batches that could not be written yet; drained oldest first.

    Bounded by ``max_bytes``. Overflow policy: when full, the *oldest* batches are dropped and
    counted (``dropped_points``), never the newest — the same policy as the edge spool. With the
    default 2 GiB that is days of a commune's data; running out means the database has been down
    far longer than any alert would let pass unnoticed.
    """

    def __init__(self, path: str | Path, max_bytes: int = 2 * 1024**3):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.db = _connect(self.path)
        self.db.execute("""CREATE TABLE IF NOT EXISTS batches (
            id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, points INTEGER NOT NULL, body BLOB NOT NULL)""")
        self.db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        row = self.db.execute("SELECT count(*), coalesce(sum(length(body)),0), coalesce(sum(points),0) FROM batches").fetchone()
        self.batches, self.bytes, self.points = row

    @property
    def dropped_points(self) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name='dropped_points'").fetchone()
        return row[0] if row else 0

    def put(self, body: bytes, points: int) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            while self.batches and self.bytes + len(body) > self.max_bytes:
                oldest = self.db.execute("SELECT id, length(body), points FROM batches ORDER BY id LIMIT 1").fetchone()
                self.db.execute("DELETE FROM batches WHERE id=?", (oldest[0],))
                self.db.execute("INSERT INTO counters(name, value) VALUES('dropped_points', ?) "
                                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (oldest[2],))
                self.batches, self.bytes, self.points = self.batches - 1, self.bytes - oldest[1], self.points - oldest[2]
            self.db.execute("INSERT INTO batches(created_ms, points, body) VALUES (?,?,?)",
                            (int(time.time() * 1000), points, body))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.batches, self.bytes, self.points = self.batches + 1, self.bytes + len(body), self.points + points

    def oldest(self) -> tuple[int, bytes, int] | None:
        row = self.db.execute("SELECT id, body, points FROM batches ORDER BY id LIMIT 1").fetchone()
        return (row[0], row[1], row[2]) if row else None

    def remove(self, batch_id: int) -> None:
        row = self.db.execute("SELECT length(body), points FROM batches WHERE id=?", (batch_id,)).fetchone()
        if row is None:
            return
        self.db.execute("DELETE FROM batches WHERE id=?", (batch_id,))
        self.batches, self.bytes, self.points = self.batches - 1, self.bytes - row[0], self.points - row[1]

    def close(self) -> None:
        self.db.close()
