"""``villagewatch simulate backfill --site FILE --from YYYY-MM-DD --to YYYY-MM-DD [--seed N]``."""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="dữ liệu mô phỏng / simulated data (backfill a past period)",
                       description="Dữ liệu mô phỏng cho một xã. / Simulated data for a site.")
    p.set_defaults(_parser=p)
    inner = p.add_subparsers(dest="simulate_command", metavar="ACTION")
    b = inner.add_parser(
        "backfill", help="ghi lịch sử mô phỏng vào InfluxDB / write simulated history into InfluxDB",
        description="Ghi số liệu mô phỏng của các ngày đã qua vào InfluxDB, qua cùng bước xử lý của "
                    "cổng kết nối (hiệu chuẩn, cờ đột biến/đứng giá trị, gộp).\n"
                    "Writes simulated history for past days into the configured InfluxDB through the "
                    "edge's own processing (calibration, spike/flatline flags, aggregation), so it "
                    "carries the quality flags a real gateway sends. Same seed, same points.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--site", required=True, help="site file, e.g. sites/tan-thuan-dong.yaml")
    b.add_argument("--from", dest="first", required=True, help="first local day YYYY-MM-DD")
    b.add_argument("--to", dest="last", required=True, help="last local day YYYY-MM-DD (included)")
    b.add_argument("--seed", type=int, default=0, help="same seed, same data (default 0)")
    b.add_argument("--station", action="append", help="only this station id (repeatable)")
    b.add_argument("--no-faults", action="store_true", help="no simulated sensor faults or dropouts")
    b.add_argument("--config", help="villagewatch settings YAML (VW_* environment variables also apply)")
    b.add_argument("--influx-url", help="InfluxDB URL (default: VW_INFLUX_URL)")
    b.add_argument("--influx-db", help="database (default: VW_INFLUX_DB)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_backfill)


def run_backfill(args: argparse.Namespace) -> int:
    from edge.sources.simulated.model import Faults
    from simulator.backfill import InfluxWriter, Period, backfill, expected_readings
    from villagewatch.config import load_settings
    from villagewatch.errors import UserError
    from villagewatch.progress import Progress
    from villagewatch.sites import load_site
    from villagewatch.textfmt import number

    settings = load_settings(args.config, influx_url=args.influx_url, influx_db=args.influx_db)
    site = load_site(args.site)
    period = Period.parse(args.first, args.last, site.timezone)
    if period.start_ms > time.time() * 1000:
        raise UserError(f"{args.first} chưa tới / is in the future", hint="backfill fills past days")
    unknown = [s for s in args.station or [] if s not in site.stations]
    if unknown:
        raise UserError(f"không có trạm / no station {', '.join(unknown)} in {args.site}",
                        hint=f"stations: {', '.join(site.stations)}")
    writer = InfluxWriter(settings.influx_url, settings.influx_db, settings.influx_user, settings.influx_password,
                          settings.influx_token)
    started = time.monotonic()
    total = expected_readings(site, period, args.station)
    with Progress(total, "Mô phỏng / backfill", enabled=not args.quiet) as progress:
        written = backfill(site, period, writer, seed=args.seed, faults=None if args.no_faults else Faults(),
                           stations=args.station, progress=lambda st, n: progress.advance(n, note=st))
    n = sum(written.values())
    print(f"Đã ghi {number(n, 0, 'vi')} số đo của {len(written)} trạm ({period.first} → {period.last}, "
          f"seed {args.seed}) vào {settings.influx_db} / wrote {number(n, 0, 'en')} readings of {len(written)} "
          f"stations in {time.monotonic() - started:.1f} s")
    if n == 0:
        print("cảnh báo / warning: no reading written (every station filtered out?)", file=sys.stderr)
    return 0
