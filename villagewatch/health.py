"""Read a service's ``/healthz`` (the ingest's, the demo's, tests', benchmarks')."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def _object(body: Any) -> dict[str, Any] | None:
    return body if isinstance(body, dict) else None


def read_health(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, Any] | None:
    """The JSON body of ``/healthz`` whether healthy (200) or not (503); None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as resp:
            return _object(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            return _object(json.loads(exc.read()))
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
