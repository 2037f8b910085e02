"""Alert lifecycle persisted in SQLite: pending → firing → acknowledged → resolved, with who, when
and a note, plus a notification outbox.

The outbox row is written in the same transaction as the transition that causes it, and marked sent
only after the channel accepted it: a restart resends what was not sent and never what was (a crash
between a channel's "OK" and the commit can still repeat one message — at-least-once). Open alerts
survive a restart; the engine resumes them as firing, so they are neither re-fired nor re-notified.

Redelivered readings are harmless (the service acknowledges a QoS 1 message only after its
transitions are committed here, so after a crash the broker delivers again readings whose
transitions may already be recorded, to an engine that lost its in-memory state). ``apply`` is
therefore idempotent per episode, in event time: a ``firing`` whose span [since, ts] overlaps an
alert of the same key already recorded (open, or resolved at or after ``since``) is the same episode
again and changes nothing; a ``resolved`` dated before the open alert fired is a replay of older
readings and changes nothing. A genuinely separate episode (e.g. a late reading from before a
recorded alert) does not overlap and is recorded.

Re-notify and escalation count on the service's clock from when people were first told
(``notified_ms``), not from the data's timestamps: an alert fired from readings an edge gateway
spooled for an hour is not escalated the moment it arrives, and a station whose clock runs ahead
does not hold its notifications back. Once an alert is escalated, reminders go to both lists.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rules.engine import Transition

OPEN_STATES = ("firing", "acknowledged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL, rule TEXT NOT NULL, pack TEXT NOT NULL, commune TEXT NOT NULL, station TEXT NOT NULL,
    station_name_vi TEXT, station_name_en TEXT, metric TEXT, kind TEXT, severity TEXT NOT NULL,
    state TEXT NOT NULL, value REAL, "limit" REAL, regulation TEXT, "table" TEXT, "column" TEXT,
    averaging TEXT, unverified INTEGER, message_vi TEXT, message_en TEXT,
    started_ms INTEGER, fired_ms INTEGER, acked_ms INTEGER, acked_by TEXT, ack_note TEXT,
    resolved_ms INTEGER, resolved_by TEXT, resolve_note TEXT, last_value REAL,
    last_notified_ms INTEGER, escalated_ms INTEGER, notified_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts(key) WHERE state IN ('firing', 'acknowledged');
CREATE INDEX IF NOT EXISTS alerts_fired ON alerts(fired_ms);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
    state TEXT NOT NULL, who TEXT, note TEXT, value REAL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, event TEXT NOT NULL,
    channel TEXT NOT NULL, target TEXT, created_ms INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL DEFAULT 0, sent_ms INTEGER, last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(status, next_ms);
CREATE INDEX IF NOT EXISTS alerts_key ON alerts(key, started_ms);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(ValueError):
    """A person asked for something the alert's state does not allow (e.g. acknowledge a resolved alert)."""


