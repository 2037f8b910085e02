"""`villagewatch dashboards push` against a stand-in Grafana HTTP API.

No Grafana can run on these machines, so this test serves a small fake of the Grafana HTTP API
(aiohttp, on loopback) that checks each request follows Grafana's documented API: bearer token,
JSON bodies, folder/datasource/dashboard shapes, uid length ≤ 40, a dashboard only into an existing
folder, `overwrite` for a dashboard that exists, and Grafana's answers (ids, versions, meta).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp import web

from app.cli import UserError
from dashboards import provisioning
from dashboards.context import folder_uid
from dashboards.generator import build_all
from dashboards.grafana import DATASOURCE_UID
from dashboards.push import GrafanaClient, push_all
from villagewatch.sites import load_sites

TOKEN = "glsa_test_token"


class FakeGrafana:
    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.errors: list[str] = []
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def app(self) -> web.Application:
        @web.middleware
        async def check(request: web.Request, handler):
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return web.json_response({"message": "Unauthorized"}, status=401)
            if request.method in ("POST", "PUT"):
                if request.content_type != "application/json":
                    self.errors.append(f"{request.method} {request.path} content type {request.content_type}")
                    return web.json_response({"message": "bad content type"}, status=415)
                self.writes.append(f"{request.method} {request.path}")
            return await handler(request)

        app = web.Application(middlewares=[check])
        app.add_routes([
            web.get("/api/folders/{uid}", self.get_folder), web.post("/api/folders", self.create_folder),
            web.put("/api/folders/{uid}", self.update_folder),
            web.get("/api/datasources/uid/{uid}", self.get_datasource),
            web.post("/api/datasources", self.create_datasource),
            web.put("/api/datasources/uid/{uid}", self.update_datasource),
            web.get("/api/dashboards/uid/{uid}", self.get_dashboard),
            web.post("/api/dashboards/db", self.save_dashboard),
        ])
        return app

    def bad(self, message: str, status: int = 400) -> web.Response:
        self.errors.append(message)
        return web.json_response({"message": message}, status=status)

    async def get_folder(self, request: web.Request) -> web.Response:
        f = self.folders.get(request.match_info["uid"])
        return web.json_response(f) if f else web.json_response({"message": "folder not found"}, status=404)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        uid, title = body.get("uid"), body.get("title")
        if not isinstance(title, str) or not title or not isinstance(uid, str) or len(uid) > 40:
            return self.bad(f"bad folder body {body}")
        if uid in self.folders:
            return self.bad("a folder with the same uid already exists", 409)
        self.folders[uid] = {"id": self._id(), "uid": uid, "title": title, "version": 1, "url": f"/dashboards/f/{uid}/"}
        return web.json_response(self.folders[uid])

    async def update_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        f = self.folders.get(request.match_info["uid"])
        if f is None:
            return web.json_response({"message": "folder not found"}, status=404)
        if "version" not in body and not body.get("overwrite"):
            return self.bad("folder version or overwrite required", 412)
        f.update(title=body["title"], version=f["version"] + 1)
        return web.json_response(f)

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        return web.json_response(ds) if ds else web.json_response({"message": "Data source not found"}, status=404)

    def _check_ds(self, body: dict[str, Any]) -> str | None:
        for key in ("name", "type", "access", "url"):
            if not isinstance(body.get(key), str) or not body[key]:
                return f"datasource needs {key}"
        if body["access"] not in ("proxy", "direct"):
            return "access must be proxy or direct"
        return None

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (err := self._check_ds(body)) is not None:
            return self.bad(err)
        if any(d["name"] == body["name"] for d in self.datasources.values()):
            return self.bad("data source with the same name already exists", 409)
        ds = {**body, "id": self._id(), "orgId": 1, "version": 1}
        self.datasources[body["uid"]] = ds
        return web.json_response({"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]})

    async def update_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        ds = self.datasources.get(request.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        if (err := self._check_ds(body)) is not None:
            return self.bad(err)
        ds.update(body, version=ds["version"] + 1)
        return web.json_response({"datasource": ds, "id": ds["id"], "message": "Datasource updated"})

    async def get_dashboard(self, request: web.Request) -> web.Response:
        d = self.dashboards.get(request.match_info["uid"])
        if d is None:
            return web.json_response({"message": "Dashboard not found"}, status=404)
        return web.json_response({"dashboard": d["dashboard"], "meta": {
            "folderUid": d["folderUid"], "folderId": self.folders[d["folderUid"]]["id"], "version": d["dashboard"]["version"],
            "slug": d["dashboard"]["title"].lower(), "url": f"/d/{d['dashboard']['uid']}"}})

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        dash, folder = body.get("dashboard"), body.get("folderUid")
        if not isinstance(dash, dict) or not dash.get("title") or not dash.get("uid") or len(dash["uid"]) > 40:
            return self.bad("dashboard needs a title and a uid of at most 40 characters")
        if folder not in self.folders:
            return self.bad(f"folder {folder!r} not found")
        refs = {p["datasource"]["uid"] for p in dash.get("panels", []) if "datasource" in p}
        if not refs <= set(self.datasources):
            return self.bad(f"dashboard uses unknown datasource(s) {refs - set(self.datasources)}")
        old = self.dashboards.get(dash["uid"])
        if old is not None and not body.get("overwrite"):
            return self.bad("A dashboard with the same uid already exists", 412)
        if dash.get("id") not in (None, old and old["dashboard"]["id"]):
            return self.bad("dashboard id does not match", 404)
        version = old["dashboard"]["version"] + 1 if old else 1
        stored = {**dash, "id": old["dashboard"]["id"] if old else self._id(), "version": version}
        self.dashboards[dash["uid"]] = {"dashboard": stored, "folderUid": folder}
        return web.json_response({"id": stored["id"], "uid": dash["uid"], "url": f"/d/{dash['uid']}",
                                  "status": "success", "version": version, "slug": dash["title"].lower()})


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app(), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _push(url: str, token: str = TOKEN, sites=None):
    sites = sites or load_sites(provisioning.Path(__file__).resolve().parent.parent / "sites")
    built = build_all(sites)
    return push_all(GrafanaClient(url, token), provisioning.datasource("http://influxdb:8086", "villagewatch"),
                    provisioning.folders(sites), [(folder_uid(b.commune, b.lang), b.dashboard) for b in built]), built


def test_push_creates_everything_then_changes_nothing(grafana):
    fake, url = grafana
    changes, built = _push(url)
    assert not fake.errors
    assert {c.action for c in changes} == {"created"}
    assert set(fake.dashboards) == {b.dashboard["uid"] for b in built}
    assert set(fake.folders) == {"vw-tan-thuan-dong-folder", "vw-tan-thuan-dong-folder-en"}
    assert fake.folders["vw-tan-thuan-dong-folder"]["title"] == "Xã Tân Thuận Đông"
    assert list(fake.datasources) == [DATASOURCE_UID]
    for b in built:  # each dashboard landed in its commune's folder of its language
        assert fake.dashboards[b.dashboard["uid"]]["folderUid"] == folder_uid(b.commune, b.lang)
    writes = len(fake.writes)

    again, _ = _push(url)
    assert {c.action for c in again} == {"unchanged"}, [str(c) for c in again if c.action != "unchanged"]
    assert len(fake.writes) == writes, fake.writes[writes:]
    assert all(d["dashboard"]["version"] == 1 for d in fake.dashboards.values())


def test_push_updates_only_what_differs(grafana):
    fake, url = grafana
    _push(url)
    uid = "vw-tan-thuan-dong-flood"
    fake.dashboards[uid]["dashboard"]["title"] = "sửa tay / edited by hand"
    fake.folders["vw-tan-thuan-dong-folder-en"]["title"] = "renamed"
    changes, _ = _push(url)
    changed = {(c.kind, c.uid, c.action) for c in changes if c.action != "unchanged"}
    assert changed == {("dashboard", uid, "updated"), ("folder", "vw-tan-thuan-dong-folder-en", "updated")}
    assert fake.dashboards[uid]["dashboard"]["title"] == "Xã Tân Thuận Đông — Lũ lụt"
    assert fake.dashboards[uid]["dashboard"]["version"] == 2
    assert not fake.errors


def test_wrong_token_is_a_user_error_with_a_hint(grafana):
    fake, url = grafana
    with pytest.raises(UserError) as err:
        _push(url, token="wrong")
    assert "401" in str(err.value) and "service-account" in err.value.hint
    assert not fake.dashboards


def run_cli(argv: list[str]) -> int:
    """Our subcommand through argparse, as `villagewatch` runs it (only our register(), so the
    test does not depend on other parts' subcommands)."""
    import argparse

    from dashboards.cli import register
    parser = argparse.ArgumentParser(prog="villagewatch")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def test_cli_push_reports_changes(grafana, capsys):
    fake, url = grafana
    assert run_cli(["dashboards", "push", "--url", url, "--token", TOKEN, "--lang", "vi"]) == 0
    out = capsys.readouterr().out
    assert "tạo mới / created" in out and "0 không đổi / unchanged" in out
    assert run_cli(["dashboards", "push", "--url", url, "--token", TOKEN, "--lang", "vi"]) == 0
    assert "0 thay đổi / changed" in capsys.readouterr().out
    assert not fake.errors


def test_cli_push_unreachable_grafana():
    from app.stack import free_port
    with pytest.raises(UserError) as err:
        run_cli(["dashboards", "push", "--url", f"http://127.0.0.1:{free_port()}", "--token", TOKEN])
    assert "cannot reach Grafana" in str(err.value) and "--url" in err.value.hint
