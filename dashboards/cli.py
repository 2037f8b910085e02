"""``villagewatch dashboards build | push | check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from villagewatch.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboards", help="bảng điều khiển Grafana / Grafana dashboards (build, push, check)")
    p.set_defaults(_parser=p)
    s = p.add_subparsers(dest="dashboards_command", metavar="ACTION")

    b = s.add_parser("build", help="sinh lại JSON và tệp provisioning / regenerate JSON and provisioning files")
    b.add_argument("--sites", default=None, help="sites folder (default: VW_SITES or ./sites)")
    b.set_defaults(func=cmd_build)

    u = s.add_parser("push", help="đẩy lên Grafana qua HTTP API / push through the Grafana HTTP API")
    u.add_argument("--url", required=True, help="Grafana URL, e.g. http://localhost:3000")
    u.add_argument("--token", required=True, help="service-account token (Editor or Admin)")
    u.add_argument("--influx-url", default=None, help="InfluxDB URL as Grafana reaches it (default: VW_INFLUX_URL)")
    u.add_argument("--influx-db", default=None, help="database (default: VW_INFLUX_DB)")
    u.add_argument("--lang", choices=("vi", "en", "all"), default="all", help="ngôn ngữ bảng điều khiển / dashboard language: vi, en or all")
    u.set_defaults(func=cmd_push)

    c = s.add_parser("check", help="chạy mọi truy vấn trên InfluxDB / run every panel query on InfluxDB")
    c.add_argument("--influx-url", default=None, help="InfluxDB URL to query (default: VW_INFLUX_URL)")
    c.add_argument("--influx-db", default=None, help="database (default: VW_INFLUX_DB)")
    c.add_argument("--lang", choices=("vi", "en"), default="vi", help="ngôn ngữ / language of the dashboards checked")
    c.set_defaults(func=cmd_check)


def _settings():
    from villagewatch.config import load_settings
    return load_settings(None)


def _sites(folder: str | None):
    from villagewatch.sites import load_sites
    return load_sites(Path(folder or _settings().sites))


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards import provisioning
    from dashboards.generator import GENERATED_DIR, build_all, write_all
    built = build_all(_sites(args.sites))
    changed, removed = write_all(built)
    changed += provisioning.write(_sites(args.sites))
    print(f"{len(built)} bảng điều khiển / dashboards in {GENERATED_DIR}: "
          f"{len(changed)} tệp thay đổi / files changed, {len(removed)} removed")
    for path in changed:
        print(f"  ~ {path}")
    for path in removed:
        print(f"  - {path}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from dashboards import provisioning
    from dashboards.context import folder_uid
    from dashboards.generator import build_all
    from dashboards.push import GrafanaClient, push_all
    settings = _settings()
    sites = _sites(None)
    langs = ("vi", "en") if args.lang == "all" else (args.lang,)
    built = build_all(sites, langs=langs)
    ds = provisioning.datasource(args.influx_url or settings.influx_url, args.influx_db or settings.influx_db)
    changes = push_all(GrafanaClient(args.url, args.token), ds, provisioning.folders(sites, langs),
                       [(folder_uid(b.commune, b.lang), b.dashboard) for b in built], progress=print)
    n = sum(c.action != "unchanged" for c in changes)
    print(f"{n} thay đổi / changed, {len(changes) - n} không đổi / unchanged")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dashboards.check import Influx, check_all
    from dashboards.generator import build_all
    settings = _settings()
    built = build_all(_sites(None), langs=(args.lang,))
    influx = Influx.from_settings(settings, args.influx_url, args.influx_db)  # token too (v2)
    try:
        result = check_all([b.dashboard for b in built], influx)
    except OSError as exc:
        raise UserError(f"cannot reach InfluxDB: {exc}", hint="check --influx-url / VW_INFLUX_URL") from exc
    for f in result.failures:
        print(f, file=sys.stderr)
    print(f"{result.queries} truy vấn / queries, {result.rows} dòng / rows, "
          f"{len(result.failures)} lỗi / failures")
    return 1 if result.failures else 0
