"""``villagewatch`` — one console command, subcommands registered by the parts of the platform.

Each part owns a module with ``register(subparsers)``; adding a part is one line in SUBCOMMANDS.
Errors caused by the input or the device (a bad site file, a missing binary, a cable) print a
message and a hint and exit 2; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

# UserError is kept importable as app.cli.UserError for old callers; parts import it from
# villagewatch.errors (the ground floor), never from here
from villagewatch.errors import UserError, raise_bad_env
from villagewatch.schema import ConfigError

SUBCOMMANDS = [
    "app.cli_stack",  # stack up|down|status, demo
    "ingest.cli",  # ingest, ingest rejected
    "edge.cli",  # edge
    "alerts.cli",  # alerts, alerts check, alerts hash-password
    "reports.cli",  # report
    "simulator.cli",  # simulate backfill
    "dashboards.cli",  # dashboards build|push|check
    "simulator.loadgen",  # loadgen
    "firmware_tools.cli",  # device, ca, ota
    "portal.cli",  # portal
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="villagewatch",
        description="Làng thông minh — nền tảng IoT quan trắc môi trường nông thôn.\n"
                    "Smart-village IoT platform: edge gateways → MQTT → ingest → InfluxDB → alerts, dashboards.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    # `ota agent` runs on a gateway: the edge owns it, under the technician tools' `ota` group. The
    # app floor composes the two, so neither part imports the other.
    from edge.cli import register_ota_agent
    register_ota_agent(sub.choices["ota"].get_default("_subcommands"))
    return parser


def _report(exc: BaseException) -> int | None:
    """Exit code for an error that is the user's or the device's fault, after printing it; None = bug."""
    from app.stack import StackError
    if isinstance(exc, ConfigError):
        print(f"lỗi cấu hình / configuration error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, UserError):
        print(f"lỗi / error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"gợi ý / hint: {exc.hint}", file=sys.stderr)
        return 2
    if isinstance(exc, StackError):
        print(f"lỗi / error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        # a service's HTTP port is taken (another instance still running): the user's to fix
        print(f"lỗi / error: cổng đã có chương trình khác dùng / port already in use: {exc}", file=sys.stderr)
        print("gợi ý / hint: dừng chương trình kia hoặc chọn cổng khác / stop the other program or choose "
              "another port (VW_HTTP_PORT, VW_PORTAL_PORT, --http-port, --port, http_port)", file=sys.stderr)
        return 2
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        # building the parser evaluates defaults from environment variables: a bad one must be a
        # message (naming the variable), and must not break --help either
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - boundary: user errors become messages, bugs re-raise
        code = _report(exc)
        if code is None:
            raise
        return code
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        # a group without its own action (e.g. `villagewatch stack`): show its help
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        raise_bad_env(vars(args))
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("đã dừng / stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - boundary: everything else is a bug
        code = _report(exc)
        if code is None:
            raise
        return code

if __name__ == "__main__":
    sys.exit(main())
