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

Late data (docs/alerts.md "Late data in the service"): an episode that reaches us already over
(``firing`` and ``resolved`` from one engine call), a ``late`` firing, or one that began before the
open live alert of its key is recorded as its own alert marked ``late`` (historical) with its true
times and notified once (``historical``); corrections from the engine — ``revised`` (times moved)
and ``retracted`` (state ``retracted``, never deleted, notified once) — are applied idempotently.

Re-notify and escalation count on the service's clock from when people were first told
(``notified_ms``), not from the data's timestamps: an alert fired from readings an edge gateway
spooled for an hour is not escalated the moment it arrives, and a station whose clock runs ahead
does not hold its notifications back. Once an alert is escalated, reminders go to both lists.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rules.engine import Transition
from rules.messages import local_time, rule_title

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
        for column, decl in (("notified_ms", "INTEGER"), ("late", "INTEGER NOT NULL DEFAULT 0"),
                             ("title_vi", "TEXT"), ("title_en", "TEXT"), ("retracted_ms", "INTEGER")):
            if column not in columns:  # state files written before the column existed
                self.db.execute(f"ALTER TABLE alerts ADD COLUMN {column} {decl}")
        # one open *live* alert per key; a historical (late) one may be open beside it
        self.db.execute("DROP INDEX IF EXISTS alerts_one_open")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_live_open ON alerts(key) "
                        "WHERE state IN ('firing', 'acknowledged') AND late=0")
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def _tx(self):
        return _Tx(self)

    # ------------------------------------------------------------------ engine transitions
    def open_keys(self) -> list[str]:
        """Keys of the open live alerts (the engine resumes them; historical ones are not live state)."""
        rows = self.db.execute("SELECT key FROM alerts WHERE state IN ('firing','acknowledged') AND late=0").fetchall()
        return [r["key"] for r in rows]

    def apply_all(self, transitions: list[Transition], targets_for: Callable[[Transition], Iterable[tuple[str, str]]],
                  now_ms: int) -> list[tuple[dict, str]]:
        """Record the transitions of one engine call; returns (alert, state) pairs to publish.

        A ``firing`` followed in the same call by the ``resolved`` of the same key is an episode
        that is already over when it reaches us (an excursion inside a backlog): it is recorded as
        one historical alert with its true start and end and notified once."""
        out: list[tuple[dict, str]] = []
        pending = list(transitions)
        while pending:
            tr = pending.pop(0)
            if tr.state == "firing":
                end = next((t for t in pending if t.key == tr.key and t.state in ("firing", "resolved")), None)
                if end is not None and end.state == "resolved":
                    pending.remove(end)
                    alert = self.record_episode(tr, end, targets_for(tr), now_ms)
                    if alert is not None:
                        out += [(alert, "firing"), (alert, "resolved")]
                    continue
            alert = self.apply(tr, targets_for(tr), now_ms)
            if alert is not None:
                out.append((alert, alert["state"]))
        return out

    def apply(self, tr: Transition, targets: Iterable[tuple[str, str]] = (), now_ms: int | None = None) -> dict | None:
        """Record an engine transition; returns the alert (as published) or None if nothing changed.

        ``now_ms`` is the service's clock (default: the transition's time): notifications are queued
        for then, and re-notify/escalation count from then."""
        now = tr.ts_ms if now_ms is None else now_ms
        if tr.state == "revised":
            return self._revise(tr, targets, now)
        if tr.state == "retracted":
            return self._retract(tr, targets, now)
        with self._tx():
            open_rows = self.db.execute("SELECT * FROM alerts WHERE key=? AND state IN ('firing','acknowledged') "
                                        "ORDER BY id", (tr.key,)).fetchall()
            same = next((r for r in open_rows if r["started_ms"] == tr.since_ms and tr.since_ms), None)
            live = next((r for r in open_rows if not r["late"]), None)
            if tr.state == "firing":
                if same is not None:
                    return None  # this episode is open already: no duplicate
                late = tr.late
                if live is not None and not late:
                    if tr.since_ms >= (live["started_ms"] or 0):
                        return None  # already open (e.g. restored after a restart): no duplicate
                    # an episode from before the open alert, reaching us now: recorded beside it, as history
                    late = True
                elif late and any(r["late"] for r in open_rows):
                    return None
                if self._recorded_episode(tr.key, tr.since_ms or tr.ts_ms, tr.ts_ms, open_late=late):
                    return None  # redelivered readings of an episode already recorded and resolved
                alert_id = self._insert(tr, "firing", now, late=late)
                self._event(alert_id, tr.ts_ms, "firing", "hệ thống", "", tr.value)
                # historical: told once, now (its end, when it comes, is recorded silently)
                self._enqueue(alert_id, "historical" if late else "firing", targets, now)
                return self.get(alert_id)
            row = same or next((r for r in open_rows if bool(r["late"]) == tr.late), None)
            if row is None:
                return None  # resolved by a person already, or never opened here
            if row["fired_ms"] is not None and tr.ts_ms < row["fired_ms"]:
                return None  # a replay of readings older than the firing (redelivery after a crash)
            self.db.execute("UPDATE alerts SET state='resolved', resolved_ms=?, resolved_by='hệ thống', "
                            "resolve_note=?, last_value=? WHERE id=?",
                            (tr.ts_ms, tr.message_vi, tr.value, row["id"]))
            self._event(row["id"], tr.ts_ms, "resolved", "hệ thống", tr.message_vi, tr.value)
            if not row["late"]:
                self._enqueue(row["id"], "resolved", targets, now)
            return self.get(row["id"])

    def record_episode(self, firing: Transition, resolved: Transition, targets: Iterable[tuple[str, str]],
                       now_ms: int) -> dict | None:
        """One finished episode (firing and end known together): one alert marked late, one notification."""
        with self._tx():
            if self._recorded_episode(firing.key, firing.since_ms or firing.ts_ms, resolved.ts_ms):
                return None  # the same episode again (redelivered backlog)
            alert_id = self._insert(firing, "resolved", now_ms, late=True, resolved=resolved)
            self._event(alert_id, firing.ts_ms, "firing", "hệ thống", "", firing.value)
            self._event(alert_id, resolved.ts_ms, "resolved", "hệ thống", resolved.message_vi, resolved.value)
            self._enqueue(alert_id, "historical", targets, now_ms)
            return self.get(alert_id)

    def _insert(self, tr: Transition, state: str, now: int, late: bool | None = None,
                resolved: Transition | None = None) -> int:
        r = tr.rule
        end = resolved.ts_ms if resolved else None
        cur = self.db.execute(
            """INSERT INTO alerts (key, rule, pack, commune, station, station_name_vi, station_name_en,
               metric, kind, severity, state, value, "limit", regulation, "table", "column", averaging,
               unverified, message_vi, message_en, started_ms, fired_ms, last_value, last_notified_ms,
               notified_ms, late, title_vi, title_en, resolved_ms, resolved_by, resolve_note)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (tr.key, r.id, r.pack, tr.commune, tr.station, tr.station_name_vi, tr.station_name_en,
             r.metric, r.kind, r.severity, state, tr.value, tr.limit, r.regulation, r.table, r.column,
             r.averaging, int(r.unverified), tr.message_vi, tr.message_en, tr.since_ms, tr.ts_ms,
             resolved.value if resolved else tr.value, now, now, int(tr.late if late is None else late),
             rule_title(r, "vi"), rule_title(r, "en"), end, "hệ thống" if resolved else None,
             resolved.message_vi if resolved else None))
        return int(cur.lastrowid)

    def _recorded_episode(self, key: str, since: int, until: int, open_late: bool = True) -> bool:
        """An alert of ``key`` (not retracted) already covers part of [since, until].

        ``open_late=False``: an open historical alert does not count — its end is not known yet (the
        backlog will tell), and it must not hide a live alert that begins after its readings."""
        row = self.db.execute(
            "SELECT id FROM alerts WHERE key=? AND state!='retracted' AND started_ms<=? "
            "AND (resolved_ms IS NULL OR resolved_ms>=?) AND (? OR NOT (late=1 AND resolved_ms IS NULL)) LIMIT 1",
            (key, until, since, int(open_late))).fetchone()
        return row is not None

    def _reported(self, tr: Transition) -> sqlite3.Row | None:
        """The live alert a correction names: by the start it was reported with (``revises_since_ms``);
        an alert restored after a restart is known to the engine without its start (0): the open one."""
        row = self.db.execute("SELECT * FROM alerts WHERE key=? AND started_ms=? AND state!='retracted' "
                              "ORDER BY id DESC LIMIT 1", (tr.key, tr.revises_since_ms)).fetchone()
        if row is None and not tr.revises_since_ms:
            row = self.db.execute("SELECT * FROM alerts WHERE key=? AND late=0 AND state IN ('firing','acknowledged')",
                                  (tr.key,)).fetchone()
        return row

    def _revise(self, tr: Transition, targets: Iterable[tuple[str, str]], now: int) -> dict | None:
        """Late data moved an alert's start (or end): the record follows, once; people are not told
        again unless an alert reported over is open again."""
        with self._tx():
            row = self._reported(tr)
            if row is None:
                return None  # already revised (redelivery) or never recorded here
            by_system = row["state"] == "resolved" and row["resolved_by"] == "hệ thống"
            reopen = tr.ends_ms is None and by_system and self.db.execute(
                "SELECT 1 FROM alerts WHERE key=? AND late=0 AND state IN ('firing','acknowledged')",
                (tr.key,)).fetchone() is None
            new_end = tr.ends_ms if by_system and tr.ends_ms is not None else row["resolved_ms"]
            if (row["started_ms"], row["fired_ms"], row["resolved_ms"]) == (tr.since_ms, tr.ts_ms, new_end) \
                    and not reopen:
                return None
            self.db.execute("UPDATE alerts SET started_ms=?, fired_ms=?, resolved_ms=? WHERE id=?",
                            (tr.since_ms, tr.ts_ms, new_end, row["id"]))
            if reopen:
                self.db.execute("UPDATE alerts SET state='firing', resolved_ms=NULL, resolved_by=NULL, "
                                "resolve_note=NULL WHERE id=?", (row["id"],))
            self._event(row["id"], now, "revised", "hệ thống",
                        f"dữ liệu đến muộn: bắt đầu {_clock(row['started_ms'])} → {_clock(tr.since_ms)}", tr.value)
            if reopen:
                self._event(row["id"], tr.ts_ms, "firing", "hệ thống", "", tr.value)
                self._enqueue(row["id"], "firing", targets, now)
            return self.get(row["id"])

    def _retract(self, tr: Transition, targets: Iterable[tuple[str, str]], now: int) -> dict | None:
        """Late data shows the alert never happened: marked retracted (never deleted), told once."""
        with self._tx():
            row = self._reported(tr)
            if row is None:
                return None  # already retracted (redelivery) or never recorded here
            self.db.execute("UPDATE alerts SET state='retracted', retracted_ms=? WHERE id=?", (now, row["id"]))
            self._event(row["id"], now, "retracted", "hệ thống",
                        "dữ liệu đến muộn cho thấy điều kiện không kéo dài đủ lâu", tr.value)
            self._enqueue(row["id"], "retracted", targets, now)
            return self.get(row["id"])

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
            # historical alerts are told once: no reminders, no escalation
            rows = self.db.execute("SELECT * FROM alerts WHERE state='firing' AND late=0").fetchall()
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
    def last_event_id(self) -> int:
        row = self.db.execute("SELECT max(id) AS m FROM events").fetchone()
        return int(row["m"] or 0)

    def events_after(self, event_id: int, limit: int = 30_000) -> list[tuple[dict, dict]]:
        """(event, its alert) for every event with a larger id, oldest first."""
        rows = self.db.execute("SELECT * FROM events WHERE id>? ORDER BY id LIMIT ?", (event_id, limit)).fetchall()
        out = []
        for r in rows:
            alert = self.get(r["alert_id"])
            if alert is not None:
                out.append((dict(r), alert))
        return out

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


def _clock(ts_ms: int | None) -> str:
    return local_time(ts_ms) if ts_ms else "—"


def to_json(alert: dict) -> str:
    return json.dumps(alert, ensure_ascii=False)
