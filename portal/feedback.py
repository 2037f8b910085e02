"""Residents' feedback ("Phản ánh hiện trường"): validated, photo re-encoded, stored in SQLite.

Nothing is stored unless every part of the submission is valid; a photo is decoded and re-encoded
with Pillow so EXIF/GPS metadata and anything smuggled after the image data are dropped.
"""

from __future__ import annotations

import io
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

CATEGORIES = {
    "mui_hoi": "Mùi hôi", "nuoc_duc": "Nước đục", "rac_thai": "Rác thải",
    "khoi_dot_rom": "Khói đốt rơm", "ngap": "Ngập", "khac": "Khác",
}
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_TEXT_CHARS = 2000
_PHONE_RE = re.compile(r"^\+?[0-9 .-]{8,15}$")
# Markup in a resident's text is refused rather than stored: pages autoescape anyway, but the
# inspector's e-mail and CSV exports are other consumers (refusal is the clear, safe policy).
_SCRIPT_RE = re.compile(r"<\s*/?\s*(script|iframe|object|embed|svg|img|a)\b|javascript:|on\w+\s*=", re.I)
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone


class FeedbackRejected(ValueError):
    """A submission refused with a reason for the resident; ``status`` is the HTTP code."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class Submission:
    commune: str
    category: str
    text: str
    photo: bytes | None = None
    lat: float | None = None
    lon: float | None = None
    phone: str | None = None


def validate(raw: dict[str, str], photo: bytes | None, communes: set[str]) -> Submission:
    commune = (raw.get("commune") or "").strip()
    if commune not in communes:
        raise FeedbackRejected(f"xã không tồn tại / unknown commune {commune!r}")
    category = (raw.get("category") or "").strip()
    if category not in CATEGORIES:
        raise FeedbackRejected(f"loại phản ánh không hợp lệ / unknown category {category!r} "
                               f"(one of: {', '.join(CATEGORIES)})")
    text = (raw.get("text") or "").strip()
    if not text:
        raise FeedbackRejected("nội dung trống / text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise FeedbackRejected(f"nội dung quá dài / text longer than {MAX_TEXT_CHARS} characters")
    if _SCRIPT_RE.search(text):
        raise FeedbackRejected("nội dung chứa mã HTML/script / text contains HTML or script")
    lat = _coord(raw.get("lat"), -90, 90, "lat")
    lon = _coord(raw.get("lon"), -180, 180, "lon")
    phone = (raw.get("phone") or "").strip() or None
    if phone is not None and not _PHONE_RE.match(phone):
        raise FeedbackRejected("số điện thoại không hợp lệ / phone number is not valid")
    clean = reencode_photo(photo) if photo else None
    return Submission(commune, category, text, clean, lat, lon, phone)


def _coord(value: str | None, lo: float, hi: float, name: str) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(str(value).replace(",", "."))
    except ValueError:
        raise FeedbackRejected(f"tọa độ không hợp lệ / {name} is not a number") from None
    if not lo <= number <= hi:  # also refuses NaN
        raise FeedbackRejected(f"tọa độ ngoài phạm vi / {name} out of range")
    return number


def reencode_photo(data: bytes) -> bytes:
    """JPEG re-encoding of an image; metadata (EXIF, GPS, comments) is not carried over."""
    if len(data) > MAX_PHOTO_BYTES:
        raise FeedbackRejected("ảnh lớn hơn 5 MB / photo larger than 5 MB", 413)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("JPEG", "PNG", "WEBP", "GIF"):
                raise FeedbackRejected("chỉ nhận ảnh JPEG/PNG/WebP / only images are accepted")
            if img.width * img.height > 40_000_000:
                raise FeedbackRejected("ảnh quá lớn / image dimensions too large", 413)
            img.load()
            pixels = Image.frombytes("RGB", img.size, img.convert("RGB").tobytes())
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise FeedbackRejected("tệp không phải ảnh / the file is not an image") from None
    pixels.thumbnail((2048, 2048))
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=85)
    return out.getvalue()


class RateLimiter:
    """Sliding window per client address; memory bounded by ``max_keys`` (oldest address evicted)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000):
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        self._hits[key] = hits  # re-inserted last: dict order is recency order
        while len(self._hits) > self.max_keys:
            self._hits.pop(next(iter(self._hits)))
        return allowed


STATUSES = {"new": "Mới tiếp nhận", "in_progress": "Đang xử lý", "resolved": "Đã giải quyết"}
STATUSES_EN = {"new": "new", "in_progress": "in progress", "resolved": "resolved"}
MAX_REPLY_CHARS = 2000
_COLUMNS = ("code", "commune", "category", "text", "has_photo", "lat", "lon", "phone", "status", "reply",
            "created_ms", "assignee", "station", "alert_id", "updated_ms", "reply_ms", "reply_by")
# columns added after the first version of the table; added in place on open (no data lost)
_ADDED = {"assignee": "TEXT", "station": "TEXT", "alert_id": "INTEGER", "updated_ms": "INTEGER",
          "reply_ms": "INTEGER", "reply_by": "TEXT"}
