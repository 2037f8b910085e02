"""The one InfluxDB client of the platform: writes line protocol, reads InfluxQL.

Every part (ingest, alerts, reports, portal, dashboards check, simulator backfill, local stack)
talks to the database through this module, so auth and error handling are the same everywhere:

- API ``v1``: ``POST /write`` + InfluxQL ``/query`` with user/password (InfluxDB 1.x, 2.x's v1
  compatibility API, 3.x). The default: Debian's InfluxDB 1.6.7 speaks only this.
- API ``v2``: ``POST /api/v2/write?org&bucket`` with ``Authorization: Token …`` (InfluxDB 2.x /
  Cloud, VictoriaMetrics). Reads stay InfluxQL on ``/query`` (2.x serves it through DBRP mappings)
  with the same token, so dashboards, reports and portal keep one query set.

Why plain aiohttp for v2 and not influxdb-client: influxdb-client's async client opens its own
aiohttp session per client object and reports errors in its own classes, so a process would hold
one pool per part and two error vocabularies; the v2 write is one POST with three parameters and
a header. Tested against InfluxDB 1.6.7 (v1) and VictoriaMetrics (v2): tests/test_influx_client.py.

Async parts share one pooled aiohttp session per event loop (``InfluxClient.start`` / ``close``
count their users); command-line tools use the synchronous ``query_sync`` / ``write_sync``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

PRECISION = "ms"
# an HTTP status that means the database refused the data itself (retrying cannot help)
REFUSED_STATUSES = frozenset({400, 413, 422})


class InfluxError(RuntimeError):
    """The database answered with an error or could not be reached (reads)."""


class InfluxUnreachable(InfluxError):
    """Nothing answered (connection refused, timeout, DNS): the address is wrong or the database down."""


class WriteError(Exception):
    """A write failed. ``retryable`` False means the database refused the data itself (HTTP 400)."""

    def __init__(self, message: str, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class _InfluxSettings(Protocol):
    influx_url: str
    influx_db: str
    influx_user: str | None
    influx_password: str | None
    influx_token: str | None
    influx_org: str | None
    influx_bucket: str | None
    influx_api: str


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where and how to reach the database; ``api`` is ``v1`` or ``v2``."""

    url: str
    db: str = "villagewatch"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    org: str | None = None
    bucket: str | None = None
    api: str = "v1"
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: _InfluxSettings, timeout_s: float = 10.0) -> InfluxTarget:
        return cls(settings.influx_url.rstrip("/"), settings.influx_db, settings.influx_user,
                   settings.influx_password, settings.influx_token, settings.influx_org,
                   settings.influx_bucket, settings.influx_api, timeout_s)

    def missing_v2(self) -> list[str]:
        """The settings the v2 API needs and that are empty (VW_* names)."""
        if self.api != "v2":
            return []
        return [name for name, value in (("VW_INFLUX_ORG", self.org), ("VW_INFLUX_BUCKET", self.bucket),
                                         ("VW_INFLUX_TOKEN", self.token)) if not value]

    def write_request(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(url, query parameters, headers) of a write."""
        if self.api == "v2":
            return (f"{self.url}/api/v2/write",
                    {"org": self.org or "", "bucket": self.bucket or self.db, "precision": PRECISION},
                    self._headers())
        params = {"db": self.db, "precision": PRECISION}
        if self.user:
            params.update(u=self.user, p=self.password or "")
        return f"{self.url}/write", params, self._headers()

    def query_request(self, q: str, epoch: str = PRECISION) -> tuple[str, dict[str, str], dict[str, str]]:
        params = {"q": q, "epoch": epoch}
        if self.db:  # statements such as CREATE DATABASE need none
            params["db"] = self.db
        if self.user:
            params.update(u=self.user, p=self.password or "")
        return f"{self.url}/query", params, self._headers()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}


@dataclass
class Series:
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.values]


def parse_query_answer(body: Any, q: str, statement: int = 0) -> list[Series]:
    """Series of one statement of an InfluxQL answer; raises InfluxError on an InfluxQL error."""
    if not isinstance(body, dict):
        raise InfluxError(f"InfluxDB answered something that is not a query result (query: {q})")
    if "error" in body:
        raise InfluxError(f"InfluxQL error: {body['error']} (query: {q})")
    results = body.get("results") or [{}]
    result = results[statement] if statement < len(results) else {}
    if "error" in result:
        raise InfluxError(f"InfluxQL error: {result['error']} (query: {q})")
    return [Series(s.get("tags") or {}, s["columns"], s["values"]) for s in result.get("series", [])]


def _classify(status: int, text: str, url: str) -> WriteError:
    if status in REFUSED_STATUSES:
        return WriteError(f"InfluxDB refused the data ({status}): {text}", False, status)
    return WriteError(f"InfluxDB {url} answered {status}: {text}", True, status)


# --------------------------------------------------------------------------- async, pooled
_sessions: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, int]] = {}


async def _acquire_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session, users = _sessions.get(loop, (None, 0))
    if session is None or session.closed:
        # timeouts are per request (the parts differ: a flush 10 s, a history read 60 s)
        session, users = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)), 0
    _sessions[loop] = (session, users + 1)
    return session


async def _release_session() -> None:
    loop = asyncio.get_running_loop()
    session, users = _sessions.get(loop, (None, 0))
    if session is None:
        return
    if users <= 1:
        del _sessions[loop]
        await session.close()
    else:
        _sessions[loop] = (session, users - 1)


class InfluxClient:
    """Async client for one target; clients of one process share one connection pool."""

    def __init__(self, target: InfluxTarget):
        self.target = target
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=target.timeout_s)

    @property
    def url(self) -> str:
        return self.target.url

    async def start(self) -> None:
        if self._session is None:
            self._session = await _acquire_session()

    async def close(self) -> None:
        if self._session is not None:
            self._session = None
            await _release_session()

    async def __aenter__(self) -> InfluxClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _live(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("start() the InfluxDB client first")
        return self._session

    async def write(self, body: bytes) -> None:
        """Write line protocol (ms). Raises WriteError; ``retryable`` says whether to try again."""
        url, params, headers = self.target.write_request()
        try:
            async with self._live().post(url, params=params, data=body, headers=headers,
                                         timeout=self._timeout) as resp:
                if resp.status == 204 or resp.status == 200:
                    return
                text = (await resp.text())[:500]
                if resp.status == 404 and "database not found" in text and self.target.api == "v1":
                    await self._create_db()
                    raise WriteError(f"database {self.target.db!r} did not exist; created it", True, 404)
                raise _classify(resp.status, text, self.target.url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WriteError(f"InfluxDB unreachable at {self.target.url}: {exc!r}", True) from exc

    async def query(self, q: str, timeout_s: float | None = None) -> list[Series]:
        """Series of the first statement (times in ms). Raises InfluxError."""
        url, params, headers = self.target.query_request(q)
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else self._timeout
        try:
            async with self._live().post(url, data=params, headers=headers, timeout=timeout) as resp:
                if resp.status // 100 != 2:
                    raise InfluxError(f"InfluxDB {self.target.url} answered {resp.status}: "
                                      f"{(await resp.text())[:300]}")
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise InfluxUnreachable(f"cannot read from InfluxDB at {self.target.url}: {exc!r}") from exc
        except ValueError as exc:
            raise InfluxError(f"InfluxDB at {self.target.url} answered something that is not JSON: {exc}") from exc
        return parse_query_answer(body, q)

    async def ping(self) -> bool:
        try:
            async with self._live().get(f"{self.target.url}/ping", headers=self.target._headers(),
                                        timeout=self._timeout) as resp:
                return resp.status in (200, 204)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def _create_db(self) -> None:
        url, params, headers = self.target.query_request(f'CREATE DATABASE "{self.target.db}"')
        async with self._live().post(url, data=params, headers=headers, timeout=self._timeout) as resp:
            await resp.read()


# --------------------------------------------------------------------------- sync, for CLI tools
@dataclass
class InfluxReader:
    """Synchronous InfluxQL reads (reports, portal, CLI tools); counts its queries."""

    url: str
    db: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = 120.0
    queries: int = field(default=0, init=False)

    @classmethod
    def from_settings(cls, settings: _InfluxSettings, timeout_s: float = 120.0) -> InfluxReader:
        return cls(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password,
                   settings.influx_token, timeout_s)

    def query(self, q: str) -> list[Series]:
        """Series of the first statement; times are integer milliseconds since the epoch."""
        self.queries += 1
        target = InfluxTarget(self.url.rstrip("/"), self.db, self.user, self.password, self.token,
                              timeout_s=self.timeout_s)
        return query_sync(target, q)


def query_sync(target: InfluxTarget, q: str, timeout_s: float | None = None) -> list[Series]:
    """Series of the first statement (times in ms), for command-line tools. Raises InfluxError."""
    return parse_query_answer(query_body_sync(target, q, timeout_s), q)


def query_body_sync(target: InfluxTarget, q: str, timeout_s: float | None = None,
                    epoch: str = PRECISION) -> Any:
    """The decoded JSON answer of an InfluxQL request (every statement), as the server sent it."""
    url, params, headers = target.query_request(q, epoch)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(params).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s or target.timeout_s) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise InfluxError(f"InfluxDB {target.url} answered {exc.code}: {detail}") from exc
    except OSError as exc:
        raise InfluxUnreachable(f"cannot reach InfluxDB at {target.url}: {exc}") from exc
    except ValueError as exc:
        raise InfluxError(f"InfluxDB at {target.url} answered something that is not JSON: {exc}") from exc
    return body


def write_sync(target: InfluxTarget, body: bytes, timeout_s: float | None = None) -> None:
    """Write line protocol (ms) from a command-line tool. Raises WriteError."""
    url, params, headers = target.write_request()
    request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(params)}", data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s or target.timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise _classify(exc.code, exc.read().decode(errors="replace")[:500], target.url) from exc
    except OSError as exc:
        raise WriteError(f"InfluxDB unreachable at {target.url}: {exc!r}", True) from exc


def quote_tag(value: str) -> str:
    """A tag value as an InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'
