"""Email channel: SMTP with STARTTLS and login (stdlib smtplib, run in a worker thread)."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from alerts.notify.channel import Channel
from villagewatch.schema import Bool, Key, Num, Str


def _send_sync(config: dict[str, Any], target: str, message) -> None:
    msg = EmailMessage()
    msg["From"] = config.get("sender") or "villagewatch@localhost"
    msg["To"] = target
    msg["Subject"] = message.subject
    msg.set_content(message.text)
    timeout = float(config.get("timeout_s", 10))
    with smtplib.SMTP(config["host"], int(config.get("port", 587)), timeout=timeout) as smtp:
        if config.get("starttls", True):
            ctx = ssl.create_default_context(cafile=config.get("cafile"))
            smtp.starttls(context=ctx)
        if config.get("username"):
            password = os.environ.get(config.get("password_env") or "", "")
            smtp.login(config["username"], password)
        smtp.send_message(msg)


async def send(config: dict[str, Any], target: str, message) -> None:
    if not target:
        raise ValueError("email route needs a recipient: write `channel:address@example.vn`")
    await asyncio.to_thread(_send_sync, config, target, message)


CHANNEL = Channel("email", send, [
    Key("host", Str(), required=True, default="127.0.0.1", doc="SMTP server"),
    Key("port", Num(1, 65535, integer=True), required=False, default=587),
    Key("starttls", Bool(), required=False, default=True),
    Key("username", Str(), required=False),
    Key("password_env", Str(), required=False, doc="environment variable holding the password"),
    Key("sender", Str(), required=False, default="villagewatch@localhost"),
    Key("cafile", Str(), required=False, doc="CA bundle to verify the SMTP server's certificate"),
], doc=__doc__ or "")
