"""``villagewatch portal``: the commune's web portal (map, stations, feedback)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from villagewatch.errors import UserError

DEFAULT_PORT = 8482


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("portal", help="commune web portal: map, live stations, residents' feedback",
                       description="Cổng thông tin xã: bản đồ trạm, số liệu trực tiếp, phản ánh của người dân.")
    p.add_argument("--config", help="service settings YAML (VW_* environment variables override)")
    p.add_argument("--port", type=int, help=f"HTTP port (default: VW_PORTAL_PORT or {DEFAULT_PORT})")
    p.add_argument("--host", default="127.0.0.1", help="địa chỉ lắng nghe / address to listen on (default 127.0.0.1)")
    p.set_defaults(func=_run, _parser=p)


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
    from villagewatch.config import load_settings
    from villagewatch.influx import InfluxReader
    from villagewatch.sites import load_sites

    settings = load_settings(args.config)
    port = args.port or portal_port()
    sites = load_sites(settings.sites)
    influx = InfluxReader(settings.influx_url, settings.influx_db, settings.influx_user,
                          settings.influx_password, settings.influx_token, timeout_s=10)
    store = FeedbackStore(Path(settings.data_dir) / "portal.sqlite")
    app = build_app(Portal(settings, sites, influx, store))
    print(f"Cổng thông tin / portal: http://{args.host}:{port}/", flush=True)
    web.run_app(app, host=args.host, port=port, print=None)
    return 0
