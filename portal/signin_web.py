"""Sign-in pages of the portal (villagewatch.signin does the work): log in, log out, change
password, and an admin page that ends an account's sessions. Every form carries a CSRF token."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from villagewatch.signin import (
    COOKIE,
    CSRF_COOKIE,
    SESSION_S,
    AuthStore,
    LoginRefused,
    Session,
    check_csrf,
    cookie_options,
    safe_next,
    same_origin,
)

AUTH_KEY = web.AppKey("signin", object)
SESSION_KEY = web.RequestKey("vw_session", object)  # looked up once per request
ANON_CSRF_KEY = web.RequestKey("vw_anon_csrf", str)
MIN_PASSWORD = 10


class SignIn:
    def __init__(self, store: AuthStore, public_url: str):
        self.store, self.public_url = store, public_url.rstrip("/")

    def session(self, request: web.Request) -> Session | None:
        if SESSION_KEY not in request:
            request[SESSION_KEY] = self.store.session(request.cookies.get(COOKIE))
        return request[SESSION_KEY]  # type: ignore[return-value]

    def require(self, request: web.Request, *roles: str) -> Session:
        s = self.session(request)
        if s is None:
            raise web.HTTPFound("/dang-nhap?next=" + urllib.parse.quote(request.path_qs, safe=""))
        if roles and s.account.role not in roles:
            raise web.HTTPForbidden(text="Tài khoản không có quyền này / this account may not do this")
        return s

    def form_token(self, request: web.Request) -> str:
        """The CSRF token a form on this page must send back: the session's, or before sign-in the
        double-submit cookie's (set by the middleware)."""
        s = self.session(request)
        return s.csrf if s else request[ANON_CSRF_KEY]

    async def check_form(self, request: web.Request) -> dict:
        """The posted form, after the Origin and CSRF checks (403 otherwise)."""
        if not same_origin(request.headers.get("Origin"), self.public_url, request.host):
            raise web.HTTPForbidden(text="Yêu cầu từ trang khác / cross-site request refused")
        form = dict(await request.post())
        s = self.session(request)
        expected = s.csrf if s else request.cookies.get(CSRF_COOKIE)
        if not check_csrf(expected, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="Phiên biểu mẫu hết hạn, hãy tải lại trang / form expired, reload the page")
        return form

    def set_session_cookie(self, resp: web.StreamResponse, token: str) -> None:
        resp.set_cookie(COOKIE, token, max_age=SESSION_S, **cookie_options(self.public_url))

    def clear_session_cookie(self, resp: web.StreamResponse) -> None:
        opts = cookie_options(self.public_url)
        resp.del_cookie(COOKIE, path=opts["path"])


def _signin(request: web.Request) -> SignIn:
    return request.app[AUTH_KEY]  # type: ignore[return-value]


@web.middleware
async def csrf_cookie_middleware(request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Give every browser a random double-submit token before it signs in (login CSRF)."""
    existing = request.cookies.get(CSRF_COOKIE)
    request[ANON_CSRF_KEY] = existing or secrets.token_urlsafe(24)
    resp = await handler(request)
    if not existing and not resp.prepared:
        opts = cookie_options(_signin(request).public_url)
        resp.set_cookie(CSRF_COOKIE, request[ANON_CSRF_KEY], **opts)
    return resp


async def template_context(request: web.Request) -> dict:
    si = _signin(request)
    s = si.session(request)
    return {"session": s, "csrf": si.form_token(request)}


def _login_page(request: web.Request, error: str = "", nxt: str = "/", status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template("login.html", request, {"error": error, "next": nxt}, status=status)


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, nxt=safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.Response:
    si = _signin(request)
    form = await si.check_form(request)
    nxt = safe_next(str(form.get("next") or "/"))
    try:
        token, _session = si.store.login(str(form.get("username", "")).strip(), str(form.get("password", "")),
                                         request.remote or "?")
    except LoginRefused as exc:
        if exc.retry_after_s:
            resp = _login_page(request, f"Đăng nhập sai quá nhiều lần, thử lại sau {exc.retry_after_s} giây / "
                               f"too many failed logins, try again in {exc.retry_after_s} s", nxt, 429)
            resp.headers["Retry-After"] = str(exc.retry_after_s)
            return resp
        return _login_page(request, "Sai tên đăng nhập hoặc mật khẩu / wrong user name or password", nxt, 401)
    resp = web.HTTPSeeOther(nxt)
    si.set_session_cookie(resp, token)
    raise resp


async def logout(request: web.Request) -> web.Response:
    si = _signin(request)
    await si.check_form(request)
    si.store.logout(request.cookies.get(COOKIE))
    resp = web.HTTPSeeOther("/")
    si.clear_session_cookie(resp)
    raise resp


async def password_form(request: web.Request) -> web.Response:
    _signin(request).require(request)
    return aiohttp_jinja2.render_template("password.html", request, {"error": ""})


async def change_password(request: web.Request) -> web.Response:
    si = _signin(request)
    s = si.require(request)
    form = await si.check_form(request)
    new = str(form.get("new", ""))
    error = ""
    if not si.store.check_password(s.account.username, str(form.get("current", ""))):
        error = "Mật khẩu hiện tại không đúng / current password is wrong"
    elif len(new) < MIN_PASSWORD:
        error = f"Mật khẩu mới cần ít nhất {MIN_PASSWORD} ký tự / at least {MIN_PASSWORD} characters"
    elif new != str(form.get("again", "")):
        error = "Hai lần nhập không khớp / the two entries differ"
    if error:
        return aiohttp_jinja2.render_template("password.html", request, {"error": error}, status=400)
    si.store.set_password(s.account.username, new)  # ends every session, this one included
    resp = web.HTTPSeeOther("/dang-nhap?changed=1")
    si.clear_session_cookie(resp)
    raise resp


async def admin_page(request: web.Request) -> web.Response:
    si = _signin(request)
    si.require(request, "admin")
    return aiohttp_jinja2.render_template("admin.html", request, {
        "accounts": si.store.accounts(), "counts": si.store.session_counts(),
        "done": request.query.get("revoked", "")})


async def admin_revoke(request: web.Request) -> web.Response:
    si = _signin(request)
    si.require(request, "admin")
    form = await si.check_form(request)
    username = str(form.get("username", ""))
    if si.store.account(username) is None:
        raise web.HTTPNotFound(text="không có tài khoản này / no such account")
    si.store.revoke_all(username)
    raise web.HTTPSeeOther("/quan-tri?revoked=" + urllib.parse.quote(username))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dang-nhap", login_form)
    app.router.add_post("/dang-nhap", login)
    app.router.add_post("/dang-xuat", logout)
    app.router.add_get("/doi-mat-khau", password_form)
    app.router.add_post("/doi-mat-khau", change_password)
    app.router.add_get("/quan-tri", admin_page)
    app.router.add_post("/quan-tri/thu-hoi", admin_revoke)
