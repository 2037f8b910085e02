"""What a notification channel module declares: its type name, its settings keys, its ``send``.

A channel is one module under ``alerts/notify/`` ending in ``CHANNEL = Channel(...)`` and one line in
the registry (``alerts/notify/__init__.py``). The settings loader (alerts/settings.py) builds the
``channels:`` schema and the "needs `key`" checks from the registry, so nothing else changes.

Keys marked ``required=True`` must be present and non-empty in the YAML for channels of that type
(a required key may still carry a default, e.g. the SMTP host); they are checked after the defaults
are filled in, with the file and line of the channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from villagewatch.schema import Key, Num

# Sender(channel settings, route target or "", alerts.notify.text.Message); raises on failure.
Sender = Callable[[dict[str, Any], str, Any], Awaitable[None]]

# Keys every channel has: the dispatcher reads them (alerts/notify/__init__.py).
COMMON_KEYS = [
    Key("timeout_s", Num(0.1, 120), required=False, default=10,
        doc="seconds one attempt may take (the dispatcher cancels it after twice this)"),
]


@dataclass(frozen=True)
class Channel:
    type: str  # the `type:` written in the YAML
    send: Sender
    keys: list[Key] = field(default_factory=list)
    doc: str = ""

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys if k.required)
