"""Inspector page (aiohttp, Vietnamese first): active alerts, acknowledge/resolve with a note,
history with filters. Links in notifications (``/alert/<id>``) open the alert.

Sign-in is the portal's (villagewatch.signin): the same account store and server-side sessions in
``<data dir>/auth.sqlite``, so logging out, a password change or an admin's revocation on either
page ends the session on both. Accounts listed in the alerts configuration's ``users`` are added to
that store on start when missing (a password changed on the web is not overwritten). A commune
operator sees only their commune(s).
"""

from __future__ import annotations

import html
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from alerts.notify.text import value_text
from alerts.settings import AlertsConfig
from alerts.store import AlertStore, StoreError
from rules.messages import SEVERITY_LABELS, STATE_LABELS, bilingual, local_time
from villagewatch.signin import (
    COOKIE,
    CSRF_COOKIE,
    SESSION_S,
    Account,
    AuthStore,
    LoginRefused,
    auth_db_path,
    check_csrf,
    cookie_options,
    safe_next,
    same_origin,
)

# alert states and event kinds beyond the engine's: corrections from late data (docs/alerts.md "Late data")
LABELS = {**STATE_LABELS, "retracted": ("Đã rút lại", "Withdrawn"),
          "revised": ("Điều chỉnh thời gian theo dữ liệu đến muộn", "Times revised from late data")}
LATE_BADGE = ("<span class='badge late' title='dữ liệu đến muộn / late data'>lịch sử "
              "<span class='en'>/ historical</span></span>")

INSPECTOR: web.AppKey = web.AppKey("inspector")
SESSION_KEY = web.RequestKey("vw_session", object)

_CSS = """
body{font-family:system-ui,"Noto Sans",sans-serif;margin:0;background:#f4f6f8;color:#1b1f23}
header{background:#0b5d3b;color:#fff;padding:10px 18px;display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center}
header a{color:#fff} main{padding:16px 18px} table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d0d7de;padding:6px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#eaeef2} .critical{background:#ffd7d5} .warning{background:#fff1c2} .info{background:#ddf4ff}
.en{color:#57606a;font-size:12px} .badge{padding:2px 6px;border-radius:4px;font-weight:600}
form.inline{display:inline} textarea{width:100%;max-width:480px} .err{color:#b00020}
.box{background:#fff;border:1px solid #d0d7de;padding:12px;margin-bottom:12px;max-width:900px}
.scroll{overflow-x:auto;max-width:100%} *{box-sizing:border-box} body{overflow-wrap:break-word}
input,select,textarea,button{max-width:100%} .late{background:#e6e0f8} .retracted{text-decoration:line-through}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str, user: Account | None = None, csrf: str = "", status: int = 200) -> web.Response:
    nav = ""
    if user:
        nav = (f'<a href="/">Cảnh báo đang hoạt động</a><a href="/history">Lịch sử / History</a>'
               f'<span style="margin-left:auto">{_e(user.display)}</span>'
               f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{_e(csrf)}">'
               f'<button id="logout">Đăng xuất</button></form>')
    text = (f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width"><style>{_CSS}</style></head><body>'
            f'<header><strong>Làng thông minh — Cảnh báo môi trường</strong>{nav}</header>'
            f'<main>{body}</main></body></html>')
    return web.Response(text=text, content_type="text/html", status=status)


class Inspector:
    def __init__(self, store: AlertStore, config: AlertsConfig, sites: dict, on_change: Callable | None,
                 auth: AuthStore):
        self.store, self.config, self.sites, self.on_change, self.auth = store, config, sites, on_change, auth
        auth.seed(config.users.values())

    # ------------------------------------------------------------------ sessions (shared with the portal)
    def user(self, request: web.Request) -> Account | None:
        if SESSION_KEY not in request:
            request[SESSION_KEY] = self.auth.session(request.cookies.get(COOKIE))
        s = request[SESSION_KEY]
        return s.account if s else None

    def csrf(self, request: web.Request) -> str:
        s = self.auth.session(request.cookies.get(COOKIE))
        return s.csrf if s else ""

    def require(self, request: web.Request) -> Account:
        u = self.user(request)
        if u is None:
            raise web.HTTPFound("/login?next=" + urllib.parse.quote(request.path_qs, safe=""))
        return u

    def communes(self, user: Account) -> list[str] | None:
        return user.commune_filter()

    def visible(self, user: Account, alert: dict | None) -> bool:
        return alert is not None and user.sees(alert["commune"])

    async def checked_form(self, request: web.Request, expected: str | None) -> dict:
        if not same_origin(request.headers.get("Origin"), self.config.public_url, request.host):
            raise web.HTTPForbidden(text="Yêu cầu từ trang khác / cross-site request refused")
        form = dict(await request.post())
        if not check_csrf(expected, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="Phiên không hợp lệ, hãy tải lại trang / invalid session, reload the page")
        return form

    # ------------------------------------------------------------------ pages
    async def login_form(self, request: web.Request, error: str = "", nxt: str | None = None,
                         status: int = 200) -> web.Response:
        nxt = _e(safe_next(nxt or request.query.get("next")))
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_hex(24)
        err = f'<p class="err">{_e(error)}</p>' if error else ""
        resp = _page("Đăng nhập", f"""<div class="box"><h2>Đăng nhập <span class="en">/ Log in</span></h2>{err}
