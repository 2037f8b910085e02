"""Telegram Bot API channel: ``POST {api_base}/bot<token>/sendMessage`` with chat_id and text.

The API base URL is configurable (tests point it at a local aiohttp server, since this machine has no
network); the token comes from the environment variable named by ``token_env``.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from alerts.notify.channel import Channel
from villagewatch.schema import Key, Str


async def send(config: dict[str, Any], target: str, message) -> None:
    token = os.environ.get(config["token_env"], "")
    if not token:
        raise RuntimeError(f"Telegram token variable {config['token_env']} is not set")
    url = f"{config['api_base'].rstrip('/')}/bot{token}/sendMessage"
    body = {"chat_id": target, "text": message.text, "disable_web_page_preview": True}
    timeout = aiohttp.ClientTimeout(total=float(config.get("timeout_s", 10)))
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=body) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200 or not answer.get("ok"):
            raise RuntimeError(f"Telegram answered HTTP {resp.status}: {answer.get('description', answer)}")


CHANNEL = Channel("telegram", send, [
    Key("api_base", Str(r"https?://.+", "http(s) URL"), required=False, default="https://api.telegram.org"),
    Key("token_env", Str(), required=True, doc="environment variable holding the bot token"),
], doc=__doc__ or "")
