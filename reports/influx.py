"""Read-only InfluxQL for reports and the portal: the platform's one InfluxDB client
(villagewatch/influx.py, synchronous side), v1 user/password or v2 token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from villagewatch.influx import InfluxError, InfluxTarget, Series, query_sync, quote_ident, quote_tag

__all__ = ["InfluxError", "InfluxReader", "Series", "quote_ident", "quote_tag"]


@dataclass
class InfluxReader:
    url: str
    db: str
    user: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = 120.0
    queries: int = field(default=0, init=False)

    def query(self, q: str) -> list[Series]:
        """Series of the first statement; times are integer milliseconds since the epoch."""
        self.queries += 1
        target = InfluxTarget(self.url.rstrip("/"), self.db, self.user, self.password, self.token,
                              timeout_s=self.timeout_s)
        return query_sync(target, q)
