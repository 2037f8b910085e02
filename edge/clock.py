"""Is the gateway's wall clock trustworthy? (docs/edge.md, "Clock policy")

Cheap boards have no real-time clock: they boot at 1970, or at the time fake-hwclock saved, until
NTP answers. A reading stamped with such a clock is either rejected downstream (`ts_too_old`) or
stored at the wrong time. So the gateway asks a ``ClockGuard`` before it trusts ``wall()``:

- never trusted: a wall clock before the build floor (BUILD_FLOOR_MS), or — unless the OS reports
  NTP sync, which wins over our own files — before the newest reading already spooled (time does
  not run backwards across a restart);
- ``mode="os"``: trusted only while the OS says it is synchronised (adjtimex: NTP/chrony/timesyncd);
- ``mode="sane"`` (default): the OS state is reported but not required — VMs and containers often
  keep a good clock that the kernel still calls "unsynchronised";
- an operator offset (``--clock-offset``) is a source of truth: wall + offset is trusted;
- a step (wall − monotonic jumps by more than ``step_threshold_s``) makes the clock ``stepped``
  (untrusted) for ``settle_s``: readings taken around a step are re-timed from the monotonic clock.

The time source is injected (``Clock``: wall, monotonic, synced) so tests control it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# No code of this release runs before this instant: a clock showing an earlier time is wrong.
BUILD_FLOOR_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

SYNCED, UNSYNCED, STEPPED = "synced", "unsynced", "stepped"
MODES = ("sane", "os")


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the epoch, as the system clock says (may be wrong)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (within one boot)."""

    def synced(self) -> bool | None:
        """The OS's own sync state: True, False, or None when it does not say."""

    def boot_id(self) -> str:
        """Identifies this boot: monotonic times of another boot cannot be compared."""


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h), read-only use (modes = 0)
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_pad", ctypes.c_int * 11)]


TIME_ERROR = 5  # adjtimex return value: clock not synchronised
STA_NANO = 0x2000  # adjtimex status: offset in nanoseconds (else microseconds)


class SystemClock:
    """The real clocks; sync state from adjtimex(2) where the OS exposes it (Linux)."""

    def __init__(self) -> None:
        self._libc = None
        try:
            name = ctypes.util.find_library("c")
            self._libc = ctypes.CDLL(name, use_errno=True) if name else None
        except OSError:
            self._libc = None
        self._boot = None
        self.os_offset_s: float | None = None  # the kernel's estimate of the clock's error (NTP)

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool | None:
        if self._libc is None or not hasattr(self._libc, "adjtimex"):
            return None
        tx = _Timex()
        state = self._libc.adjtimex(ctypes.byref(tx))
        if state < 0:
            return None
        self.os_offset_s = tx.offset / (1e9 if tx.status & STA_NANO else 1e6)
        return state != TIME_ERROR

    def boot_id(self) -> str:
        if self._boot is None:
            try:
                self._boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            except OSError:
                self._boot = f"unknown-{time.time() - time.monotonic():.0f}"
        return self._boot


@dataclass
class ClockGuard:
    """The gateway's opinion of its clock; ``observe()`` before using ``trusted``."""

    clock: Clock
    mode: str = "sane"
    floor_ms: int = BUILD_FLOOR_MS
    operator_offset_s: float | None = None
    step_threshold_s: float = 2.0
    settle_s: float = 3.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"clock mode must be one of {MODES}, not {self.mode!r}")
        self.state = UNSYNCED
        self.trusted = False
        self.os_synced: bool | None = None
        self.steps = 0
        self.build_floor_ms = self.floor_ms  # raise_floor() may add the newest spooled reading
        self.last_step_s: float | None = None
        self.reason = "not observed yet"
        self._offset: float | None = None  # wall - monotonic at the last observation
        self._stepped_at: float | None = None
        self._floor_mono = self.clock.monotonic()  # the monotonic instant the floor stands for
        self.observe()
        self.start_estimate_ms = self.best_estimate_ms(self._floor_mono)

    def raise_floor(self, ts_ms: int | None) -> None:
        """The newest reading already spooled: a clock showing an earlier time is wrong."""
        if ts_ms is not None and ts_ms > self.floor_ms:
            self.floor_ms, self._floor_mono = int(ts_ms), self.clock.monotonic()
            self.observe()
            self.start_estimate_ms = self.best_estimate_ms(self._floor_mono)

    def wall(self) -> float:
        return self.clock.wall() + (self.operator_offset_s or 0.0)

    def wall_ms(self) -> int:
        return int(self.wall() * 1000)

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def observe(self) -> bool:
        """Re-read both clocks and the OS state; returns whether the wall clock is trusted now."""
        mono = self.clock.monotonic()
        wall = self.wall()
        offset = wall - mono
        if self._offset is not None and abs(offset - self._offset) > self.step_threshold_s:
            self.steps += 1
            self.last_step_s = round(offset - self._offset, 3)
            self._stepped_at = mono
        self._offset = offset
        self.os_synced = self.clock.synced()
        floor = self.build_floor_ms if self.os_synced is True else self.floor_ms
        if wall * 1000 < floor:
            self.state, self.trusted = UNSYNCED, False
            self.reason = "wall clock before the build date or the newest spooled reading"
        elif self._stepped_at is not None and mono - self._stepped_at < self.settle_s:
            self.state, self.trusted = STEPPED, False
            self.reason = f"wall clock stepped by {self.last_step_s:+.0f} s"
        elif self.operator_offset_s is None and self.mode == "os" and self.os_synced is not True:
            self.state, self.trusted = UNSYNCED, False
            self.reason = "the OS does not report the clock as synchronised (NTP)"
        else:
            self.state, self.trusted = SYNCED, True
            self.reason = "operator offset" if self.operator_offset_s is not None else (
                "OS synchronised" if self.os_synced else "plausible: after the build date, no step")
        return self.trusted

    def offset_now(self) -> float:
        """wall − monotonic (seconds): a monotonic time + this = wall time, while no step happens."""
        assert self._offset is not None
        return self._offset

    def best_estimate_ms(self, mono: float) -> int:
        """Best guess of the wall time of a monotonic instant (of this boot) while the clock is not
        trusted: the wall clock, but never before the floor (the floor stands for the instant the
        gateway started); in the right order and spacing, so no two readings share a time."""
        by_wall = self.wall_ms() - (self.clock.monotonic() - mono) * 1000
        by_floor = self.floor_ms + (mono - self._floor_mono) * 1000
        return int(max(by_wall, by_floor))

    def status(self) -> dict:
        return {"state": self.state, "trusted": self.trusted, "reason": self.reason, "mode": self.mode,
                "os_synced": self.os_synced, "os_offset_s": getattr(self.clock, "os_offset_s", None),
                "offset_s": self.operator_offset_s, "steps": self.steps,
                "last_step_s": self.last_step_s}
