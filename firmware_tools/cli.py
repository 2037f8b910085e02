"""``villagewatch device|ca|ota`` — technician commands (docs/technician.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from villagewatch.errors import UserError

DEVICE_URL_ENV = "VW_DEVICE_MQTT_URL"  # the broker address as the devices see it (not 127.0.0.1)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="thư mục dữ liệu kỹ thuật viên / technician data folder (env VW_FIRMWARE_DIR, default var/firmware)")
    p.add_argument("--broker-dir", help="nơi ghi passwd/acl / where passwd/acl are written (env VW_BROKER_DIR, default DATA/broker)")
    p.add_argument("--broker-pid-file", help="tệp PID của Mosquitto để nạp lại / Mosquitto PID file to SIGHUP after changes (env VW_BROKER_PIDFILE)")


def _ws(args: argparse.Namespace):
    from firmware_tools.workspace import Workspace
    return Workspace.from_env(args.data_dir, args.broker_dir, args.broker_pid_file)


def _site(args: argparse.Namespace):
    from villagewatch.config import load_settings
    from villagewatch.sites import load_sites
    sites = load_sites(args.sites or load_settings().sites)
    if args.commune not in sites:
        raise UserError(f"không có xã / no commune {args.commune!r} in the sites folder",
                        hint=f"communes: {', '.join(sites) or '(none)'}")
    return sites[args.commune]


def _target(args: argparse.Namespace):
    from firmware_tools.device_ops import Target
    if bool(args.station) == bool(getattr(args, "gateway", None)):
        raise UserError("give exactly one of --station or --gateway")
    return Target(_site(args), station=args.station, gateway=getattr(args, "gateway", None))


def _node_args(p: argparse.ArgumentParser, gateway: bool = True) -> None:
    p.add_argument("--commune", required=True, help="mã xã / commune id (sites/*.yaml)")
    p.add_argument("--station", help="mã trạm / station id")
    if gateway:
        p.add_argument("--gateway", help="mã cổng kết nối / gateway id (instead of --station)")
    p.add_argument("--sites", help="thư mục cấu hình xã / sites folder (env VW_SITES)")


def _esptool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="cổng nối tiếp / serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="tốc độ cổng nối tiếp / serial baud rate (default 115200)")
    p.add_argument("--mqtt-url", default=os.environ.get(DEVICE_URL_ENV),
                   help=f"broker thiết bị sẽ dùng / broker URL the device will use, e.g. mqtts://10.0.0.2:8883 (env {DEVICE_URL_ENV})")
    p.add_argument("--wifi-ssid", default=os.environ.get("VW_WIFI_SSID", ""), help="tên Wi-Fi ghi vào thiết bị / Wi-Fi SSID written to the device (env VW_WIFI_SSID)")
    p.add_argument("--wifi-password", default=os.environ.get("VW_WIFI_PASSWORD", ""), help="mật khẩu Wi-Fi / Wi-Fi password (env VW_WIFI_PASSWORD)")
    p.add_argument("--partitions", help="bảng phân vùng / partition table (.csv or .bin); default: the villagewatch 4 MB layout")
    p.add_argument("--connect-mode", default="default-reset",
                   choices=["default-reset", "usb-reset", "no-reset"], help="cách esptool vào chế độ nạp / how esptool enters the bootloader")
    p.add_argument("--reset-mode", default="hard-reset", choices=["hard-reset", "soft-reset", "no-reset"], help="cách khởi động lại sau khi ghi / how to reset the chip afterwards")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")


def register(sub: argparse._SubParsersAction) -> None:
    # ------------------------------------------------------------------ device
    dev = sub.add_parser("device", help="cấp phát, nạp firmware, theo dõi thiết bị / provision, flash, monitor nodes")
    dev.set_defaults(_parser=dev)
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION")

    p = dsub.add_parser("provision", help="tạo hoặc đổi mật khẩu MQTT của thiết bị / create or rotate a node's MQTT credentials (+ ACL, optional TLS cert)")
    _node_args(p)
    _common(p)
    p.add_argument("--hardware", help="mẫu phần cứng / hardware model/revision, e.g. esp32-devkitc-v4")
    p.add_argument("--tls", action="store_true", help="cấp thêm chứng chỉ máy khách / also issue a client certificate signed by the project CA")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    p.set_defaults(func=_provision)

    p = dsub.add_parser("service-account", help="tạo hoặc đổi tài khoản dịch vụ / create or rotate a service account (ingest, alerts, ops)")
    p.add_argument("--role", required=True, choices=["ingest", "alerts", "ops"], help="vai trò tài khoản dịch vụ / service account role")
    p.add_argument("--name", help="tên tài khoản / account name (default: the role)")
    p.add_argument("--tls", action="store_true", help="cấp thêm chứng chỉ máy khách / also issue a client certificate signed by the project CA")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    _common(p)
    p.set_defaults(func=_service_account)

    p = dsub.add_parser("list", help="thiết bị trong sổ kiểm kê / devices in the inventory")
    p.add_argument("--commune", help="chỉ thiết bị của xã này / only devices of this commune")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    _common(p)
    p.set_defaults(func=_list)

    p = dsub.add_parser("show", help="một thiết bị, lịch sử hiệu chuẩn và nạp / one device with calibration and flash history")
    p.add_argument("id", help="mã thiết bị / device id, e.g. tan-thuan-dong.ao-ca-tra-a1")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    _common(p)
    p.set_defaults(func=_show)

    p = dsub.add_parser("calibrate", help="ghi một lần hiệu chuẩn / record a calibration of one metric of a device")
    p.add_argument("id", help="mã thiết bị / device id, e.g. tan-thuan-dong.ao-ca-tra-a1")
    p.add_argument("--metric", required=True, help="chỉ số được hiệu chuẩn / metric calibrated, e.g. ph")
    p.add_argument("--offset", type=float, default=0.0, help="độ lệch cộng thêm / offset added (default 0)")
    p.add_argument("--slope", type=float, default=1.0, help="hệ số nhân / slope multiplied (default 1)")
    p.add_argument("--reference", default="", help="dung dịch chuẩn hoặc thiết bị đối chiếu / reference solution or instrument, e.g. 'pH 7.00 buffer'")
    p.add_argument("--note", default="", help="ghi chú / note kept with the calibration")
    _common(p)
    p.set_defaults(func=_calibrate)

    p = dsub.add_parser("sync-broker", help="tạo lại passwd/acl và nạp lại broker / re-render passwd/acl from the inventory and reload the broker")
    _common(p)
    p.set_defaults(func=_sync_broker)

    p = dsub.add_parser("flash", help="nạp firmware, bảng phân vùng, cấu hình; kiểm tra; khởi động lại / flash firmware + partition table + configuration, verify, reset")
    _node_args(p)
    _esptool_args(p)
    p.add_argument("--firmware", required=True, type=Path, help="tệp ứng dụng .bin hoặc flasher_args.json / application .bin, or ESP-IDF flasher_args.json")
    _common(p)
    p.set_defaults(func=_flash)

    p = dsub.add_parser("config", help="chỉ ghi lại phân vùng cấu hình (NVS) / rewrite only the configuration (NVS) partition")
    _node_args(p)
    _esptool_args(p)
    _common(p)
    p.set_defaults(func=_config)

    p = dsub.add_parser("monitor", help="cửa sổ nối tiếp có giờ + chờ thiết bị trực tuyến / serial console with timestamps + wait for the node's online status")
    p.add_argument("--port", required=True, help="cổng nối tiếp / serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="tốc độ cổng nối tiếp / serial baud rate (default 115200)")
    p.add_argument("--commune", help="theo dõi cả trạng thái trên MQTT / with --station/--gateway: also watch the node's status on MQTT")
    p.add_argument("--station", help="mã trạm / station id")
    p.add_argument("--gateway", help="mã cổng kết nối / gateway id")
    p.add_argument("--sites", help="thư mục cấu hình xã / sites folder (env VW_SITES)")
    p.add_argument("--timeout", type=float, default=60, help="số giây chờ trực tuyến / seconds to wait for online (default 60)")
    p.add_argument("--duration", type=float, help="in tiếp trong bấy nhiêu giây / keep printing for this many seconds (default: until online)")
    p.add_argument("--mqtt-url", help="URL tài khoản vận hành / ops account URL mqtt://user:pw@host:port (env VW_MQTT_URL)")
    p.set_defaults(func=_monitor)

    # ------------------------------------------------------------------ ca
    ca = sub.add_parser("ca", help="chứng chỉ dự án / project certificate authority")
    ca.set_defaults(_parser=ca)
    csub = ca.add_subparsers(dest="ca_command", metavar="ACTION")
    p = csub.add_parser("init", help="tạo CA của dự án / create the project CA (EC P-256)")
    p.add_argument("--force", action="store_true", help="thay CA hiện có (mọi chứng chỉ mất hiệu lực) / replace an existing CA (all certificates become invalid)")
    _common(p)
    p.set_defaults(func=_ca_init)
    p = csub.add_parser("server-cert", help="cấp chứng chỉ TLS cho broker / issue the broker's TLS server certificate")
    p.add_argument("--host", action="append", required=True, help="tên miền hoặc IP thiết bị dùng / DNS name or IP the devices use (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="thư mục ghi chứng chỉ / folder for server.crt, server.key, ca.crt")
    _common(p)
    p.set_defaults(func=_ca_server)

    # ------------------------------------------------------------------ ota
    o = sub.add_parser("ota", help="cập nhật từ xa có ký số / signed over-the-air updates")
    o.set_defaults(_parser=o)
    osub = o.add_subparsers(dest="ota_command", metavar="ACTION")
    # `ota agent` runs on a gateway and belongs to the edge: the app floor adds it here
    # (app/cli.py → edge.cli.register_ota_agent), so the technician tools never import the edge
    o.set_defaults(_subcommands=osub)
    p = osub.add_parser("keygen", help="tạo cặp khóa ký Ed25519 / create the Ed25519 signing key pair")
    _common(p)
    p.set_defaults(func=_ota_keygen)
    p = osub.add_parser("publish", help="ký bản kê khai và gửi tới thiết bị / sign a manifest and publish it retained to the chosen devices")
    p.add_argument("--firmware", required=True, type=Path, help="ảnh phần mềm / firmware image (.bin)")
    p.add_argument("--version", required=True, help="phiên bản / version of the image, e.g. 1.4.2")
    p.add_argument("--commune", required=True, help="mã xã / commune id (sites/*.yaml)")
    p.add_argument("--stations", help="các mã trạm, cách nhau dấu phẩy / comma-separated station ids")
    p.add_argument("--gateways", help="các mã cổng, cách nhau dấu phẩy / comma-separated gateway ids")
    p.add_argument("--percent", type=float, help="triển khai dần: tỉ lệ thiết bị của xã / staged rollout: this share of the commune's devices")
    p.add_argument("--url", help="nơi thiết bị tải ảnh / where devices download the image (else --url-base + --publish-dir)")
    p.add_argument("--url-base", help="URL gốc của máy chủ tải / base URL of the download server serving --publish-dir")
    p.add_argument("--publish-dir", type=Path, help="thư mục phục vụ tại --url-base / folder served at --url-base; the image is copied there")
    p.add_argument("--allow-downgrade", action="store_true", help="cho phép hạ phiên bản / allow an older version than installed")
    p.add_argument("--mqtt-url", help="URL tài khoản vận hành / ops account URL mqtt://user:pw@host:port (env VW_MQTT_URL)")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    _common(p)
    p.set_defaults(func=_ota_publish)
    p = osub.add_parser("status", help="báo cáo OTA gần nhất của từng thiết bị / each device's last OTA report")
    p.add_argument("--mqtt-url", help="URL tài khoản vận hành / ops account URL (env VW_MQTT_URL)")
    p.add_argument("--timeout", type=float, default=5, help="số giây chờ báo cáo / seconds to wait for reports (default 5)")
    p.add_argument("--json", action="store_true", help="kết quả dạng máy đọc / machine-readable result")
    _common(p)
    p.set_defaults(func=_ota_status)


# --------------------------------------------------------------------------- helpers


def _dump(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if ms else "-"


def _mqtt(args: argparse.Namespace, client_id: str):
    from villagewatch.config import load_settings
    from villagewatch.mqtt_util import MqttConnectError, connect
    settings = load_settings()
    url = args.mqtt_url or settings.mqtt_url
    try:
        return connect(url, ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_cert_file,
                       key_file=settings.mqtt_key_file, client_id=client_id)
    except MqttConnectError as exc:
        raise UserError(str(exc), hint=exc.hint) from exc


def _user_errors(fn):
    """Map the modules' own input/device errors to UserError (message + hint, exit 2)."""
    def wrapped(args: argparse.Namespace) -> int:
        from firmware_tools.ca import CAError
        from firmware_tools.flashing import FlashError
        from firmware_tools.nvs import NvsError
        from firmware_tools.ota_rollout import RolloutError
        from firmware_tools.partitions import PartitionError
        from firmware_tools.provision import ProvisionError
        try:
            return fn(args)
        except (FlashError, ProvisionError, RolloutError) as exc:
            raise UserError(str(exc), hint=exc.hint) from exc
        except CAError as exc:
            raise UserError(str(exc), hint="villagewatch ca init") from exc
        except (NvsError, PartitionError) as exc:
            raise UserError(str(exc)) from exc
    return wrapped


