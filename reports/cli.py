"""``villagewatch report --commune C --month YYYY-MM [--lang vi|en] --out DIR``."""

from __future__ import annotations

import argparse
import difflib
import sys
import time

from villagewatch.config import load_settings
from villagewatch.progress import Progress

# A month without a single reading still gets a report (saying so on page 1), but the command exits
# with this status so a scheduled job notices (docs/reports.md). 2 = user error, 1 = bug.
EXIT_EMPTY_MONTH = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="báo cáo tháng (PDF, CSV, HTML) / monthly compliance report",
        description="Báo cáo tuân thủ quy chuẩn hằng tháng của một xã: PDF, CSV và HTML.\n"
                    "Monthly compliance report of one commune against the QCVN rule packs: PDF, CSV and HTML.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commune", required=True, help="commune id, e.g. tan-thuan-dong")
    p.add_argument("--month", required=True, help="YYYY-MM (days in the site's time zone)")
    p.add_argument("--lang", choices=("vi", "en"), default="vi", help="language (default vi)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--config", help="villagewatch settings YAML (VW_* environment variables also apply)")
    p.add_argument("--sites", help="sites folder (default: VW_SITES or ./sites)")
    p.add_argument("--rules", help="rule pack folder (default: rules/packs)")
    p.add_argument("--influx-url", help="InfluxDB URL (default: VW_INFLUX_URL)")
    p.add_argument("--influx-db", help="database (default: VW_INFLUX_DB)")
    p.add_argument("--report-config", help="report settings YAML (default: reports/report.yaml)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reports.build import build_report
    from reports.config import DEFAULT_CONFIG, load_report_config
    from reports.influx import InfluxError, InfluxReader
    from reports.period import Month, PeriodError
    from reports.render import write_report
    from reports.rules import from_rule_packs
    from villagewatch.errors import UserError
    from villagewatch.sites import load_sites

    settings = load_settings(args.config, sites=args.sites, influx_url=args.influx_url, influx_db=args.influx_db)
    sites = load_sites(settings.sites)
    if args.commune not in sites:
        near = difflib.get_close_matches(args.commune, list(sites), n=1)
        raise UserError(f"không có xã {args.commune!r} / no commune {args.commune!r} in {settings.sites}",
                        hint=f"did you mean {near[0]!r}?" if near else f"communes: {', '.join(sites) or 'none'}")
    site = sites[args.commune]
    try:
        month = Month.parse(args.month, site.timezone)
    except PeriodError as exc:
        raise UserError(str(exc), hint="ví dụ / example: --month 2025-10") from exc
    if month.start_ms > time.time() * 1000:
        raise UserError(f"tháng {month.label} chưa bắt đầu / month {month.label} has not started yet")
    catalog = from_rule_packs(month, args.rules)
    reader = InfluxReader(settings.influx_url, settings.influx_db, settings.influx_user,
                          settings.influx_password, settings.influx_token)
    started = time.monotonic()
    with Progress(1, "Báo cáo / report", enabled=not args.quiet) as progress:
        try:
            report = build_report(site, month, reader, catalog,
                                  load_report_config(args.report_config or DEFAULT_CONFIG), progress)
        except InfluxError as exc:
            raise UserError(str(exc), hint="is InfluxDB running? `villagewatch stack up`, or set VW_INFLUX_URL") from exc
        outputs = write_report(report, args.out, args.lang, progress)
    print(f"PDF : {outputs.pdf}\nHTML: {outputs.html}\nCSV : {', '.join(str(p) for p in outputs.csv)}")
    print(f"({time.monotonic() - started:.1f} s, {report.queries} InfluxQL queries)", file=sys.stderr)
    if report.empty:
        print(f"KHÔNG CÓ SỐ LIỆU: {site.name_vi} không có số đo nào trong tháng {month.label} (cơ sở dữ liệu "
              f"{settings.influx_db!r}); báo cáo chỉ ghi nhận điều đó, không kết luận đạt hay không đạt.\n"
              f"NO DATA: not one reading for {site.commune} in {month.label} in database {settings.influx_db!r}; "
              f"the report says so and judges nothing (exit status {EXIT_EMPTY_MONTH}).", file=sys.stderr)
        return EXIT_EMPTY_MONTH
    return 0
