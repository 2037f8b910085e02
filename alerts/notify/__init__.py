"""Notification channels, one module per channel, and the dispatcher that drains the outbox.

Registry: ``CHANNELS[type] -> Channel`` (alerts/notify/channel.py: type name, settings keys, async
``send(config, target, message)``); one line per channel below. A new channel is one module that ends
in ``CHANNEL = Channel(...)`` plus its line here; the settings schema and checks follow from the
registry (alerts/settings.py), and so does the dispatcher. A channel raises on failure;
the dispatcher retries with exponential backoff, logs, and gives up after ``retries`` attempts.
Each send runs in its own task with a timeout, so a slow or failing channel never blocks the
others or the engine. The MQTT "channel" is the ``_alerts`` topic, published for every transition
by the service itself (alerts/service.py), whatever the routing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts.notify import email, telegram, webhook
from alerts.notify.channel import Channel, Sender
from alerts.notify.text import build_message

__all__ = ["CHANNELS", "Channel", "Dispatcher", "Sender", "register"]

log = logging.getLogger("villagewatch.alerts.notify")

REMINDER_EVENTS = ("renotify", "escalation")  # only meaningful while nobody has acknowledged

CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Add a channel type (one line per channel module); a type name is registered once."""
    if channel.type in CHANNELS and CHANNELS[channel.type] is not channel:
        raise ValueError(f"notification channel type {channel.type!r} is registered twice")
    CHANNELS[channel.type] = channel
    return channel


register(email.CHANNEL)
register(webhook.CHANNEL)
register(telegram.CHANNEL)


@dataclass
class Dispatcher:
    store: Any  # alerts.store.AlertStore
    config: Any  # alerts.settings.AlertsConfig
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    def __post_init__(self) -> None:
        self.inflight: dict[int, asyncio.Task] = {}

    def drain(self) -> list[asyncio.Task]:
        """Start a task for every due outbox row not already in flight."""
        started = []
        for row in self.store.pending_notifications(self.now_ms(), exclude=self.inflight):
            task = asyncio.get_running_loop().create_task(self._send(row))
            self.inflight[row["id"]] = task
            task.add_done_callback(lambda _t, i=row["id"]: self.inflight.pop(i, None))
            started.append(task)
        return started

    async def _send(self, row: dict) -> None:
        channel = self.config.channels.get(row["channel"])
        alert = self.store.get(row["alert_id"])
        if row["event"] in REMINDER_EVENTS and alert is not None and alert["state"] != "firing":
            # acknowledged or resolved while the reminder waited (e.g. for a retry): asking people to
            # act on it now would be wrong
            self.store.mark_cancelled(row["id"], f"alert {alert['state']} before the {row['event']} was sent")
            log.info("notification %s (%s) dropped: alert %s is %s", row["id"], row["event"], alert["id"],
                     alert["state"])
            return
        try:
            if channel is None:
                raise ValueError(f"channel {row['channel']!r} is not configured")
            message = build_message(alert, row["event"], self.config.public_url)
            await asyncio.wait_for(CHANNELS[channel["type"]].send(channel, row["target"] or "", message),
                                   timeout=float(channel.get("timeout_s", 10)) * 2)
        except Exception as exc:  # noqa: BLE001 - any channel failure is logged and retried
            attempts = row["attempts"] + 1
            give_up = attempts > self.config.retries
            delay = self.config.retry_backoff_s * 2 ** (attempts - 1)
            self.store.mark_failed(row["id"], f"{type(exc).__name__}: {exc}", self.now_ms() + int(delay * 1000),
                                   give_up)
            log.warning("notification %s via %s to %s failed (attempt %d%s): %s", row["id"], row["channel"],
                        row["target"], attempts, ", giving up" if give_up else f", retry in {delay:.0f} s", exc)
            return
        self.store.mark_sent(row["id"], self.now_ms())
        log.info("notification %s (%s) sent via %s to %s", row["id"], row["event"], row["channel"], row["target"])

    async def run(self, interval_s: float = 0.2) -> None:
        while True:
            try:
                self.drain()
            except Exception:  # noqa: BLE001 - the dispatcher must outlive a bad row
                log.exception("notification dispatcher")
            await asyncio.sleep(interval_s)