# --------------------------------------------------------------------------- device


@_user_errors
def _provision(args: argparse.Namespace) -> int:
    from firmware_tools import provision as prov
    site = _site(args)
    if bool(args.station) == bool(args.gateway):
        raise UserError("give exactly one of --station or --gateway")
    ws = _ws(args)
    if args.tls and not ws.ca.exists():
        raise UserError("chưa có CA của dự án / no project CA yet", hint="villagewatch ca init")
    if args.station:
        res = prov.provision_station(ws, site, args.station, args.hardware, args.tls)
    else:
        res = prov.provision_gateway(ws, site, args.gateway, args.hardware, args.tls)
    return _report_provisioned(res, ws, args)


def _report_provisioned(res, ws, args) -> int:
    info = {"device": res.device.id, "username": res.device.id, "rotated": res.rotated,
            "credential_fingerprint": res.device.credential_fingerprint,
            "cert_fingerprint": res.device.cert_fingerprint or None, "secret_file": str(res.secret_path),
            "broker_files": str(ws.broker_dir), "broker_reloaded_pid": res.reloaded_pid}
    if args.json:
        _dump(info)
        return 0
    verb = "Đã đổi mật khẩu / rotated" if res.rotated else "Đã cấp phát / provisioned"
    print(f"{verb}: {res.device.id}  (vai trò / role {res.device.role})")
    print(f"  tên đăng nhập / username: {res.device.id}")
    print(f"  vân tay / fingerprint:    {res.device.credential_fingerprint}")
    print(f"  mật khẩu lưu tại / password stored in (0600): {res.secret_path}")
    if res.cert_path:
        print(f"  chứng chỉ / client certificate: {res.cert_path}")
    print(f"  tệp broker / broker files: {ws.broker_dir}/passwd, acl")
    if res.reloaded_pid is None:
        print("  CHÚ Ý / NOTE: broker not told to reload (no PID file): run `systemctl reload mosquitto` "
              "or set VW_BROKER_PIDFILE / VW_BROKER_RELOAD")
    else:
        print(f"  broker đã nạp lại / broker reloaded (pid {res.reloaded_pid})")
    return 0


