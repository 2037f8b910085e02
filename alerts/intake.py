"""Bounded hand-over of MQTT messages from paho's network thread to the asyncio consumer.

Backpressure, never dropping: ``put`` (paho's thread, inside ``on_message``) BLOCKS while
``capacity`` messages are held unacknowledged in this process (waiting here or being evaluated).
A blocked network thread stops reading the socket; TCP flow control then makes the broker keep the
rest in our persistent session queue (Mosquitto's ``max_queued_messages``/``max_queued_bytes``, see
docs/alerts.md), where they are safe and will be delivered once we catch up. The thread is blocked
only while the consumer is behind; each finished chunk frees room at once.

Hand-over in batches: the consumer is woken with one ``call_soon_threadsafe`` per batch (only when
no wake-up is already pending), not one per message — per-message hand-over to asyncio costs more
than half of paho's rate (../shared/reference/libraries.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Delivery:
    """One MQTT message as received, with what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int  # which broker connection delivered it (acks are only valid on that one)
    received: float = field(default_factory=time.monotonic)


class Intake:
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int):
        if capacity < 1:
            raise ValueError("intake capacity must be at least 1")
        self.loop = loop
        self.capacity = capacity
        self._items: deque[Delivery] = deque()
        self._taken: deque[Delivery] = deque()  # handed to the consumer, not finished yet
        self._cond = threading.Condition()
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self.waits = 0  # times the network thread had to wait for room (backpressure engaged)
        self.wait_s = 0.0

    # ------------------------------------------------------------------ network thread
    def put(self, item: Delivery) -> bool:
        """Hold ``item`` for the consumer; blocks while full. False once closed (not taken: the
        message stays unacknowledged and the broker delivers it again)."""
        with self._cond:
            if len(self._items) + len(self._taken) >= self.capacity and not self._closed:
                self.waits += 1
                t0 = time.monotonic()
                while len(self._items) + len(self._taken) >= self.capacity and not self._closed:
                    self._cond.wait(1.0)
                self.wait_s += time.monotonic() - t0
            if self._closed:
                return False
            self._items.append(item)
            if self._wake_pending:
                return True
            self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # loop closed during shutdown
            return False
        return True

    # ------------------------------------------------------------------ consumer (event loop)
    async def take(self) -> list[Delivery]:
        """Everything waiting, oldest first (at least one message)."""
        while True:
            await self._wake.wait()
            with self._cond:
                self._wake.clear()
                self._wake_pending = False
                if self._items:
                    batch = list(self._items)
                    self._items.clear()
                    self._taken.extend(batch)
                    return batch

    def done(self, count: int) -> None:
        """The oldest ``count`` taken messages are finished (evaluated and acknowledged)."""
        with self._cond:
            for _ in range(min(count, len(self._taken))):
                self._taken.popleft()
            self._cond.notify_all()

    def close(self) -> None:
        """Release a blocked network thread; nothing more is accepted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ health
    @property
    def depth(self) -> int:
        """Messages held unacknowledged in this process (waiting + being evaluated)."""
        return len(self._items) + len(self._taken)

    def oldest_age_s(self) -> float:
        with self._cond:
            oldest = self._taken[0] if self._taken else self._items[0] if self._items else None
        return time.monotonic() - oldest.received if oldest is not None else 0.0
