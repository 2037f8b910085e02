"""``villagewatch alerts`` (the service + inspector page), ``alerts check``, ``alerts hash-password``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
from pathlib import Path

from alerts.settings import hash_password, load_alerts_config
from rules.rulepack import load_rule_packs
from villagewatch.config import load_settings
from villagewatch.sites import load_sites


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="dịch vụ cảnh báo QCVN và trang thanh tra / QCVN alert service and inspector page",
                       description="Cảnh báo theo quy chuẩn QCVN: đánh giá dữ liệu MQTT, lưu trạng thái (SQLite), "
                                   "gửi thông báo, trang web cho cán bộ môi trường.")
    p.add_argument("--config", help="service settings YAML (VW_* environment variables override)")
    p.add_argument("--alerts-config", help="alerts YAML: channels, routes, users (see docs/alerts.md)")
    p.add_argument("--rulepacks", help="rule pack folder (default: rules/packs)")
    p.add_argument("--state-db", help="SQLite file for alert state (default: <data_dir>/alerts.sqlite)")
    p.add_argument("--client-id", help="MQTT client id of the persistent session (default: VW_ALERTS_CLIENT_ID, "
                                       "else the MQTT user name — the production broker binds ids to accounts — "
                                       "else villagewatch-alerts)")
    p.set_defaults(func=_run, _parser=p)
    sp = p.add_subparsers(dest="alerts_command", metavar="ACTION")
    c = sp.add_parser("check", help="validate rule packs and show the rules of each station")
    c.add_argument("--rulepacks", help="thư mục bộ luật cảnh báo / rule-pack folder (default: rules/packs)")
    c.add_argument("--sites", help="sites folder (default: VW_SITES or sites/)")
    c.set_defaults(func=_check)
    h = sp.add_parser("hash-password", help="print a scrypt hash for users[].password_hash")
    h.set_defaults(func=_hash)


def _check(args: argparse.Namespace) -> int:
    ruleset = load_rule_packs(args.rulepacks)
    sites = load_sites(args.sites or load_settings().sites)
    for site in sites.values():
        for st in site.stations.values():
            rules = ruleset.rules_for(st)
            print(f"{site.commune}/{st.id} ({st.name_vi}): {len(rules)} luật / rules")
            for r in rules:
                lim = r.limit if r.kind != "band" else f"{r.lo}–{r.hi}"
                flag = " [chưa kiểm chứng / unverified]" if r.unverified else ""
                print(f"  {r.id:28} {r.kind:9} {r.metric:9} {lim!s:>8}  {r.regulation.split(' / ')[0]}{flag}")
    print(f"{len(ruleset.packs)} bộ luật hợp lệ / rule packs valid")
    return 0


def _hash(args: argparse.Namespace) -> int:
    pw = getpass.getpass("Mật khẩu / password: ")
    if len(pw) < 8:
        from villagewatch.errors import UserError
        raise UserError("mật khẩu quá ngắn / password too short", hint="at least 8 characters")
    print(hash_password(pw))
    return 0


def client_id_for(explicit: str | None, mqtt_username: str | None, env: dict[str, str] | None = None) -> str:
    """The alerts' MQTT client id. Under the production broker (``use_username_as_clientid``) the
    broker replaces it by the account name anyway: defaulting to that name keeps logs truthful."""
    from alerts.service import DEFAULT_CLIENT_ID
    env = os.environ if env is None else env
    return explicit or env.get("VW_ALERTS_CLIENT_ID") or mqtt_username or DEFAULT_CLIENT_ID


def _run(args: argparse.Namespace) -> int:
    from alerts.service import AlertService
    settings = load_settings(args.config)
    config = load_alerts_config(args.alerts_config)
    ruleset = load_rule_packs(args.rulepacks or config.rulepacks)
    sites = load_sites(settings.sites)
    state_db = args.state_db or config.state_db or str(Path(settings.data_dir) / "alerts.sqlite")

    async def main() -> None:
        svc = AlertService(settings, config, sites, ruleset, state_db,
                           client_id=client_id_for(args.client_id, settings.mqtt.username))
        await svc.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"Dịch vụ cảnh báo đang chạy / alerts running — trang / page: {config.public_url}", flush=True)
        await stop.wait()
        await svc.stop()

    asyncio.run(main())
    return 0
