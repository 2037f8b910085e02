"""asyncio helpers every long-running service needs to stop when told.

``asyncio.wait_for`` on Python 3.11 swallows a cancellation that arrives in the same loop turn as
the awaited thing completes (CPython gh-86296, fixed in 3.12): a ``while True`` loop around it then
never ends, and the service ignores SIGTERM — seen as an edge gateway that did not stop within
30 s on a loaded machine. ``asyncio.timeout`` (3.11+) does not have that flaw; these wrappers use it.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s``; True if it is set. A cancellation always propagates."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def get_or_timeout(queue: asyncio.Queue[T], timeout_s: float) -> tuple[bool, T | None]:
    """``(True, item)`` from ``queue``, or ``(False, None)`` after ``timeout_s``; cancellable."""
    try:
        async with asyncio.timeout(timeout_s):
            return True, await queue.get()
    except TimeoutError:
        return False, None
