"""The report month as instants: local midnights of the site's time zone, in UTC milliseconds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_S = 86_400
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodError(ValueError):
    """The month given by the user is not a month (input error, not a bug)."""


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    timezone: str

    @classmethod
    def parse(cls, text: str, timezone: str) -> Month:
        m = _MONTH_RE.match(text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise PeriodError(f"tháng {text!r} không hợp lệ / month {text!r} is not YYYY-MM")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PeriodError(f"unknown time zone {timezone!r}") from exc
        return cls(int(m.group(1)), int(m.group(2)), timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> list[date]:
        first = date(self.year, self.month, 1)
        nxt = date(self.year + (self.month == 12), self.month % 12 + 1, 1)
        return [first + timedelta(days=i) for i in range((nxt - first).days)]

    def day_start_ms(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp() * 1000)

    @property
    def start_ms(self) -> int:
        return self.day_start_ms(self.days[0])

    @property
    def end_ms(self) -> int:
        """Exclusive end: local midnight starting the next month."""
        return self.day_start_ms(self.days[-1] + timedelta(days=1))

    def day_index(self, ts_ms: int) -> int:
        """Index in ``days`` of the local day containing ``ts_ms``."""
        local = datetime.fromtimestamp(ts_ms / 1000, self.tz).date()
        return (local - self.days[0]).days

    def local(self, ts_ms: int) -> datetime:
        return datetime.fromtimestamp(ts_ms / 1000, self.tz)
