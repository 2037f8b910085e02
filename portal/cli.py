"""``villagewatch portal``: the commune's web portal (map, stations, feedback)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from villagewatch.errors import UserError

DEFAULT_PORT = 8482


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("portal", help="cổng thông tin xã: bản đồ, trạm, phản ánh / commune portal: map, stations, feedback",
                       description="Cổng thông tin xã: bản đồ trạm, số liệu trực tiếp, phản ánh của người dân.")
    p.add_argument("--config", help="service settings YAML (VW_* environment variables override)")
    p.add_argument("--port", type=int, help=f"HTTP port (default: VW_PORTAL_PORT or {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1", help="địa chỉ lắng nghe / address to listen on (default 127.0.0.1)")
    p.set_defaults(func=_run, _parser=p)
    a = sub.add_parser("portal-account", help="tài khoản đăng nhập cổng thông tin / portal and inspector sign-in accounts",
                       description="Tài khoản cán bộ (operator, inspector, admin) — one store for every web page.")
    a.add_argument("--config", help="service settings YAML (its data_dir holds auth.sqlite)")
    asub = a.add_subparsers(dest="action", required=True)
    add = asub.add_parser("add", help="create or replace an account (password read from VW_NEW_PASSWORD or a prompt)")
    add.add_argument("username", help="log-in name (a-z, 0-9, . _ -)")
    add.add_argument("--role", required=True, choices=("operator", "inspector", "admin"), help="what the account may do")
    add.add_argument("--communes", required=True, help="comma-separated commune ids, or * for all")
    add.add_argument("--name", default="", help="full name shown on pages")
    pw = asub.add_parser("passwd", help="set a password (ends every session of the account)")
    pw.add_argument("username", help="log-in name")
    rv = asub.add_parser("revoke", help="end every session of an account")
    rv.add_argument("username", help="log-in name")
    asub.add_parser("list", help="accounts with their role, communes and open sessions")
    a.set_defaults(func=_account, _parser=a)


def public_url(port: int, env: dict[str, str] | os._Environ = os.environ) -> str:
    """The address residents use (VW_PORTAL_PUBLIC_URL); https there makes cookies `Secure`."""
    raw = env.get("VW_PORTAL_PUBLIC_URL", "").strip()
    if not raw:
        return f"http://127.0.0.1:{port}"
    if not raw.startswith(("http://", "https://")):
        raise UserError(f"VW_PORTAL_PUBLIC_URL={raw!r} is not an http(s) URL", hint="e.g. https://xa.example.vn")
    return raw.rstrip("/")


def _new_password() -> str:
    import getpass
    pw = os.environ.get("VW_NEW_PASSWORD") or getpass.getpass("Mật khẩu mới / new password: ")
    if len(pw) < 10:
        raise UserError("the password is shorter than 10 characters", hint="choose a longer passphrase")
    return pw


def _account(args: argparse.Namespace) -> int:
    from villagewatch.config import load_settings
    from villagewatch.signin import AuthStore, auth_db_path

    settings = load_settings(args.config)
    store = AuthStore(auth_db_path(settings.data_dir))
    try:
        if args.action == "list":
            counts = store.session_counts()
            for acc in store.accounts():
                print(f"{acc.username}\t{acc.role}\t{','.join(acc.communes)}\t{counts.get(acc.username, 0)} phiên")
        elif args.action == "add":
            if not re.fullmatch(r"[a-z0-9_.-]{2,40}", args.username):
                raise UserError(f"user name {args.username!r} is not valid", hint="2-40 of a-z 0-9 . _ -")
            communes = [c.strip() for c in args.communes.split(",") if c.strip()]
            if not communes:
                raise UserError("no commune given", hint="--communes tan-thuan-dong or --communes '*'")
            store.put_account(args.username, args.role, communes, _new_password(), name=args.name)
            print(f"tài khoản {args.username} ({args.role}: {', '.join(communes)}) đã lưu / saved")
        elif store.account(args.username) is None:
            raise UserError(f"no account {args.username!r}", hint="villagewatch portal-account list")
        elif args.action == "passwd":
            store.set_password(args.username, _new_password())
            print("đã đổi mật khẩu, mọi phiên đã kết thúc / password changed, every session ended")
        elif args.action == "revoke":
            print(f"đã kết thúc {store.revoke_all(args.username)} phiên / sessions ended")
    finally:
        store.close()
    return 0


def portal_port(env: dict[str, str] | os._Environ = os.environ) -> int:
    raw = env.get("VW_PORTAL_PORT", "")
    if not raw:
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise UserError(f"VW_PORTAL_PORT={raw!r} is not a TCP port", hint="an integer from 1 to 65535, e.g. 8482")
    return int(raw)


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from portal.app import Portal, build_app
    from portal.feedback import FeedbackStore
    from portal.signin_web import SignIn
    from rules.rulepack import load_rule_packs
    from villagewatch.config import load_settings
    from villagewatch.influx import InfluxReader
    from villagewatch.signin import AuthStore, auth_db_path
    from villagewatch.sites import load_sites

    settings = load_settings(args.config)
    port = args.port or portal_port()
    sites = load_sites(settings.sites)
    influx = InfluxReader(settings.influx_url, settings.influx_db, settings.influx_user,
                          settings.influx_password, settings.influx_token, timeout_s=10)
    store = FeedbackStore(Path(settings.data_dir) / "portal.sqlite")
    signin = SignIn(AuthStore(auth_db_path(settings.data_dir)), public_url(port))
    app = build_app(Portal(settings, sites, influx, store, signin, ruleset=load_rule_packs()))
    print(f"Cổng thông tin / portal: {signin.public_url}/", flush=True)
    web.run_app(app, host=args.host, port=port, print=None)
    return 0
