"""``villagewatch stack up|down|status`` and ``villagewatch demo``."""

from __future__ import annotations

import argparse
import json

from app.stack import LocalStack


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="bật/tắt Mosquitto + InfluxDB cục bộ / start/stop a local Mosquitto + InfluxDB",
                       description="Run Mosquitto and InfluxDB from the Debian packages as background "
                                   "processes, with their data, logs and PIDs under --data-dir.")
    p.set_defaults(_parser=p)
    ssub = p.add_subparsers(dest="stack_command", metavar="ACTION")
    for name, helptext, func in (("up", "start both services (no-op if running)", _up),
                                 ("down", "stop both services by PID", _down),
                                 ("status", "show PIDs, ports and health", _status)):
        sp = ssub.add_parser(name, help=helptext, description=helptext)
        sp.add_argument("--data-dir", default="var/stack", help="folder for data, logs, stack.json (default var/stack)")
        sp.add_argument("--mqtt-port", type=int, help="broker port (default: a free port, kept in stack.json)")
        sp.add_argument("--influx-port", type=int, help="InfluxDB HTTP port (default: a free port)")
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.set_defaults(func=func)

    from app import demo
    demo.register(sub)


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(args.data_dir, args.mqtt_port, args.influx_port)


def _up(args: argparse.Namespace) -> int:
    s = _stack(args).start()
    _print(s, args)
    print("Dừng / stop: villagewatch stack down --data-dir", args.data_dir)
    return 0


def _down(args: argparse.Namespace) -> int:
    s = _stack(args)
    s.stop()
    print("Đã dừng / stopped:", ", ".join(s.status()))
    return 0


def _status(args: argparse.Namespace) -> int:
    s = _stack(args)
    _print(s, args)
    return 0 if all(v["running"] for v in s.status().values()) else 1


def _print(s: LocalStack, args: argparse.Namespace) -> None:
    st = s.status()
    if args.json:
        print(json.dumps({"services": st, "env": s.env()}, indent=2))
        return
    for name, info in st.items():
        state = "đang chạy / running" if info["running"] else "đã dừng / stopped"
        print(f"{name:10} {state:22} pid={info['pid']} port={info['port']}")
    for k, v in s.env().items():
        print(f"export {k}={v}")