class AlertStore:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(alerts)")}
        if "notified_ms" not in columns:  # state files written before the column existed
            self.db.execute("ALTER TABLE alerts ADD COLUMN notified_ms INTEGER")
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def _tx(self):
        return _Tx(self)

    # ------------------------------------------------------------------ engine transitions
    def open_keys(self) -> list[str]:
        rows = self.db.execute("SELECT key FROM alerts WHERE state IN ('firing','acknowledged')").fetchall()
        return [r["key"] for r in rows]

    def apply(self, tr: Transition, targets: Iterable[tuple[str, str]] = (), now_ms: int | None = None) -> dict | None:
        """Record an engine transition; returns the alert (as published) or None if nothing changed.

        ``now_ms`` is the service's clock (default: the transition's time): notifications are queued
        for then, and re-notify/escalation count from then."""
        now = tr.ts_ms if now_ms is None else now_ms
        with self._tx():
            row = self.db.execute("SELECT * FROM alerts WHERE key=? AND state IN ('firing','acknowledged')",
                                  (tr.key,)).fetchone()
            if tr.state == "firing":
                if row is not None:
                    return None  # already open (e.g. restored after a restart): no duplicate
                if self._recorded_episode(tr):
                    return None  # redelivered readings of an episode already recorded and resolved
                r = tr.rule
                cur = self.db.execute(
                    """INSERT INTO alerts (key, rule, pack, commune, station, station_name_vi, station_name_en,
                       metric, kind, severity, state, value, "limit", regulation, "table", "column", averaging,
                       unverified, message_vi, message_en, started_ms, fired_ms, last_value, last_notified_ms,
                       notified_ms)
                       VALUES (?,?,?,?,?,?,?,?,?,?,'firing',?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                    (tr.key, r.id, r.pack, tr.commune, tr.station, tr.station_name_vi, tr.station_name_en,
                     r.metric, r.kind, r.severity, tr.value, tr.limit, r.regulation, r.table, r.column,
                     r.averaging, int(r.unverified), tr.message_vi, tr.message_en, tr.since_ms, tr.ts_ms,
                     tr.value, now, now))
                alert_id = cur.lastrowid
                self._event(alert_id, tr.ts_ms, "firing", "hệ thống", "", tr.value)
                self._enqueue(alert_id, "firing", targets, now)
                return self.get(alert_id)
            if row is None:
                return None  # resolved by a person already, or never opened here
            if row["fired_ms"] is not None and tr.ts_ms < row["fired_ms"]:
                return None  # a replay of readings older than the firing (redelivery after a crash)
            self.db.execute("UPDATE alerts SET state='resolved', resolved_ms=?, resolved_by='hệ thống', "
                            "resolve_note=?, last_value=? WHERE id=?",
                            (tr.ts_ms, tr.message_vi, tr.value, row["id"]))
            self._event(row["id"], tr.ts_ms, "resolved", "hệ thống", tr.message_vi, tr.value)
            self._enqueue(row["id"], "resolved", targets, now)
            return self.get(row["id"])

    def _recorded_episode(self, tr: Transition) -> bool:
        since = tr.since_ms if tr.since_ms else tr.ts_ms
        row = self.db.execute(
            "SELECT id FROM alerts WHERE key=? AND started_ms<=? AND (resolved_ms IS NULL OR resolved_ms>=?) LIMIT 1",
            (tr.key, tr.ts_ms, since)).fetchone()
        return row is not None

    # ------------------------------------------------------------------ service facts
    def get_meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row["value"] if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._tx():
            self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                            "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (name, value))

    # ------------------------------------------------------------------ people
    def acknowledge(self, alert_id: int, who: str, note: str, now_ms: int) -> dict:
        with self._tx():
            a = self.get(alert_id)
            if a is None or a["state"] != "firing":
                raise StoreError("chỉ tiếp nhận được cảnh báo đang hoạt động / only a firing alert can be acknowledged")
            self.db.execute("UPDATE alerts SET state='acknowledged', acked_ms=?, acked_by=?, ack_note=? WHERE id=?",
                            (now_ms, who, note, alert_id))
            self._event(alert_id, now_ms, "acknowledged", who, note, None)
            return self.get(alert_id)

    def resolve(self, alert_id: int, who: str, note: str, now_ms: int) -> dict:
        with self._tx():
            a = self.get(alert_id)
            if a is None or a["state"] not in OPEN_STATES:
                raise StoreError("cảnh báo đã kết thúc / the alert is already resolved")
            self.db.execute("UPDATE alerts SET state='resolved', resolved_ms=?, resolved_by=?, resolve_note=? "
                            "WHERE id=?", (now_ms, who, note, alert_id))
            self._event(alert_id, now_ms, "resolved", who, note, None)
            return self.get(alert_id)

    # ------------------------------------------------------------------ re-notify / escalate
    def due(self, now_ms: int, renotify_s: float, escalate_after_s: float | None) -> list[tuple[dict, str]]:
        """Firing, unacknowledged alerts whose re-notification or escalation is due (marks them).

        An escalation also tells the first list, so it counts as their reminder too."""
        out: list[tuple[dict, str]] = []
        with self._tx():
            rows = self.db.execute("SELECT * FROM alerts WHERE state='firing'").fetchall()
            for r in rows:
                told = r["notified_ms"] if r["notified_ms"] is not None else r["fired_ms"]
                if escalate_after_s is not None and r["escalated_ms"] is None \
                        and now_ms - told >= escalate_after_s * 1000:
                    self.db.execute("UPDATE alerts SET escalated_ms=?, last_notified_ms=? WHERE id=?",
                                    (now_ms, now_ms, r["id"]))
                    out.append((dict(r), "escalation"))
                elif renotify_s and now_ms - (r["last_notified_ms"] or 0) >= renotify_s * 1000:
                    self.db.execute("UPDATE alerts SET last_notified_ms=? WHERE id=?", (now_ms, r["id"]))
                    out.append((dict(r), "renotify"))
        return out

    def enqueue(self, alert_id: int, event: str, targets: Iterable[tuple[str, str]], now_ms: int) -> None:
        with self._tx():
            self._enqueue(alert_id, event, targets, now_ms)

    def _enqueue(self, alert_id: int, event: str, targets: Iterable[tuple[str, str]], now_ms: int) -> None:
        for channel, target in targets:
            self.db.execute("INSERT INTO outbox (alert_id, event, channel, target, created_ms, next_ms) "
                            "VALUES (?,?,?,?,?,?)", (alert_id, event, channel, target, now_ms, now_ms))

    def mark_cancelled(self, outbox_id: int, reason: str) -> None:
        """A queued message that must not go out any more (e.g. a reminder of an acknowledged alert)."""
        with self._tx():
            self.db.execute("UPDATE outbox SET status='cancelled', last_error=? WHERE id=?", (reason[:500], outbox_id))

    def pending_notifications(self, now_ms: int, exclude: Iterable[int] = ()) -> list[dict]:
        rows = self.db.execute("SELECT * FROM outbox WHERE status='pending' AND next_ms<=? ORDER BY id",
                               (now_ms,)).fetchall()
        skip = set(exclude)
        return [dict(r) for r in rows if r["id"] not in skip]

    def mark_sent(self, outbox_id: int, now_ms: int) -> None:
        with self._tx():
            self.db.execute("UPDATE outbox SET status='sent', sent_ms=?, attempts=attempts+1 WHERE id=?",
                            (now_ms, outbox_id))

    def mark_failed(self, outbox_id: int, error: str, next_ms: int, give_up: bool) -> None:
        with self._tx():
            self.db.execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_ms=?, status=? WHERE id=?",
                            (error[:500], next_ms, "failed" if give_up else "pending", outbox_id))

    def notifications(self, alert_id: int | None = None) -> list[dict]:
        q, args = "SELECT * FROM outbox", ()
        if alert_id is not None:
            q, args = q + " WHERE alert_id=?", (alert_id,)
        return [dict(r) for r in self.db.execute(q + " ORDER BY id", args).fetchall()]

    # ------------------------------------------------------------------ queries
    def get(self, alert_id: int) -> dict | None:
        row = self.db.execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
        return dict(row) if row else None

    def events(self, alert_id: int) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM events WHERE alert_id=? ORDER BY id",
                                                 (alert_id,)).fetchall()]

    def active(self, communes: Iterable[str] | None = None) -> list[dict]:
        return self.history(communes, states=OPEN_STATES, limit=1000)

    def history(self, communes: Iterable[str] | None = None, states: Iterable[str] | None = None,
                station: str | None = None, severity: str | None = None, since_ms: int | None = None,
                until_ms: int | None = None, text: str | None = None, limit: int = 500) -> list[dict]:
        where, args = [], []
        if communes is not None:
            communes = list(communes)
            where.append(f"commune IN ({','.join('?' * len(communes))})")
            args += communes
        if states:
            states = list(states)
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        for col, val in (("station", station), ("severity", severity)):
            if val:
                where.append(f"{col}=?")
                args.append(val)
        if since_ms is not None:
            where.append("fired_ms>=?")
            args.append(since_ms)
        if until_ms is not None:
            where.append("fired_ms<?")
            args.append(until_ms)
        if text:
            where.append("(message_vi LIKE ? OR message_en LIKE ? OR rule LIKE ?)")
            args += [f"%{text}%"] * 3
        q = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        q += " ORDER BY fired_ms DESC, id DESC LIMIT ?"
        return [dict(r) for r in self.db.execute(q, (*args, limit)).fetchall()]

    def _event(self, alert_id: int, ts_ms: int, state: str, who: str, note: str, value: Any) -> None:
        self.db.execute("INSERT INTO events (alert_id, ts_ms, state, who, note, value) VALUES (?,?,?,?,?,?)",
                        (alert_id, ts_ms, state, who, note, value))


class _Tx:
    def __init__(self, store: AlertStore):
        self.store = store

    def __enter__(self):
        self.store.lock.acquire()
        self.nested = self.store.db.in_transaction
        if not self.nested:
            self.store.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        try:
            if not self.nested:
                self.store.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store.lock.release()


def to_json(alert: dict) -> str:
    return json.dumps(alert, ensure_ascii=False)
