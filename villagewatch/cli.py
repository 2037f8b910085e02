"""``villagewatch`` — one console command, subcommands registered by the parts of the platform.

Each part owns a module with ``register(subparsers)``; adding a part is one line in SUBCOMMANDS.
Errors caused by the input or the device (a bad site file, a missing binary, a cable) print a
message and a hint and exit 2; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from villagewatch.errors import UserError  # noqa: F401 - re-exported: parts raise villagewatch.cli.UserError
from villagewatch.schema import ConfigError

SUBCOMMANDS = [
    "villagewatch.cli_stack",  # stack up|down|status, demo
    "ingest.cli",  # ingest, ingest rejected
    "edge.cli",  # edge
    "alerts.cli",  # alerts, alerts check, alerts hash-password
    "reports.cli",  # report
    "dashboards.cli",  # dashboards build|push|check
    "villagewatch.loadgen",  # loadgen
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        # a group without its own action (e.g. `villagewatch stack`): show its help
        (getattr(args, "_parser", None) or parser).print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"lỗi cấu hình / configuration error: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"lỗi / error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"gợi ý / hint: {exc.hint}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - boundary: everything else is a bug
        from villagewatch.stack import StackError
        if isinstance(exc, StackError):
            print(f"lỗi / error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
