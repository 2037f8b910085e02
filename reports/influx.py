"""Read-only InfluxQL for reports: the platform's one InfluxDB client (villagewatch/influx.py,
synchronous side), v1 user/password or v2 token. Kept as a name for the report code's imports.
"""

from __future__ import annotations

from villagewatch.influx import InfluxError, InfluxReader, Series, quote_ident, quote_tag

__all__ = ["InfluxError", "InfluxReader", "Series", "quote_ident", "quote_tag"]
