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

from villagewatch.contract import MAX_PAYLOAD_BYTES

DEFAULT_DEADLETTER_MAX_BYTES = 256 * 1024**2
# bytes a row costs beyond its topic, payload, reason and detail (SQLite cell, index, page slack)
ROW_OVERHEAD_BYTES = 64
# a payload above the contract's limit is kept as its first this-many bytes plus its size: what a
# technician needs to see which device misbehaves, without letting one message take the budget
STORED_PAYLOAD_MAX_BYTES = MAX_PAYLOAD_BYTES


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
    reason: str  # all reasons of the message, comma-separated, first one first
    detail: str
    size: int = 0  # original payload size; larger than len(payload) when stored truncated

    @property
    def reasons(self) -> list[str]:
        return self.reason.split(",")

    @property
    def truncated(self) -> bool:
        return self.size > len(self.payload)


_COST_SQL = ("length(CAST(topic AS BLOB)) + length(payload) + length(CAST(reason AS BLOB))"
             f" + length(CAST(detail AS BLOB)) + {ROW_OVERHEAD_BYTES}")


def _row_cost(topic: str, payload: bytes, reason: str, detail: str) -> int:
    return (len(topic.encode(errors="surrogatepass")) + len(payload) + len(reason.encode())
            + len(detail.encode(errors="surrogatepass")) + ROW_OVERHEAD_BYTES)


