"""A small progress bar on stderr for long work (reports, backfills, flashing).

Shared helper: a terminal gets one line redrawn in place; a log file or a pipe gets a line per
10 % so that CI logs stay short. Labels are meant to be bilingual ("Đang truy vấn / querying").
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "Đang làm / working") as p: p.advance(note="station x")``."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True,
                 width: int = 28):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __enter__(self) -> Progress:
        self._draw("")
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.done + n, self.total)
        self._draw(note)

    def finish(self, note: str = "") -> None:
        if not self.enabled:
            return
        self.done = self.total
        self._draw(note, force=True)
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    def _draw(self, note: str, force: bool = False) -> None:
        if not self.enabled:
            return
        fraction = self.done / self.total
        elapsed = time.monotonic() - self.started
        if self._tty:
            filled = int(round(fraction * self.width))
            bar = "█" * filled + "░" * (self.width - filled)
            text = f"\r{self.label} [{bar}] {fraction * 100:5.1f} % {elapsed:5.1f} s {note[:40]:<40}"
            self.stream.write(text)
            self.stream.flush()
            return
        decile = int(fraction * 10)
        if decile != self._last_decile or force:
            self._last_decile = decile
            self.stream.write(f"{self.label}: {fraction * 100:3.0f} % ({self.done}/{self.total}, "
                              f"{elapsed:.1f} s){' ' + note if note else ''}\n")
            self.stream.flush()
