"""Webhook channel: JSON POST of the alert; any non-2xx answer is a failure (retried by the dispatcher)."""

from __future__ import annotations

from typing import Any

import aiohttp

from alerts.notify.channel import Channel
from villagewatch.schema import Key, Str


async def send(config: dict[str, Any], target: str, message) -> None:
    url = target or config["url"]
    timeout = aiohttp.ClientTimeout(total=float(config.get("timeout_s", 10)))
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.post(url, json=message.payload()) as resp:
        if resp.status // 100 != 2:
            raise RuntimeError(f"webhook {url} answered HTTP {resp.status}")


CHANNEL = Channel("webhook", send, [
    Key("url", Str(r"https?://.+", "http(s) URL"), required=True,
        doc="where the JSON is posted (a route's `webhook:URL` target overrides it)"),
], doc=__doc__ or "")
