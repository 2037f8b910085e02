"""Writers to InfluxDB. Both take line protocol (ms precision) and classify failures.

- ``InfluxV1Writer``: ``POST /write`` (InfluxDB 1.x, 2.x through its v1 compatibility API, 3.x).
  The default: it is what Debian's InfluxDB 1.6.7 speaks, and with InfluxQL it keeps one set of
  queries for every version.
- ``InfluxV2Writer``: ``POST /api/v2/write`` with org, bucket and token, through influxdb-client's
  async API, for InfluxDB 2.x / Cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from villagewatch.config import Settings


class WriteError(Exception):
    """A write failed. ``retryable`` False means the database refused the data itself (HTTP 400)."""

    def __init__(self, message: str, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass
class InfluxV1Writer:
    url: str
    db: str
    user: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                              connector=aiohttp.TCPConnector(limit=8))

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    async def write(self, body: bytes) -> None:
        assert self._session is not None, "start() the writer first"
        params = {"db": self.db, "precision": "ms"}
        if self.user:
            params.update(u=self.user, p=self.password or "")
        try:
            async with self._session.post(f"{self.url}/write", params=params, data=body) as resp:
                if resp.status == 204:
                    return
                text = (await resp.text())[:500]
                if resp.status == 404 and "database not found" in text:
                    await self._create_db()
                    raise WriteError(f"database {self.db!r} did not exist; created it", True, 404)
                if resp.status in (400, 413) or (resp.status == 422):
                    raise WriteError(f"InfluxDB refused the data ({resp.status}): {text}", False, resp.status)
                raise WriteError(f"InfluxDB answered {resp.status}: {text}", True, resp.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WriteError(f"InfluxDB unreachable at {self.url}: {exc!r}", True) from exc

    async def ping(self) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(f"{self.url}/ping") as resp:
                return resp.status in (200, 204)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def _create_db(self) -> None:
        assert self._session is not None
        params = {"q": f'CREATE DATABASE "{self.db}"'}
        if self.user:
            params.update(u=self.user, p=self.password or "")
        async with self._session.post(f"{self.url}/query", params=params) as resp:
            await resp.read()


class InfluxV2Writer:
    """InfluxDB 2.x / Cloud through influxdb-client (org, bucket, token).

    Cannot be exercised against a real server here (Debian's 1.6.7 has no /api/v2/write); its test
    checks the request against a stand-in HTTP server.
    """

    def __init__(self, url: str, org: str, bucket: str, token: str, timeout_s: float = 10.0):
        self.url, self.org, self.bucket, self.token, self.timeout_s = url, org, bucket, token, timeout_s
        self._client = None
        self._api = None

    async def start(self) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        self._client = InfluxDBClientAsync(url=self.url, token=self.token, org=self.org,
                                           timeout=int(self.timeout_s * 1000))
        self._api = self._client.write_api()

    async def close(self) -> None:
        if self._client:
            await self._client.close()

    async def write(self, body: bytes) -> None:
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision
        try:
            await self._api.write(bucket=self.bucket, org=self.org, record=body.decode(),
                                  write_precision=WritePrecision.MS)
        except InfluxDBError as exc:
            status = getattr(exc.response, "status", None)
            raise WriteError(f"InfluxDB v2 answered {status}: {exc}", status not in (400, 413, 422), status) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WriteError(f"InfluxDB unreachable at {self.url}: {exc!r}", True) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False


def make_writer(settings: Settings) -> InfluxV1Writer | InfluxV2Writer:
    if settings.influx_api == "v2":
        missing = [name for name, value in (("VW_INFLUX_ORG", settings.influx_org),
                                            ("VW_INFLUX_BUCKET", settings.influx_bucket),
                                            ("VW_INFLUX_TOKEN", settings.influx_token)) if not value]
        if missing:
            from villagewatch.schema import ConfigError
            raise ConfigError(f"the v2 writer needs {', '.join(missing)}")
        return InfluxV2Writer(settings.influx_url, settings.influx_org, settings.influx_bucket, settings.influx_token)
    return InfluxV1Writer(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password)
