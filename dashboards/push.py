"""Push the datasource, the folders and the dashboards through Grafana's HTTP API.

Idempotent: everything has a stable uid; each object is read first and written only when it
differs, so a second push reports "unchanged" for everything and writes nothing. Endpoints used
(Grafana 9–11 HTTP API): GET/POST /api/datasources, GET/PUT /api/datasources/uid/:uid,
GET/PUT /api/folders/:uid, POST /api/folders, GET /api/dashboards/uid/:uid, POST /api/dashboards/db.

Written on the standard library (urllib): a push is a few dozen sequential requests, and the
Python Grafana clients either pull a replacement for urllib3 into the environment (grafana-client)
or are unmaintained since 2020 (grafana-api) (../shared/reference/libraries.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from villagewatch.errors import UserError

VOLATILE_KEYS = ("id", "version")  # Grafana assigns these; they are not part of what we generate


@dataclass
class Change:
    kind: str  # datasource | folder | dashboard
    uid: str
    title: str
    action: str  # created | updated | unchanged

    def __str__(self) -> str:
        words = {"created": "tạo mới / created", "updated": "cập nhật / updated",
                 "unchanged": "không đổi / unchanged"}
        return f"{self.kind:10} {self.uid:40} {words[self.action]:28} {self.title}"


class NotFound(Exception):
    pass


class GrafanaClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            if exc.code == 404 and method == "GET":
                raise NotFound(path) from exc
            if exc.code in (401, 403):
                raise UserError(f"Grafana từ chối token / Grafana refused the token ({exc.code} on {method} {path})",
                                hint="use a service-account token with the Editor or Admin role "
                                     "(Administration → Service accounts)") from exc
            raise UserError(f"Grafana answered {exc.code} to {method} {path}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise UserError(f"không kết nối được Grafana / cannot reach Grafana at {self.base}: {exc.reason}",
                            hint="check --url (e.g. http://localhost:3000) and that Grafana is running") from exc
        return json.loads(raw) if raw else None


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in VOLATILE_KEYS}


def push_datasource(client: GrafanaClient, ds: dict[str, Any]) -> Change:
    uid = ds["uid"]
    try:
        current = client.request("GET", f"/api/datasources/uid/{uid}")
    except NotFound:
        client.request("POST", "/api/datasources", ds)
        return Change("datasource", uid, ds["name"], "created")
    if all(current.get(k) == v for k, v in ds.items()):
        return Change("datasource", uid, ds["name"], "unchanged")
    client.request("PUT", f"/api/datasources/uid/{uid}", ds)
    return Change("datasource", uid, ds["name"], "updated")


def push_folder(client: GrafanaClient, uid: str, title: str) -> Change:
    try:
        current = client.request("GET", f"/api/folders/{uid}")
    except NotFound:
        client.request("POST", "/api/folders", {"uid": uid, "title": title})
        return Change("folder", uid, title, "created")
    if current.get("title") == title:
        return Change("folder", uid, title, "unchanged")
    client.request("PUT", f"/api/folders/{uid}", {"title": title, "overwrite": True})
    return Change("folder", uid, title, "updated")


def push_dashboard(client: GrafanaClient, dashboard: dict[str, Any], folder: str) -> Change:
    uid, title = dashboard["uid"], dashboard["title"]
    action = "created"
    try:
        current = client.request("GET", f"/api/dashboards/uid/{uid}")
        same_folder = (current.get("meta") or {}).get("folderUid") == folder
        if same_folder and _strip(current.get("dashboard") or {}) == _strip(dashboard):
            return Change("dashboard", uid, title, "unchanged")
        action = "updated"
    except NotFound:
        pass
    client.request("POST", "/api/dashboards/db", {
        "dashboard": {**_strip(dashboard), "id": None}, "folderUid": folder, "overwrite": True,
        "message": "villagewatch dashboards push"})
    return Change("dashboard", uid, title, action)


def push_all(client: GrafanaClient, datasource: dict[str, Any], folders: list[dict[str, str]],
             dashboards: list[tuple[str, dict[str, Any]]],
             progress: Callable[[Change], None] | None = None) -> list[Change]:
    """``dashboards`` are (folder uid, dashboard JSON) pairs."""
    changes: list[Change] = []

    def note(change: Change) -> None:
        changes.append(change)
        if progress:
            progress(change)

    note(push_datasource(client, datasource))
    for f in folders:
        note(push_folder(client, f["uid"], f["title"]))
    for folder, dash in dashboards:
        note(push_dashboard(client, dash, folder))
    return changes
