"""Email channel: SMTP with STARTTLS and login (stdlib smtplib, run in a worker thread)."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any


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
