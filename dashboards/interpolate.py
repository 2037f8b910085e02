"""Substitute template variables in an InfluxQL query the way Grafana's InfluxDB datasource does.

Grafana cannot run on these machines; this is how the tests (and ``villagewatch dashboards check``)
run every panel's query on a real InfluxDB. Rules followed (Grafana ``influxdb/datasource.ts``,
``interpolateQueryExpr``): a variable that is neither multi-value nor include-all is substituted
with regex metacharacters escaped; a multi-value or "All" selection becomes ``(a|b|c)`` of
regex-escaped values (our queries always use them inside ``/^...$/``); ``$timeFilter`` becomes
``time >= now() - 24h`` for a relative range or ``time >= {from}ms and time <= {to}ms`` for an
absolute one; ``$__interval`` is the range divided by the panel width, rounded to a Grafana step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_REGEX_META = re.compile(r"([\\^$*+?.()|{}\[\]/])")
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")

# Grafana's interval steps (rangeutil.ts, roundInterval), in ms, and how they are written.
_STEPS = [(10, "10ms"), (20, "20ms"), (50, "50ms"), (100, "100ms"), (200, "200ms"), (500, "500ms"),
          (1000, "1s"), (2000, "2s"), (5000, "5s"), (10_000, "10s"), (15_000, "15s"), (20_000, "20s"),
          (30_000, "30s"), (60_000, "1m"), (120_000, "2m"), (300_000, "5m"), (600_000, "10m"),
          (900_000, "15m"), (1_200_000, "20m"), (1_800_000, "30m"), (3_600_000, "1h"),
          (7_200_000, "2h"), (10_800_000, "3h"), (21_600_000, "6h"), (43_200_000, "12h"),
          (86_400_000, "1d"), (604_800_000, "7d"), (2_592_000_000, "30d"), (31_536_000_000, "1y")]


def escape_regex(value: str) -> str:
    return _REGEX_META.sub(r"\\\1", value)


def round_interval(ms: float) -> tuple[int, str]:
    for step_ms, text in _STEPS:
        if ms <= step_ms:
            return step_ms, text
    return _STEPS[-1]


@dataclass
class TimeRange:
    """Either relative (``relative="24h"``) or absolute epoch milliseconds."""

    relative: str | None = "24h"
    from_ms: int | None = None
    to_ms: int | None = None

    def duration_ms(self) -> int:
        if self.relative:
            n, unit = int(self.relative[:-1]), self.relative[-1]
            return n * {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[unit]
        return int(self.to_ms - self.from_ms)

    def time_filter(self) -> str:
        if self.relative:
            return f"time >= now() - {self.relative}"
        return f"time >= {self.from_ms}ms and time <= {self.to_ms}ms"


def interpolate(query: str, variables: Mapping[str, Sequence[str]], multi: Mapping[str, bool],
                time_range: TimeRange, max_data_points: int = 1000,
                min_interval: str | None = None) -> str:
    """``variables`` maps a name to its selected values; ``multi[name]`` says if it is multi/All."""
    step_ms, interval = round_interval(time_range.duration_ms() / max_data_points)
    if min_interval:
        min_ms = TimeRange(min_interval).duration_ms()
        if min_ms > step_ms:
            step_ms, interval = min_ms, min_interval
    builtins = {"timeFilter": time_range.time_filter(), "__interval": interval,
                "__interval_ms": str(step_ms)}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return match.group(0)  # Grafana leaves unknown variables as they are
        values = [escape_regex(v) for v in variables[name]]
        if not multi.get(name) or len(values) == 1:
            return values[0] if values else ""
        return "(" + "|".join(values) + ")"

    return _VAR.sub(substitute, query)


def unresolved_variables(query: str) -> list[str]:
    return [m.group(0) for m in _VAR.finditer(query)]