@_user_errors
def _service_account(args: argparse.Namespace) -> int:
    from firmware_tools import provision as prov
    ws = _ws(args)
    return _report_provisioned(prov.provision_service(ws, args.role, args.name, args.tls), ws, args)


def _list(args: argparse.Namespace) -> int:
    with _ws(args).inventory() as inv:
        devices = inv.devices(commune=args.commune)
    if args.json:
        _dump([{k: v for k, v in d.__dict__.items() if k not in ("password_hash", "calibrations", "flashes")}
               for d in devices])
        return 0
    if not devices:
        print("Chưa có thiết bị / no devices yet: villagewatch device provision --commune C --station S")
        return 0
    print(f"{'THIẾT BỊ / DEVICE':44} {'VAI TRÒ/ROLE':10} {'FIRMWARE':12} {'PHẦN CỨNG/HW':16} {'ĐỔI MK/ROTATED':16}")
    for d in devices:
        print(f"{d.id:44} {d.role:10} {d.firmware_version or '-':12} {d.hardware or '-':16} {_when(d.rotated_ms):16}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _ws(args).inventory() as inv:
        d = inv.get(args.id, details=True)
        known = inv.ids()
    if d is None:
        import difflib
        near = difflib.get_close_matches(args.id, known, n=1)
        raise UserError(f"không có thiết bị / no device {args.id!r}",
                        hint=f"did you mean {near[0]!r}?" if near else "villagewatch device list")
    if args.json:
        _dump({k: v for k, v in d.__dict__.items() if k != "password_hash"})
        return 0
    print(f"Thiết bị / device: {d.id}")
    for label, value in (("vai trò / role", d.role), ("xã / commune", d.commune), ("trạm / station", d.station),
                         ("cổng / gateway", d.gateway), ("phần cứng / hardware", d.hardware or "-"),
                         ("firmware", d.firmware_version or "-"),
                         ("vân tay mật khẩu / credential fingerprint", d.credential_fingerprint),
                         ("vân tay chứng chỉ / certificate fingerprint", d.cert_fingerprint or "-"),
                         ("tạo / created", _when(d.created_ms)),
                         ("đổi mật khẩu / rotated", f"{_when(d.rotated_ms)} ({d.rotations}×)")):
        print(f"  {label}: {value}")
    print("  Hiệu chuẩn / calibrations:" + ("" if d.calibrations else " -"))
    for c in d.calibrations:
        print(f"    {_when(c['ts_ms'])} {c['metric']} offset={c['offset_value']} slope={c['slope']} "
              f"ref={c['reference'] or '-'} by {c['by_whom'] or '-'} {c['note']}")
    print("  Lịch sử nạp / flash history:" + ("" if d.flashes else " -"))
    for f in d.flashes:
        result = ("OK, đã kiểm tra / verified" if f["verified"] else "OK") if f["ok"] else f"LỖI / FAILED: {f['message']}"
        print(f"    {_when(f['ts_ms'])} {f['action']} {f['image']} sha256={f['image_sha256'][:12]} "
              f"port={f['port']} by {f['by_whom']}: {result}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from firmware_tools.device_ops import technician
    from villagewatch import contract
    if args.metric not in contract.METRICS:
        raise UserError(f"unknown metric {args.metric!r}", hint="see docs/protocol.md for the metric registry")
    with _ws(args).inventory() as inv:
        if inv.get(args.id) is None:
            raise UserError(f"no device {args.id!r}", hint="villagewatch device list")
        inv.add_calibration(args.id, args.metric, args.offset, args.slope, args.reference, technician(), args.note)
    print(f"Đã ghi hiệu chuẩn / calibration recorded: {args.id} {args.metric}")
    return 0


def _sync_broker(args: argparse.Namespace) -> int:
    ws = _ws(args)
    with ws.inventory() as inv:
        pid = ws.sync_broker(inv)
    print(f"passwd + acl → {ws.broker_dir}; reload: {pid if pid is not None else 'not sent'}")
    return 0


def _progress_printer():
    state = {"last": -1}
    tty = sys.stderr.isatty()

    def show(what: str, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct == state["last"]:
            return
        state["last"] = pct
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        end = "\r" if tty and pct < 100 else "\n"
        if tty or pct % 10 == 0:
            print(f"  [{bar}] {pct:3d}%  {what}", end=end, file=sys.stderr, flush=True)
    return show


def _esptool_kwargs(args: argparse.Namespace) -> dict:
    return {"baud": args.baud, "connect_mode": args.connect_mode, "reset_mode": args.reset_mode}


def _need_url(args: argparse.Namespace) -> str:
    if not args.mqtt_url:
        raise UserError("thiếu địa chỉ broker cho thiết bị / no broker URL for the device",
                        hint=f"--mqtt-url mqtts://<server>:8883 or set {DEVICE_URL_ENV}")
    from villagewatch.config import MqttUrl
    from villagewatch.schema import ConfigError
    try:
        MqttUrl.parse(args.mqtt_url, "--mqtt-url")
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    return args.mqtt_url


@_user_errors
def _flash(args: argparse.Namespace) -> int:
    from firmware_tools import device_ops
    target = _target(args)
    url = _need_url(args)
    print(f"Nạp / flashing {target.device_id} qua / via {args.port} …", file=sys.stderr)
    plan, report = device_ops.flash(
        _ws(args), target, args.port, args.firmware, url, partitions=Path(args.partitions) if args.partitions else None,
        wifi_ssid=args.wifi_ssid, wifi_pass=args.wifi_password, progress=_progress_printer(),
        **_esptool_kwargs(args))
    return _flash_summary(target, plan, report, args)


@_user_errors
def _config(args: argparse.Namespace) -> int:
    from firmware_tools import device_ops
    target = _target(args)
    url = _need_url(args)
    plan, report = device_ops.write_config(
        _ws(args), target, args.port, url, partitions=Path(args.partitions) if args.partitions else None,
        wifi_ssid=args.wifi_ssid, wifi_pass=args.wifi_password, progress=_progress_printer(),
        **_esptool_kwargs(args))
    return _flash_summary(target, plan, report, args)


def _flash_summary(target, plan, report, args) -> int:
    parts = [{"offset": f"{p.offset:#x}", "bytes": len(p.data), "name": p.name} for p in plan.parts]
    if args.json:
        _dump({"device": target.device_id, "chip": report.chip, "verified": report.verified, "parts": parts,
               "image_sha256": plan.image_sha256, "firmware_version": plan.firmware_version})
        return 0
    print(f"Xong / done: {target.device_id} on {report.chip}, "
          f"{'đã kiểm tra / verified' if report.verified else 'NOT verified'}")
    for p in parts:
        print(f"  {p['offset']:>10}  {p['bytes']:>8} B  {p['name']}")
    return 0


@_user_errors
def _monitor(args: argparse.Namespace) -> int:
    from firmware_tools import device_ops
    status_topic = None
    connect = None
    if args.commune:
        target = _target(args)
        status_topic = target.status_topic

        def connect():
            return _mqtt(args, f"monitor-{os.getpid()}")
    print(f"Đang theo dõi / monitoring {args.port} (Ctrl-C để dừng / to stop)", file=sys.stderr)
    result = device_ops.monitor(args.port, status_topic=status_topic, mqtt_connect=connect,
                                timeout_s=args.timeout, out=lambda line: print(line, flush=True),
                                until_online=args.duration is None, duration_s=args.duration, baud=args.baud)
    if status_topic is None:
        return 0
    if result.online_at_ms is None:
        raise UserError(f"thiết bị không báo trực tuyến trong {args.timeout:.0f} s / the node did not report "
                        f"online within {args.timeout:.0f} s on {status_topic}",
                        hint="kiểm tra Wi-Fi, địa chỉ broker, mật khẩu (xem nhật ký nối tiếp ở trên) / check "
                             "Wi-Fi, broker URL and credentials (see the serial log above)")
    print(f"TRỰC TUYẾN / ONLINE: {status_topic} at {_when(result.online_at_ms)}")
    return 0


# --------------------------------------------------------------------------- ca


def _ca_init(args: argparse.Namespace) -> int:
    from firmware_tools.ca import CAError
    ca = _ws(args).ca
    try:
        fp = ca.init(force=args.force)
    except CAError as exc:
        raise UserError(str(exc), hint="--force replaces it (every issued certificate stops working)") from exc
    print(f"CA: {ca.cert_path} (khóa / key {ca.key_path}, 0600)\n  SHA-256: {fp}")
    return 0


@_user_errors
def _ca_server(args: argparse.Namespace) -> int:
    ca = _ws(args).ca
    issued = ca.issue_server(args.host)
    args.out.mkdir(parents=True, exist_ok=True)
    issued.write(args.out / "server.crt", args.out / "server.key")
    (args.out / "ca.crt").write_bytes(ca.ca_pem())
    print(f"server.crt, server.key, ca.crt → {args.out}  (SHA-256 {issued.fingerprint})")
    return 0


# --------------------------------------------------------------------------- ota


def _ota_keygen(args: argparse.Namespace) -> int:
    from villagewatch import ota
    folder = _ws(args).ota_dir
    if (folder / "signing.key").exists():
        raise UserError(f"signing key already exists: {folder / 'signing.key'}",
                        hint="devices trust its public key; replacing it means re-flashing their configuration")
    priv, pub = ota.generate_keypair(folder)
    print(f"Khóa ký / signing key: {priv} (0600, giữ bí mật / keep secret)\nKhóa công khai / public key: {pub}")
    return 0


@_user_errors
def _ota_publish(args: argparse.Namespace) -> int:
    from firmware_tools import ota_rollout
    ws = _ws(args)
    key = ws.ota_dir / "signing.key"
    if not key.exists():
        raise UserError("no OTA signing key", hint="villagewatch ota keygen")
    if not args.firmware.exists():
        raise UserError(f"firmware file not found: {args.firmware}")
    if args.url:
        url = args.url
    elif args.url_base and args.publish_dir:
        url = ota_rollout.stage_image(args.firmware, args.publish_dir, args.url_base, args.version)
    else:
        raise UserError("where will devices download the image?", hint="--url URL, or --url-base with --publish-dir")
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    with ws.inventory() as inv:
        targets = ota_rollout.select_targets(inv.devices(commune=args.commune), stations=split(args.stations),
                                             gateways=split(args.gateways), percent=args.percent)
        client = _mqtt(args, f"ota-publish-{os.getpid()}")
        try:
            pub = ota_rollout.publish(client, inv, image_path=args.firmware, version=args.version, url=url,
                                      targets=targets, signing_key=key, allow_downgrade=args.allow_downgrade)
        finally:
            client.disconnect()
            client.loop_stop()
    if args.json:
        _dump({"rollout_id": pub.rollout_id, "version": args.version, "sha256": pub.manifest.sha256,
               "url": url, "devices": pub.topics})
        return 0
    print(f"Đợt cập nhật / rollout {pub.rollout_id}: {args.version} → {len(pub.topics)} thiết bị / devices")
    for device, topic in pub.topics.items():
        print(f"  {device:44} {topic}")
    print("Theo dõi / follow: villagewatch ota status")
    return 0


def _ota_status(args: argparse.Namespace) -> int:
    from firmware_tools import ota_rollout
    ws = _ws(args)
    with ws.inventory() as inv:
        rollouts = inv.latest_rollouts()
    client = _mqtt(args, f"ota-status-{os.getpid()}")
    try:
        reports = ota_rollout.collect_reports(client, set(rollouts), timeout=args.timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    rows = []
    for device in sorted(set(rollouts) | set(reports)):
        target = rollouts.get(device, {})
        rep = reports.get(device, {})
        rows.append({"device": device, "target_version": target.get("version"), "rollout_id": target.get("rollout_id"),
                     "state": rep.get("state", "pending"), "reported_version": rep.get("version"),
                     "installed": rep.get("installed"), "reason": rep.get("reason"), "detail": rep.get("detail"),
                     "ts": rep.get("ts")})
    if args.json:
        _dump(rows)
        return 0
    if not rows:
        print("Chưa có đợt cập nhật nào / no OTA rollouts or reports yet")
        return 0
    labels = {"pending": "chờ / pending", "downloading": "đang tải / downloading", "applied": "đã cài / applied",
              "rejected": "TỪ CHỐI / REJECTED", "rolled_back": "ĐÃ QUAY LẠI / ROLLED BACK", "failed": "LỖI / FAILED"}
    print(f"{'THIẾT BỊ / DEVICE':44} {'ĐÍCH/TARGET':12} {'TRẠNG THÁI / STATE':26} {'ĐANG CHẠY/INSTALLED':20} LÚC/AT")
    for r in rows:
        extra = f"  ({r['reason']}: {r['detail']})" if r["reason"] else (f"  ({r['detail']})" if r["detail"] else "")
        print(f"{r['device']:44} {r['target_version'] or '-':12} {labels.get(r['state'], r['state']):26} "
              f"{r['installed'] or '-':20} {_when(r['ts'])}{extra}")
    return 0