MAX_EVENTS_PER_ITEM = 200  # the queue's history of one item; older events dropped at the bound


class FeedbackStore:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()  # one connection shared by the event loop and worker threads
        self.db.execute("""CREATE TABLE IF NOT EXISTS feedback (
            code TEXT PRIMARY KEY, commune TEXT NOT NULL, category TEXT NOT NULL, text TEXT NOT NULL,
            photo BLOB, lat REAL, lon REAL, phone TEXT, status TEXT NOT NULL DEFAULT 'new',
            reply TEXT, created_ms INTEGER NOT NULL)""")
        have = {row[1] for row in self.db.execute("PRAGMA table_info(feedback)")}
        for name, sql_type in _ADDED.items():
            if name not in have:
                self.db.execute(f"ALTER TABLE feedback ADD COLUMN {name} {sql_type}")
        self.db.execute("""CREATE TABLE IF NOT EXISTS feedback_events (
            code TEXT NOT NULL, ts_ms INTEGER NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS feedback_events_code ON feedback_events(code, ts_ms)")

    def add(self, sub: Submission) -> str:
        with self._lock:
            return self._add(sub)

    def _add(self, sub: Submission) -> str:
        for _ in range(10):
            code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))
            try:
                self.db.execute(
                    "INSERT INTO feedback (code, commune, category, text, photo, lat, lon, phone, created_ms)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    (code, sub.commune, sub.category, sub.text, sub.photo, sub.lat, sub.lon, sub.phone,
                     int(time.time() * 1000)))
                return code
            except sqlite3.IntegrityError:
                continue
        raise RuntimeError("could not allocate a feedback code")

    _SELECT = ("SELECT code, commune, category, text, photo IS NOT NULL, lat, lon, phone, status, reply, created_ms,"
               " assignee, station, alert_id, updated_ms, reply_ms, reply_by FROM feedback")

    def get(self, code: str) -> dict | None:
        row = self.db.execute(f"{self._SELECT} WHERE code = ?", (code.strip().upper(),)).fetchone()
        return dict(zip(_COLUMNS, row, strict=True)) if row else None

    def queue(self, communes: list[str] | None, status: str | None = None, limit: int = 500) -> list[dict]:
        """Newest first, restricted to ``communes`` (None = all)."""
        where, args = [], []
        if communes is not None:
            where.append(f"commune IN ({','.join('?' * len(communes))})")
            args.extend(communes)
        if status:
            where.append("status = ?")
            args.append(status)
        sql = self._SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_ms DESC LIMIT ?"
        return [dict(zip(_COLUMNS, row, strict=True)) for row in self.db.execute(sql, (*args, limit))]

    def update(self, code: str, who: str, changes: dict, now_ms: int | None = None) -> dict:
        """Apply validated ``changes`` (status, assignee, reply, station, alert_id) and log each."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        item = self.get(code)
        if item is None:
            raise KeyError(code)
        sets, args, events = [], [], []
        for key in ("status", "assignee", "station", "alert_id", "reply"):
            if key in changes and changes[key] != item[key]:
                sets.append(f"{key} = ?")
                args.append(changes[key])
                events.append(f"{key}: {changes[key] if changes[key] is not None else '—'}")
        if "reply" in changes and changes["reply"] != item["reply"]:
            sets += ["reply_ms = ?", "reply_by = ?"]
            args += [now, who]
        if not sets:
            return item
        with self._lock:
            self._write_update(item["code"], who, sets, args, events, now)
        return self.get(item["code"]) or item

    def _write_update(self, code: str, who: str, sets: list[str], args: list, events: list[str], now: int) -> None:
        item = {"code": code}
        self.db.execute("BEGIN")
        try:
            self.db.execute(f"UPDATE feedback SET {', '.join(sets)}, updated_ms = ? WHERE code = ?",
                            (*args, now, item["code"]))
            for what in events:
                self.db.execute("INSERT INTO feedback_events VALUES (?,?,?,?)", (item["code"], now, who, what))
            self.db.execute("DELETE FROM feedback_events WHERE code = ? AND rowid NOT IN (SELECT rowid FROM "
                            "feedback_events WHERE code = ? ORDER BY ts_ms DESC LIMIT ?)",
                            (item["code"], item["code"], MAX_EVENTS_PER_ITEM))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def events(self, code: str) -> list[dict]:
        rows = self.db.execute("SELECT ts_ms, who, what FROM feedback_events WHERE code = ? ORDER BY ts_ms, rowid",
                               (code,)).fetchall()
        return [{"ts_ms": r[0], "who": r[1], "what": r[2]} for r in rows]

    def photo(self, code: str) -> bytes | None:
        row = self.db.execute("SELECT photo FROM feedback WHERE code = ?", (code,)).fetchone()
        return row[0] if row else None

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]

    def close(self) -> None:
        self.db.close()