class DeadLetterStore:
    """Rejected messages: topic, raw payload (bytes, any content), reasons, detail, time.

    One row per rejected message. Bounded by ``max_bytes`` (content bytes of the rows): at the
    bound the *oldest* rows are evicted and counted (``evicted``, ``evicted_bytes``) — rejected
    input is evidence for a technician, not a reading, and the newest tells what is wrong now.
    A payload larger than the contract allows is stored truncated, with its original size.
    Deleted rows free pages SQLite reuses, so the file stays near the budget; it never grows
    with the flood.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.db = _connect(self.path)
        # a flood's transactions must not leave a big write-ahead log behind
        wal_limit = min(max_bytes // 4, 4 * 1024**2)
        self.db.execute(f"PRAGMA journal_size_limit={wal_limit}")
        self.db.execute(f"PRAGMA wal_autocheckpoint={max(16, wal_limit // 4096)}")
        self.db.execute("""CREATE TABLE IF NOT EXISTS rejected (
            id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL,
            payload BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL)""")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(rejected)")}
        if "size" not in columns:  # stores written before the budget: size was the payload's
            self.db.execute("ALTER TABLE rejected ADD COLUMN size INTEGER")
            self.db.execute("ALTER TABLE rejected ADD COLUMN cost INTEGER")
            self.db.execute(f"UPDATE rejected SET size = length(payload), cost = {_COST_SQL}")
        self.db.execute("CREATE INDEX IF NOT EXISTS rejected_reason ON rejected(reason)")
        self.db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self.rows, self.bytes = self.db.execute(
            "SELECT count(*), coalesce(sum(cost), 0) FROM rejected").fetchone()
        # plain attributes (not queries): /metrics reads them while the disk thread writes
        counters = dict(self.db.execute("SELECT name, value FROM counters"))
        self.evicted: int = counters.get("evicted", 0)  # messages dropped at the budget, ever
        self.evicted_bytes: int = counters.get("evicted_bytes", 0)

    def add_many(self, rows: Iterable[tuple[int, str, bytes, str, str]]) -> int:
        """Store rejected messages (received_ms, topic, payload, reasons, detail), oldest first."""
        prepared = []
        for received_ms, topic, payload, reason, detail in rows:
            size = len(payload)
            stored = bytes(payload[:STORED_PAYLOAD_MAX_BYTES])
            prepared.append((received_ms, topic, stored, reason, detail, size,
                             _row_cost(topic, stored, reason, detail)))
        if not prepared:
            return 0
        evicted = evicted_bytes = 0
        incoming = sum(r[-1] for r in prepared)
        # more than the whole budget at once: the oldest of the incoming go first, same policy
        while len(prepared) > 1 and incoming > self.max_bytes:
            incoming -= prepared[0][-1]
            evicted, evicted_bytes = evicted + 1, evicted_bytes + prepared[0][-1]
            prepared.pop(0)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # evict before inserting, so the freed pages hold the new rows and the file does not grow
            need = self.bytes + incoming - self.max_bytes
            freed = gone = 0
            last_id = None
            if need > 0:
                for row_id, cost in self.db.execute("SELECT id, cost FROM rejected ORDER BY id"):
                    if freed >= need:
                        break
                    last_id, freed, gone = row_id, freed + cost, gone + 1
                if last_id is not None:
                    self.db.execute("DELETE FROM rejected WHERE id <= ?", (last_id,))
            evicted, evicted_bytes = evicted + gone, evicted_bytes + freed
            if evicted:
                for name, value in (("evicted", evicted), ("evicted_bytes", evicted_bytes)):
                    self.db.execute("INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) "
                                    "DO UPDATE SET value = value + excluded.value", (name, value))
            self.db.executemany(
                "INSERT INTO rejected(received_ms, topic, payload, reason, detail, size, cost) "
                "VALUES (?,?,?,?,?,?,?)", prepared)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.rows += len(prepared) - gone
        self.bytes += incoming - freed
        self.evicted += evicted
        self.evicted_bytes += evicted_bytes
        return len(prepared)

    def list(self, limit: int = 50, reason: str | None = None, topic_prefix: str | None = None) -> list[DeadLetter]:
        q = "SELECT id, received_ms, topic, payload, reason, detail, size FROM rejected"
        where, args = [], []
        if reason:
            where.append("(',' || reason || ',') LIKE ?")
            args.append(f"%,{reason},%")
        if topic_prefix:
            where.append("topic LIKE ?")
            args.append(topic_prefix.replace("%", r"\%") + "%")
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [DeadLetter(*row) for row in self.db.execute(q, args)]

    def count(self, reason: str | None = None) -> int:
        """Stored messages (with ``reason`` among their reasons)."""
        if reason:
            return self.db.execute("SELECT count(*) FROM rejected WHERE (',' || reason || ',') LIKE ?",
                                   (f"%,{reason},%",)).fetchone()[0]
        return self.db.execute("SELECT count(*) FROM rejected").fetchone()[0]

    def counts_by_reason(self) -> dict[str, int]:
        """Stored messages per reason; a message with several reasons counts under each."""
        counts: dict[str, int] = {}
        for reasons, n in self.db.execute("SELECT reason, count(*) FROM rejected GROUP BY reason"):
            for r in reasons.split(","):
                counts[r] = counts.get(r, 0) + n
        return counts

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
        # when the oldest batch was spooled (ms), None when empty: /healthz's "stalled". A plain
        # attribute, kept by the disk thread, read by the event loop
        self.oldest_created_ms: int | None = None
        self._refresh_oldest()

    def _refresh_oldest(self) -> None:
        row = self.db.execute("SELECT created_ms FROM batches ORDER BY id LIMIT 1").fetchone()
        self.oldest_created_ms = row[0] if row else None

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
        self._refresh_oldest()

    def oldest(self) -> tuple[int, bytes, int] | None:
        row = self.db.execute("SELECT id, body, points FROM batches ORDER BY id LIMIT 1").fetchone()
        return (row[0], row[1], row[2]) if row else None

    def remove(self, batch_id: int) -> None:
        row = self.db.execute("SELECT length(body), points FROM batches WHERE id=?", (batch_id,)).fetchone()
        if row is None:
            return
        self.db.execute("DELETE FROM batches WHERE id=?", (batch_id,))
        self.batches, self.bytes, self.points = self.batches - 1, self.bytes - row[0], self.points - row[1]
        self._refresh_oldest()

    def close(self) -> None:
        self.db.close()