<form method="post" action="/login"><input type="hidden" name="next" value="{nxt}"><input type="hidden" name="csrf" value="{_e(token)}">
<p><label>Tên đăng nhập <span class="en">/ user name</span><br><input name="username" autocomplete="username"></label></p>
<p><label>Mật khẩu <span class="en">/ password</span><br><input name="password" type="password" autocomplete="current-password"></label></p>
<p><button type="submit">Đăng nhập</button></p></form></div>""", status=status)
        if CSRF_COOKIE not in request.cookies:
            resp.set_cookie(CSRF_COOKIE, token, **cookie_options(self.config.public_url))
        return resp

    async def login(self, request: web.Request) -> web.Response:
        form = await self.checked_form(request, request.cookies.get(CSRF_COOKIE))
        nxt = safe_next(str(form.get("next") or "/"))
        try:
            token, _ = self.auth.login(str(form.get("username", "")).strip(), str(form.get("password", "")),
                                       request.remote or "?")
        except LoginRefused as exc:
            if exc.retry_after_s:
                resp = await self.login_form(request, f"Đăng nhập sai quá nhiều lần, thử lại sau {exc.retry_after_s} giây"
                                             f" / too many failed logins, try again in {exc.retry_after_s} s", nxt, 429)
                resp.headers["Retry-After"] = str(exc.retry_after_s)
                return resp
            return await self.login_form(request, "Sai tên đăng nhập hoặc mật khẩu / wrong user name or password",
                                         nxt, 401)
        resp = web.HTTPSeeOther(nxt)
        resp.set_cookie(COOKIE, token, max_age=SESSION_S, **cookie_options(self.config.public_url))
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        await self.checked_form(request, self.csrf(request))
        self.auth.logout(request.cookies.get(COOKIE))
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    def _rows(self, alerts: list[dict], history: bool = False) -> str:
        if not alerts:
            return "<p>Không có cảnh báo nào. <span class='en'>No alerts.</span></p>"
        head = ("<tr><th>Mức độ</th><th>Trạm</th><th>Nội dung</th><th>Giá trị / ngưỡng</th><th>Quy chuẩn</th>"
                "<th>Từ lúc</th><th>Trạng thái</th></tr>")
        rows = []
        for a in alerts:
            sev_vi, sev_en = SEVERITY_LABELS[a["severity"]]
            st_vi, st_en = LABELS[a["state"]]
            since = local_time(a["started_ms"] or a["fired_ms"])
            if (history or a["late"]) and a["resolved_ms"]:
                since += f" → {local_time(a['resolved_ms'])}"
            unverified = " <span class='en'>(ngưỡng chưa kiểm chứng / unverified)</span>" if a["unverified"] else ""
            rows.append(
                f'<tr class="{_e(a["severity"])}" data-alert-id="{a["id"]}"><td><span class="badge">{_e(sev_vi)}</span>'
                f'<div class="en">{_e(sev_en)}</div></td>'
                f'<td>{_e(a["station_name_vi"])}<div class="en">{_e(a["commune"])}/{_e(a["station"])}</div></td>'
                f'<td><a href="/alert/{a["id"]}">{_e(a["message_vi"])}</a><div class="en">{_e(a["message_en"])}</div></td>'
                f'<td>{_e(value_text(a, a["value"]))} / {_e(value_text(a, a["limit"]))}</td>'
                f'<td>{_e(bilingual(a["regulation"], "vi"))}<div class="en">{_e(bilingual(a["table"], "vi"))}, '
                f'{_e(bilingual(a["column"], "vi"))}; {_e(bilingual(a["averaging"], "vi"))}</div>{unverified}</td>'
                f'<td>{_e(since)}</td><td class="{_e(a["state"])}">{_e(st_vi)}<div class="en">{_e(st_en)}</div>'
                f'{LATE_BADGE if a["late"] else ""}</td></tr>')
        # the table scrolls inside its box on a phone; the page itself never scrolls sideways
        return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'

    async def active(self, request: web.Request) -> web.Response:
        user = self.require(request)
        alerts = self.store.active(self.communes(user))
        return _page("Cảnh báo đang hoạt động", f"<h2>Cảnh báo đang hoạt động <span class='en'>/ Active alerts "
                     f"({len(alerts)})</span></h2>{self._rows(alerts)}", user, self.csrf(request))

    async def history(self, request: web.Request) -> web.Response:
        user = self.require(request)
        q = request.query
        allowed = self.communes(user)
        communes = allowed
        if q.get("commune"):
            communes = [q["commune"]] if allowed is None or q["commune"] in allowed else []

        def day_ms(text: str | None, end: bool = False) -> int | None:
            if not text:
                return None
            import datetime as dt

            from rules.messages import TZ
            try:
                d = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), TZ)
            except ValueError:
                return None
            return int((d + dt.timedelta(days=1 if end else 0)).timestamp() * 1000)

        alerts = self.store.history(communes, states=[q["state"]] if q.get("state") else None,
                                    station=q.get("station") or None, severity=q.get("severity") or None,
                                    since_ms=day_ms(q.get("from")), until_ms=day_ms(q.get("to"), end=True),
                                    text=q.get("q") or None)

        def sel(name: str, options: dict[str, tuple[str, str]]) -> str:
            opts = "".join(f'<option value="{k}"{" selected" if q.get(name) == k else ""}>{_e(v[0])} / {_e(v[1])}</option>'
                           for k, v in options.items())
            return f'<select name="{name}"><option value="">— tất cả —</option>{opts}</select>'

        form = (f'<form method="get" action="/history" class="box">Trạm <input name="station" value="{_e(q.get("station", ""))}" size="16"> '
                f'Mức độ {sel("severity", SEVERITY_LABELS)} Trạng thái {sel("state", {k: v for k, v in LABELS.items() if k != "revised"})} '
                f'Từ ngày <input type="date" name="from" value="{_e(q.get("from", ""))}"> '
                f'đến <input type="date" name="to" value="{_e(q.get("to", ""))}"> '
                f'Tìm <input name="q" value="{_e(q.get("q", ""))}" size="14"> <button type="submit">Lọc / Filter</button></form>')
        return _page("Lịch sử cảnh báo", f"<h2>Lịch sử cảnh báo <span class='en'>/ Alert history</span></h2>{form}"
                     f"{self._rows(alerts, history=True)}", user, self.csrf(request))

    async def detail(self, request: web.Request) -> web.Response:
        user = self.require(request)
        alert = self.store.get(int(request.match_info["id"]))
        if not self.visible(user, alert):
            raise web.HTTPNotFound(text="Không tìm thấy cảnh báo / alert not found")
        events = self.store.events(alert["id"])
        ev_rows = "".join(
            f"<tr><td>{_e(local_time(e['ts_ms']))}</td><td>{_e(LABELS.get(e['state'], (e['state'],))[0])}</td>"
            f"<td>{_e(e['who'])}</td><td>{_e(e['note'])}</td></tr>" for e in events)
        token = self.csrf(request)
        actions = ""
        if alert["state"] in ("firing", "acknowledged"):
            ack = ""
            if alert["state"] == "firing":
                ack = (f'<form method="post" action="/alert/{alert["id"]}/ack" class="box"><input type="hidden" name="csrf" value="{token}">'
                       f'<label>Ghi chú khi tiếp nhận <span class="en">/ note</span><br><textarea name="note" rows="2" id="ack-note"></textarea></label><br>'
                       f'<button type="submit" id="ack">Tiếp nhận / Acknowledge</button></form>')
            actions = ack + (f'<form method="post" action="/alert/{alert["id"]}/resolve" class="box"><input type="hidden" name="csrf" value="{token}">'
                             f'<label>Ghi chú khi kết thúc <span class="en">/ note</span><br><textarea name="note" rows="2" id="resolve-note"></textarea></label><br>'
                             f'<button type="submit" id="resolve">Kết thúc / Resolve</button></form>')
        err = f'<p class="err">{_e(request.query["error"])}</p>' if request.query.get("error") else ""
        sev_vi, sev_en = SEVERITY_LABELS[alert["severity"]]
        body = (f'<h2>Cảnh báo #{alert["id"]} <span class="en">/ Alert</span></h2>{err}<div class="box {alert["severity"]}">'
                f'<p><strong>{_e(alert["message_vi"])}</strong><br><span class="en">{_e(alert["message_en"])}</span></p>'
                f'<p>Mức độ: {_e(sev_vi)} <span class="en">({_e(sev_en)})</span> · Trạng thái: <span id="state">{_e(LABELS[alert["state"]][0])}</span>'
                + (f' {LATE_BADGE}<br><em>Ghi nhận từ dữ liệu đến muộn: chỉ thông báo một lần</em> '
                   '<span class="en">(recorded from late data: notified once)</span>' if alert["late"] else "")
                + '</p>'
                f'<p>Quy chuẩn: {_e(bilingual(alert["regulation"], "vi"))}<br>{_e(bilingual(alert["table"], "vi"))} — '
                f'{_e(bilingual(alert["column"], "vi"))}<br>'
                f'<span class="en">{_e(bilingual(alert["table"], "en"))} — {_e(bilingual(alert["column"], "en"))}</span><br>'
                f'Thời gian lấy trung bình: {_e(bilingual(alert["averaging"], "vi"))} '
                f'<span class="en">/ {_e(bilingual(alert["averaging"], "en"))}</span>'
                + ("<br><em>Ngưỡng chưa kiểm chứng với văn bản gốc / limit not verified against the official text</em>" if alert["unverified"] else "")
                + f'</p><p>Giá trị {_e(value_text(alert, alert["value"]))} · ngưỡng {_e(value_text(alert, alert["limit"]))} · '
                f'từ {_e(local_time(alert["started_ms"] or alert["fired_ms"]))}'
                + (f' đến {_e(local_time(alert["resolved_ms"]))}' if alert["resolved_ms"] else "")
                + f'</p></div>{actions}'
                f'<h3>Diễn biến <span class="en">/ Events</span></h3><div class="scroll"><table><tr><th>Lúc</th><th>Trạng thái</th><th>Người</th><th>Ghi chú</th></tr>{ev_rows}</table></div>')
        return _page(f"Cảnh báo #{alert['id']}", body, user, self.csrf(request))

    async def act(self, request: web.Request) -> web.Response:
        user = self.require(request)
        alert_id = int(request.match_info["id"])
        alert = self.store.get(alert_id)
        if not self.visible(user, alert):
            raise web.HTTPNotFound(text="Không tìm thấy cảnh báo / alert not found")
        form = await self.checked_form(request, self.csrf(request))
        note = str(form.get("note", "")).strip()[:2000]
        who = user.display
        now = int(time.time() * 1000)
        try:
            if request.match_info["action"] == "ack":
                updated = self.store.acknowledge(alert_id, who, note, now)
            else:
                updated = self.store.resolve(alert_id, who, note, now)
        except StoreError as exc:
            raise web.HTTPFound(f"/alert/{alert_id}?error=" + urllib.parse.quote(str(exc))) from exc
        if self.on_change:
            self.on_change(updated)
        raise web.HTTPFound(f"/alert/{alert_id}")


def create_app(store: AlertStore, config: AlertsConfig, sites: dict, on_change: Callable | None = None,
               auth: AuthStore | None = None) -> web.Application:
    """The inspector page. ``auth`` defaults to ``auth.sqlite`` beside the alert store's file — by
    default ``<data dir>/alerts.sqlite``, so the same file the portal opens in the data dir — and
    both pages then share accounts and sessions."""
    if auth is None:
        row = store.db.execute("PRAGMA database_list").fetchone()
        folder = Path(row[2]).parent if row and row[2] else Path(os.environ.get("VW_DATA_DIR") or "var")
        auth = AuthStore(auth_db_path(folder))
    ins = Inspector(store, config, sites, on_change, auth)
    app = web.Application()
    app.add_routes([
        web.get("/login", ins.login_form), web.post("/login", ins.login), web.post("/logout", ins.logout),
        web.get("/", ins.active), web.get("/history", ins.history), web.get(r"/alert/{id:\d+}", ins.detail),
        web.post(r"/alert/{id:\d+}/{action:ack|resolve}", ins.act),
    ])
    app[INSPECTOR] = ins

    async def close_auth(app: web.Application) -> None:
        auth.close()

    app.on_cleanup.append(close_auth)
    return app
