"""The ingest's writer: the platform's one InfluxDB client (villagewatch/influx.py).

``make_writer`` picks the API from the settings: ``v1`` (``POST /write``; InfluxDB 1.x, 2.x's v1
API, 3.x) or ``v2`` (``POST /api/v2/write`` with org, bucket and token). Failures come back as
``WriteError`` with ``retryable`` False when the database refused the data itself.
"""

from __future__ import annotations

from villagewatch.config import Settings
from villagewatch.influx import InfluxClient, InfluxTarget, WriteError

__all__ = ["InfluxV1Writer", "InfluxV2Writer", "WriteError", "make_writer"]


def InfluxV1Writer(url: str, db: str, user: str | None = None, password: str | None = None,  # noqa: N802
                   timeout_s: float = 10.0) -> InfluxClient:
    return InfluxClient(InfluxTarget(url.rstrip("/"), db, user, password, timeout_s=timeout_s))


def InfluxV2Writer(url: str, org: str, bucket: str, token: str, timeout_s: float = 10.0) -> InfluxClient:  # noqa: N802
    return InfluxClient(InfluxTarget(url.rstrip("/"), bucket, token=token, org=org, bucket=bucket, api="v2",
                                     timeout_s=timeout_s))


def make_writer(settings: Settings) -> InfluxClient:
    target = InfluxTarget.from_settings(settings)
    missing = target.missing_v2()
    if missing:
        from villagewatch.schema import ConfigError
        raise ConfigError(f"the v2 writer needs {', '.join(missing)}")
    return InfluxClient(target)
