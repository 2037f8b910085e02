"""What a technician on site reads on the gateway's console (docs/edge.md, "Console output").

Vietnamese first, English after " / ". At most one line per *cause* per ``every_s`` (60 s): a broker
that refuses every second must not scroll the screen, and must not be silent either — repeats are
counted and the count rides on the next line of that cause. Thread-safe (paho calls from its thread).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

from villagewatch import contract, textfmt

log = logging.getLogger("edge.console")


class Console:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic,
                 emit: Callable[[int, str], None] | None = None, every_s: float = 60.0):
        self.monotonic, self.every_s = monotonic, every_s
        self.emit = emit or (lambda level, text: log.log(level, "%s", text))
        self._last: dict[str, float] = {}
        self._repeats: dict[str, int] = {}
        self._lock = threading.Lock()

    def say(self, cause: str, text: str, level: int = logging.WARNING) -> bool:
        """Print ``text`` unless ``cause`` was printed less than ``every_s`` ago; True if printed."""
        now = self.monotonic()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last < self.every_s:
                self._repeats[cause] = self._repeats.get(cause, 0) + 1
                return False
            self._last[cause] = now
            repeats = self._repeats.pop(cause, 0)
        if repeats:
            text += f" (+{repeats} lần trong {self.every_s:.0f} s qua / more times in the last {self.every_s:.0f} s)"
        self.emit(level, text)
        return True


def reason(exc: BaseException) -> str:
    """A connection failure in a few words a technician can act on."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host (DNS)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def connect_failed(url: str, why: str, retry_s: float) -> str:
    return (f"không kết nối được {url}: {why}, thử lại sau {retry_s:.0f} s / "
            f"cannot connect to {url}: {why}, retrying in {retry_s:.0f} s")


def first_reading(station: str, metrics: dict[str, float]) -> str:
    parts_vi, parts_en = [], []
    for name, value in metrics.items():
        m = contract.METRICS.get(name)
        unit, decimals = (m.unit, m.decimals) if m else (None, 2)
        parts_vi.append(f"{name} {textfmt.quantity(value, unit, decimals, 'vi')}")
        parts_en.append(f"{name} {textfmt.quantity(value, unit, decimals, 'en')}")
    return (f"trạm {station}: bản ghi đầu tiên — {', '.join(parts_vi)} / "
            f"station {station}: first reading — {', '.join(parts_en)}")
