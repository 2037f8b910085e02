"""Read a service's ``/healthz`` (the ingest's, the demo's, tests', benchmarks')."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def read_health(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict | None:
    """The JSON body of ``/healthz`` whether healthy (200) or not (503); None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
