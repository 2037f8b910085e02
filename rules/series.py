"""Recent (ts, value) of one station metric, oldest first, bounded in time.

Readings may arrive out of order (edge backlogs, redelivery): ``add`` inserts in event-time order
and a second value at the same instant replaces the first (redelivery is idempotent). Prefix sums
make a window mean O(log n) (bisect); an insertion only recomputes the sums after the insertion
point, so a backlog drained oldest-first while live readings flow costs little.

A point flagged as a sensor fault (spike, flatline, suspect, calibration expired) is kept — the
``flatline`` kind looks at raw values — but is not evidence: means, counts, rates and AQI windows
leave it out.
"""

from __future__ import annotations

import bisect
import math

import numpy as np


class Series:
    def __init__(self, keep_ms: int):
        self.keep_ms = keep_ms
        self.ts: list[int] = []
        self.v: list[float] = []
        self.cs: list[float] = [0.0]  # cs[i] = sum of v[:i]
        self.ce: list[float] = [0.0]  # same for 10^(v/10) (energy mean, Leq)
        self.cn: list[int] = [0]  # cn[i] = number of evidence (non-fault) points in v[:i]
        self.fault: list[bool] = []
        self.first = 0  # index of the oldest point kept

    def add(self, ts_ms: int, value: float, fault: bool = False) -> None:
        if not self.ts or ts_ms > self.ts[-1]:
            self.ts.append(ts_ms)
            self.v.append(value)
            self.fault.append(fault)
            good = 0 if fault else 1
            self.cs.append(self.cs[-1] + value * good)
            self.ce.append(self.ce[-1] + _energy(value) * good)
            self.cn.append(self.cn[-1] + good)
        else:
            i = bisect.bisect_left(self.ts, ts_ms)
            if i < len(self.ts) and self.ts[i] == ts_ms:
                if self.v[i] == value and self.fault[i] == fault:
                    return  # redelivery of the same reading
                self.v[i], self.fault[i] = value, fault  # same instant again: the later message wins
            else:
                self.ts.insert(i, ts_ms)
                self.v.insert(i, value)
                self.fault.insert(i, fault)
                self.cs.append(0.0)
                self.ce.append(0.0)
                self.cn.append(0)
            for j in range(i, len(self.ts)):
                good = 0 if self.fault[j] else 1
                self.cs[j + 1] = self.cs[j] + self.v[j] * good
                self.ce[j + 1] = self.ce[j] + _energy(self.v[j]) * good
                self.cn[j + 1] = self.cn[j] + good
        horizon = self.ts[-1] - self.keep_ms
        while self.first < len(self.ts) and self.ts[self.first] <= horizon:
            self.first += 1
        if self.first > 4096 and self.first > len(self.ts) // 2:
            self._compact()

    def _compact(self) -> None:
        f = self.first
        self.ts, self.v, self.fault = self.ts[f:], self.v[f:], self.fault[f:]
        base_s, base_e, base_n = self.cs[f], self.ce[f], self.cn[f]
        self.cs = [c - base_s for c in self.cs[f:]]
        self.ce = [c - base_e for c in self.ce[f:]]
        self.cn = [c - base_n for c in self.cn[f:]]
        self.first = 0

    def _range(self, end_ms: int, window_ms: int) -> tuple[int, int]:
        lo = bisect.bisect_right(self.ts, end_ms - window_ms, self.first)
        hi = bisect.bisect_right(self.ts, end_ms, lo)
        return lo, hi

    def oldest(self) -> int | None:
        return self.ts[self.first] if self.first < len(self.ts) else None

    def count(self, end_ms: int, window_ms: int) -> int:
        """Evidence points in (end − window, end]."""
        lo, hi = self._range(end_ms, window_ms)
        return self.cn[hi] - self.cn[lo]

    def mean(self, end_ms: int, window_ms: int, energy: bool = False) -> float | None:
        lo, hi = self._range(end_ms, window_ms)
        n = self.cn[hi] - self.cn[lo]
        if n <= 0:
            return None
        if energy:
            total = self.ce[hi] - self.ce[lo]
            return 10 * math.log10(total / n) if total > 0 else None
        return (self.cs[hi] - self.cs[lo]) / n

    def ends(self, end_ms: int, window_ms: int) -> tuple[tuple[int, float], tuple[int, float]] | None:
        """First and last evidence points of the window."""
        lo, hi = self._range(end_ms, window_ms)
        while lo < hi and self.fault[lo]:
            lo += 1
        while hi > lo and self.fault[hi - 1]:
            hi -= 1
        if hi - lo < 2:
            return None
        return (self.ts[lo], self.v[lo]), (self.ts[hi - 1], self.v[hi - 1])

    def last_change(self, end_ms: int, window_ms: int) -> int | None:
        """Event time of the latest point at or before ``end_ms`` whose value differs from the point
        before it, looking back at most ``window_ms``; None when the values did not change over the
        whole window (flat)."""
        hi = bisect.bisect_right(self.ts, end_ms, self.first) - 1
        i = hi
        while i > self.first and self.ts[i] > end_ms - window_ms:
            if self.v[i] != self.v[i - 1]:
                return self.ts[i]
            i -= 1
        return None

    def window(self, end_ms: int, window_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Evidence points of the window as arrays (ts, value)."""
        lo, hi = self._range(end_ms, window_ms)
        ts = np.asarray(self.ts[lo:hi], dtype=np.int64)
        v = np.asarray(self.v[lo:hi], dtype=float)
        if self.cn[hi] - self.cn[lo] == hi - lo:
            return ts, v
        keep = ~np.asarray(self.fault[lo:hi], dtype=bool)
        return ts[keep], v[keep]


def _energy(value: float) -> float:
    # 10^(v/10) overflows a float above ~3080 dB: clamp (no metric gets near it; noise is ≤ 140 dBA)
    return 10 ** (min(value, 3000.0) / 10)
