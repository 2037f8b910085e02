"""CLI for the edge gateway: ``villagewatch edge --site FILE --gateway ID``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from villagewatch.errors import UserError

log = logging.getLogger("edge")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edge", help="chạy một cổng kết nối (gateway) / run one edge gateway of a site",
        description="Chạy cổng kết nối biên: đọc cảm biến, lưu đệm trên đĩa, gửi lên MQTT.\n"
                    "Run one edge gateway: read its stations' sensors, spool to disk, publish over MQTT (QoS 1).\n"
                    "Broker: VW_MQTT_URL (mqtt:// or mqtts://user:pass@host:port).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", required=True, help="site file (sites/<commune>.yaml)")
    p.add_argument("--gateway", required=True, help="gateway id in the site file")
    p.add_argument("--config", help="settings YAML (see villagewatch/config.py)")
    p.add_argument("--data-dir", help="spool and status folder (default var/edge/<gateway>)")
    p.add_argument("--failover", action="append", default=[], metavar="URL",
                   help="another broker to try when the first is unreachable (repeatable)")
    p.add_argument("--ca-file", help="CA certificate for mqtts://")
    p.add_argument("--cert-file", help="client certificate (mutual TLS)")
    p.add_argument("--key-file", help="client private key (mutual TLS)")
    p.add_argument("--budget-mb", type=float, default=256, help="spool disk budget; oldest dropped beyond (256)")
    p.add_argument("--sync", choices=("full", "normal"), default="full",
                   help="full: fsync every commit, survives power loss (default); normal: survives crashes only")
    p.add_argument("--window", type=int, default=500, help="QoS 1 messages in flight (500)")
    p.add_argument("--replay-rate", type=float, default=5000, help="backlog messages/s after an outage (5000)")
    p.add_argument("--status-interval", type=float, default=10, help="seconds between gateway status (10)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="poll stations this many times faster than their interval_s (demo)")
    p.add_argument("--seed", type=int, default=0, help="simulated source seed")
    p.add_argument("--clock", choices=("sane", "os"), default="sane",
                   help="when to trust the wall clock: sane = after the build date and the newest spooled "
                        "reading, no step (default); os = also only while the OS reports NTP sync (boards "
                        "without a real-time clock)")
    p.add_argument("--clock-offset", type=float, metavar="SECONDS",
                   help="operator: the true time is the wall clock + SECONDS (trusted as is)")
    p.add_argument("--clock-hold-max", type=float, default=6 * 3600, metavar="SECONDS",
                   help="readings taken on an untrusted clock wait at most this long, then go out with a "
                        "best-estimate time flagged clock_unsynced (21600)")
    p.add_argument("--ota-public-key", help="project OTA public key (villagewatch ota keygen): accept signed "
                                            "updates for this gateway, verified before they are applied")
    p.add_argument("--ota-dir", help="where verified updates are installed (default <data-dir>/ota)")
    p.add_argument("--check", action="store_true",
                   help="validate the site, open its serial ports, connect to the broker(s), say what was "
                        "found, exit (writes nothing; exit 1 when something did not answer)")
    p.add_argument("--probe", action="store_true",
                   help="with --check: read each Modbus device once, print raw registers, the decoded value "
                        "and the other word/byte orders")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from edge.gateway import Gateway, GatewayOptions
    from villagewatch.config import MqttUrl, load_settings
    from villagewatch.errors import UserError
    from villagewatch.sites import load_site

    settings = load_settings(args.config, mqtt_ca_file=args.ca_file, mqtt_cert_file=args.cert_file,
                             mqtt_key_file=args.key_file)
    site = load_site(args.site)
    if args.speed <= 0 or args.window < 1 or args.replay_rate <= 0 or args.budget_mb <= 0 or args.clock_hold_max <= 0:
        raise UserError("--speed, --window, --replay-rate, --budget-mb and --clock-hold-max must be positive",
                        hint="ví dụ / e.g. --speed 10 --budget-mb 64")
    for f in (settings.mqtt_ca_file, settings.mqtt_cert_file, settings.mqtt_key_file):
        if f and not Path(f).is_file():
            raise UserError(f"không tìm thấy tệp / file not found: {f}", hint="check --ca-file/--cert-file/--key-file")
    brokers = [settings.mqtt] + [MqttUrl.parse(u, "--failover") for u in args.failover]
    failover_cfg = settings.extra.get("mqtt_failover") or []
    brokers += [MqttUrl.parse(str(u), "mqtt_failover") for u in failover_cfg]
    if len({b.tls for b in brokers}) > 1:
        raise UserError("brokers mix mqtt:// and mqtts:// (" + ", ".join(b.redacted() for b in brokers) + ")",
                        hint="use mqtts:// for every broker of VW_MQTT_URL and --failover")
    if args.probe and not args.check:
        raise UserError("--probe goes with --check", hint="villagewatch edge --site ... --gateway ... --check --probe")
    if args.check:
        from edge.check import run_check
        return run_check(site, args.gateway, brokers,
                         (settings.mqtt_ca_file, settings.mqtt_cert_file, settings.mqtt_key_file), probe=args.probe)
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_path / "edge" / args.gateway
    opts = GatewayOptions(
        brokers=brokers, data_dir=data_dir, budget_bytes=int(args.budget_mb * 2**20), sync=args.sync,
        window=args.window, replay_rate=args.replay_rate, status_interval_s=args.status_interval,
        speed=args.speed, seed=args.seed, ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_cert_file,
        key_file=settings.mqtt_key_file, extra=settings.extra, clock_mode=args.clock,
        clock_offset_s=args.clock_offset, clock_hold_max_s=args.clock_hold_max)
    gateway = Gateway(site, args.gateway, opts)
    log.info("gateway %s: %d stations, %d sources, broker %s, spool %s (%d queued)", args.gateway,
             len(gateway.stations), len(gateway.sources), brokers[0].redacted(), data_dir, gateway.spool.depth)
    agent = None
    if args.ota_public_key:
        # Signed updates of the gateway itself: edge.ota_agent verifies signature and hash
        # before applying, keeps the previous version for rollback, and reports on MQTT.
        from edge.ota_agent import OtaAgent
        if not Path(args.ota_public_key).is_file():
            raise UserError(f"không tìm thấy khóa / key not found: {args.ota_public_key}",
                            hint="copy the project's OTA public key (villagewatch ota keygen) to the gateway")
        agent = OtaAgent(mqtt_url=settings.mqtt_url, commune=site.commune, gateway=args.gateway,
                         install_dir=Path(args.ota_dir) if args.ota_dir else data_dir / "ota",
                         public_key=Path(args.ota_public_key), ca_file=settings.mqtt_ca_file,
                         cert_file=settings.mqtt_cert_file, key_file=settings.mqtt_key_file).start()
    try:
        asyncio.run(_main(gateway))
    finally:
        if agent is not None:
            agent.stop()
    return 0


async def _main(gateway) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.run(stop)


def register_ota_agent(ota_commands: argparse._SubParsersAction) -> None:
    """``villagewatch ota agent``: the gateway's OTA agent on its own (the gateway normally embeds
    it). Added under the technician tools' ``ota`` group by the app floor."""
    p = ota_commands.add_parser("agent", help="chạy tác tử OTA của cổng kết nối / run the gateway OTA agent (the edge gateway normally embeds it)")
    p.add_argument("--commune", required=True, help="mã xã / commune id")
    p.add_argument("--gateway", required=True, help="mã cổng kết nối / gateway id")
    p.add_argument("--install-dir", type=Path, required=True, help="thư mục cài đặt / install folder of the gateway software")
    p.add_argument("--public-key", type=Path, required=True, help="khóa công khai ký OTA / OTA signing public key (signing.pub)")
    p.add_argument("--mqtt-url", help="URL tài khoản cổng kết nối / gateway account URL (env VW_MQTT_URL)")
    p.set_defaults(func=_ota_agent)


def _ota_agent(args: argparse.Namespace) -> int:
    import signal
    import threading

    from edge.ota_agent import OtaAgent
    from villagewatch.config import load_settings
    from villagewatch.mqtt_util import MqttConnectError
    settings = load_settings()
    try:
        agent = OtaAgent(mqtt_url=args.mqtt_url or settings.mqtt_url, commune=args.commune, gateway=args.gateway,
                         install_dir=args.install_dir, public_key=args.public_key,
                         ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_cert_file,
                         key_file=settings.mqtt_key_file).start()
    except MqttConnectError as exc:
        raise UserError(str(exc), hint=exc.hint) from exc
    print(f"OTA agent for {agent.device_id} on {agent.command_topic}", file=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    agent.stop()
    return 0
