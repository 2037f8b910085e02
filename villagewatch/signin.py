"""One sign-in for every web page of villagewatch (portal and inspector page): accounts, server-side
sessions, failed-login limits, CSRF tokens and same-origin redirects.

It lives on the ground floor so that the portal and the alerts service's inspector page share it
without importing each other: both open the same SQLite file (``<data dir>/auth.sqlite``), so a
session made on one is valid on the other, and revoking it (logout, password change, an admin)
ends it on both at once. Browsers send cookies per host, not per port, so one sign-in covers both.

Roles: ``operator`` (sees the communes listed on the account), ``inspector`` and ``admin`` (see the
communes listed, ``*`` = all; admin also manages accounts and sessions). Residents have no account.

Bounds and their policies (all documented here, enforced in code):
- sessions: absolute lifetime ``SESSION_S``; at most ``MAX_SESSIONS_PER_ACCOUNT`` per account, the
  oldest is revoked when a new one would exceed it; expired rows are deleted when a session is made.
- failed logins: counted per account and per client address; from the ``FREE_FAILURES``-th failure
  on, the key is locked for a delay doubling each time (1 s, 2 s, 4 s … up to ``MAX_LOCK_S``), and a
  locked key refuses even the right password. A success clears the account's counter only (so one
  valid account cannot wash an address's record). Rows idle for a day are deleted; the table holds
  at most ``MAX_FAILURE_ROWS`` (oldest dropped).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("operator", "inspector", "admin")
COOKIE = "vw_session"
CSRF_COOKIE = "vw_csrf"  # anonymous forms (login): double-submit token before a session exists
SESSION_S = 12 * 3600
MAX_SESSIONS_PER_ACCOUNT = 20
FREE_FAILURES = 5  # per account; an address gets ADDRESS_FREE_FAILURES (shared NAT, a village café)
ADDRESS_FREE_FAILURES = 20
MAX_LOCK_S = 15 * 60
MAX_FAILURE_ROWS = 50_000
_N, _R, _P = 2 ** 14, 8, 1  # scrypt cost, same format as `villagewatch alerts hash-password`


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2, maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


_DUMMY_HASH = hash_password("timing equaliser for unknown user names")


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: str
    communes: tuple[str, ...]  # ("*",) = every commune

    @property
    def display(self) -> str:
        return self.name or self.username

    def sees(self, commune: str) -> bool:
        return "*" in self.communes or commune in self.communes

    def commune_filter(self) -> list[str] | None:
        """None = all communes (for stores that take an optional list)."""
        return None if "*" in self.communes else list(self.communes)


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str
    expires_ms: int


class LoginRefused(Exception):
    """Wrong credentials or a locked key; ``retry_after_s`` > 0 when locked."""

    def __init__(self, reason: str, retry_after_s: int = 0):
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


def _now_ms() -> int:
    return int(time.time() * 1000)


def _token_key(token: str) -> str:
    # the database holds a hash of the cookie value only: a leaked file does not hand out sessions
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    """Accounts, sessions and failure counters in one SQLite file (WAL, shared by processes)."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS accounts (
                username TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', role TEXT NOT NULL,
                communes TEXT NOT NULL, password_hash TEXT NOT NULL, password_changed_ms INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS sessions (
                token_hash TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL,
                created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
            CREATE TABLE IF NOT EXISTS login_failures (
                key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until_ms INTEGER NOT NULL,
                last_ms INTEGER NOT NULL);
        """)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ accounts
    def put_account(self, username: str, role: str, communes: Iterable[str], password: str | None = None,
                    *, name: str = "", password_hash: str | None = None, replace: bool = True) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        communes = sorted(set(communes))
        if not communes:
            raise ValueError("an account needs at least one commune (or '*')")
        pw_hash = password_hash or hash_password(password or "")
        if password is None and password_hash is None:
            raise ValueError("a password or a password hash is needed")
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self._lock:
            self.db.execute(f"{verb} INTO accounts VALUES (?,?,?,?,?,?)",
                            (username, name, role, json.dumps(communes), pw_hash, _now_ms()))

    def seed(self, users: Iterable[dict[str, Any]]) -> None:
        """Accounts from a YAML list (the alerts configuration's ``users``) that the store lacks.

        Existing accounts are left alone, so a password changed on the web survives a restart."""
        for u in users:
            self.put_account(u["username"], u.get("role", "operator"), u["communes"], name=u.get("name", ""),
                             password_hash=u["password_hash"], replace=False)

    def account(self, username: str) -> Account | None:
        row = self.db.execute("SELECT username, name, role, communes FROM accounts WHERE username = ?",
                              (username,)).fetchone()
        return Account(row[0], row[1], row[2], tuple(json.loads(row[3]))) if row else None

    def accounts(self) -> list[Account]:
        rows = self.db.execute("SELECT username FROM accounts ORDER BY username").fetchall()
        return [a for (u,) in rows if (a := self.account(u))]

    def set_password(self, username: str, new_password: str) -> None:
        """Change a password; every session of the account ends (a stolen cookie stops working)."""
        with self._lock:
            self.db.execute("UPDATE accounts SET password_hash = ?, password_changed_ms = ? WHERE username = ?",
                            (hash_password(new_password), _now_ms(), username))
            self.db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def check_password(self, username: str, password: str) -> bool:
        row = self.db.execute("SELECT password_hash FROM accounts WHERE username = ?", (username,)).fetchone()
        return verify_password(password, row[0]) if row else False

    # ------------------------------------------------------------------ login with limits
    def login(self, username: str, password: str, address: str, now_ms: int | None = None) -> tuple[str, Session]:
        """A new session (token, session) or LoginRefused. Locked keys refuse before the password
        is even checked, so a guesser learns nothing while locked."""
        now = _now_ms() if now_ms is None else now_ms
        keys = [f"user:{username}", f"addr:{address}"]
        wait_ms = max(self._locked_until(k) for k in keys) - now
        if wait_ms > 0:
            raise LoginRefused("too many failed logins", -(-wait_ms // 1000))
        row = self.db.execute("SELECT password_hash FROM accounts WHERE username = ?", (username,)).fetchone()
        ok = verify_password(password, row[0] if row else _DUMMY_HASH) and row is not None
        if not ok:
            self._fail(keys[0], FREE_FAILURES, now)
            self._fail(keys[1], ADDRESS_FREE_FAILURES, now)
            raise LoginRefused("wrong user name or password")
        with self._lock:
            self.db.execute("DELETE FROM login_failures WHERE key = ?", (keys[0],))
        return self._new_session(username, now)

    def _locked_until(self, key: str) -> int:
        row = self.db.execute("SELECT locked_until_ms FROM login_failures WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _fail(self, key: str, free: int, now: int) -> None:
        with self._lock:
            row = self.db.execute("SELECT failures FROM login_failures WHERE key = ?", (key,)).fetchone()
            failures = (row[0] if row else 0) + 1
            locked = 0
            if failures >= free:
                locked = now + min(MAX_LOCK_S, 2 ** min(failures - free, 20)) * 1000
            self.db.execute("INSERT OR REPLACE INTO login_failures VALUES (?,?,?,?)", (key, failures, locked, now))
            self.db.execute("DELETE FROM login_failures WHERE last_ms < ?", (now - 86_400_000,))
            self.db.execute("DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures "
                            "ORDER BY last_ms DESC LIMIT -1 OFFSET ?)", (MAX_FAILURE_ROWS,))

    # ------------------------------------------------------------------ sessions
    def _new_session(self, username: str, now: int) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        with self._lock:
            self.db.execute("DELETE FROM sessions WHERE expires_ms < ?", (now,))
            self.db.execute("INSERT INTO sessions VALUES (?,?,?,?,?)",
                            (_token_key(token), username, csrf, now, now + SESSION_S * 1000))
            self.db.execute("DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions "
                            "WHERE username = ? ORDER BY created_ms DESC LIMIT -1 OFFSET ?)",
                            (username, MAX_SESSIONS_PER_ACCOUNT))
        account = self.account(username)
        assert account is not None
        return token, Session(account, csrf, now + SESSION_S * 1000)

    def session(self, token: str | None, now_ms: int | None = None) -> Session | None:
        if not token:
            return None
        now = _now_ms() if now_ms is None else now_ms
        row = self.db.execute("SELECT username, csrf, expires_ms FROM sessions WHERE token_hash = ?",
                              (_token_key(token),)).fetchone()
        if row is None or row[2] < now:
            return None
        account = self.account(row[0])
        return Session(account, row[1], row[2]) if account else None

    def logout(self, token: str | None) -> None:
        if token:
            with self._lock:
                self.db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_key(token),))

    def revoke_all(self, username: str) -> int:
        """An admin ends every session of an account; returns how many were ended."""
        with self._lock:
            return self.db.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount

    def session_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT username, COUNT(*) FROM sessions WHERE expires_ms >= ? GROUP BY username",
                               (_now_ms(),)).fetchall()
        return dict(rows)


# ---------------------------------------------------------------------- redirects
def safe_next(raw: str | None, default: str = "/") -> str:
    """``raw`` if it is a path on this site, else ``default``.

    Browsers repair URLs before following them: they drop tabs and newlines, read ``\\`` as ``/``
    and treat ``//host`` as another site. So anything with a control character or a backslash is
    refused outright, and the URL is parsed (also once percent-decoded) to have no scheme, no host
    and a path starting with a single ``/``."""
    if not raw or len(raw) > 2000:
        return default
    for candidate in (raw, urllib.parse.unquote(raw)):
        if any(ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in candidate):
            return default
        if not candidate.startswith("/") or candidate.startswith("//"):
            return default  # "///host" parses to an empty host, yet a browser goes to host
        parts = urllib.parse.urlsplit(candidate)
        if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
            return default
    return raw


def same_origin(origin: str | None, public_url: str, host_header: str | None) -> bool:
    """True when a request's Origin header (if any) is this site: the public URL or the Host."""
    if not origin:
        return True  # not sent by a browser for same-origin GETs; POSTs carry it in every browser we serve
    o = urllib.parse.urlsplit(origin)
    mine = urllib.parse.urlsplit(public_url)
    return (o.scheme, o.netloc) == (mine.scheme, mine.netloc) or (bool(host_header) and o.netloc == host_header)


def check_csrf(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def cookie_options(public_url: str) -> dict[str, Any]:
    """Session cookie attributes: HttpOnly, SameSite=Lax, Secure when the public URL is https."""
    return {"httponly": True, "samesite": "Lax", "secure": public_url.lower().startswith("https://"),
            "path": "/"}


def auth_db_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "auth.sqlite"
