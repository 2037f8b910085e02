"""Read-only InfluxQL over HTTP (``/query``): works on InfluxDB 1.x, 2.x (v1 API) and 3.x.

The report only reads, so a dozen lines of urllib are enough; influxdb-client cannot talk to
Debian's InfluxDB 1.6.7 (../shared/reference/libraries.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


class InfluxError(RuntimeError):
    """The database answered with an error or could not be reached."""


@dataclass
class Series:
    tags: dict[str, str]
    columns: list[str]
    values: list[list]
    partial: bool = False

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [row[i] for row in self.values]


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
        params = {"q": q, "db": self.db, "epoch": "ms"}
        if self.user:
            params["u"] = self.user
            params["p"] = self.password or ""
        request = urllib.request.Request(f"{self.url.rstrip('/')}/query?{urllib.parse.urlencode(params)}")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        self.queries += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise InfluxError(f"InfluxDB {self.url} answered {exc.code}: {detail}") from exc
        except OSError as exc:
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {exc}") from exc
        if "error" in body:
            raise InfluxError(f"InfluxQL error: {body['error']} (query: {q})")
        result = body.get("results", [{}])[0]
        if "error" in result:
            raise InfluxError(f"InfluxQL error: {result['error']} (query: {q})")
        return [Series(s.get("tags") or {}, s["columns"], s["values"], bool(s.get("partial") or result.get("partial")))
                for s in result.get("series", [])]


def quote_tag(value: str) -> str:
    """A tag value as an InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'
