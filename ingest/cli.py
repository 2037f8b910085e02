"""``villagewatch ingest`` (run the service) and ``villagewatch ingest rejected`` (dead letters)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

from villagewatch.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="dịch vụ ghi số liệu (MQTT → InfluxDB) / ingest service; `ingest rejected` lists dead letters",
        description="Subscribe to telemetry and status (persistent MQTT v5 session), validate each message "
                    "against the wire contract, write batches to InfluxDB, acknowledge only what is durable. "
                    "Invalid messages go to the dead-letter store. Settings: --config FILE and the VW_* "
                    "environment variables (docs/protocol.md, ingest/README.md).")
    _common(p)
    p.add_argument("--client-id", help="MQTT client id (fixed: the broker keeps this session's queue)")
    p.add_argument("--share-group", help="MQTT v5 shared-subscription group, for several workers")
    p.add_argument("--http-port", type=int, help="port of /healthz and /metrics (VW_HTTP_PORT; 0 = any free port)")
    p.set_defaults(func=_run)
    ssub = p.add_subparsers(dest="ingest_action", metavar="ACTION")
    r = ssub.add_parser("rejected", help="list rejected messages with their reasons",
                        description="List the dead-letter store: topic, reason, detail, payload.")
    _common(r)
    r.add_argument("--client-id", help="which ingest instance's store (default: the configured client id)")
    r.add_argument("--reason", help="only this reason (e.g. out_of_range, bad_json)")
    r.add_argument("--limit", type=int, default=50, help="newest N (default 50)")
    r.add_argument("--json", action="store_true", help="JSON lines (payload as text when UTF-8, else hex)")
    r.set_defaults(func=_rejected)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML settings file (see ingest/sample-config.yaml)")
    p.add_argument("--data-dir", help="folder for the spool and dead-letter store (default var/)")


def _settings(args: argparse.Namespace):
    overrides = {"data_dir": args.data_dir, "ingest_client_id": getattr(args, "client_id", None)}
    if getattr(args, "share_group", None):
        overrides["ingest_share_group"] = args.share_group
    if getattr(args, "http_port", None) is not None:
        overrides["http_port"] = args.http_port
    return load_settings(args.config, **overrides)


def _run(args: argparse.Namespace) -> int:
    from ingest.service import IngestService
    settings = _settings(args)
    service = IngestService(settings)
    asyncio.run(service.run())
    return 0


def _rejected(args: argparse.Namespace) -> int:
    from ingest.service import state_dir
    from ingest.stores import DeadLetterStore
    settings = _settings(args)
    path = state_dir(settings) / "deadletter.sqlite"
    if not path.exists():
        print(f"Chưa có thư bị từ chối / no rejected messages yet ({path})")
        return 0
    store = DeadLetterStore(path, settings.deadletter_max_bytes)
    rows = store.list(limit=args.limit, reason=args.reason)
    if args.json:
        for row in rows:
            try:
                payload = row.payload.decode("utf-8")
                encoding = "utf-8"
            except UnicodeDecodeError:
                payload, encoding = row.payload.hex(), "hex"
            print(json.dumps({"id": row.id, "received_ms": row.received_ms, "topic": row.topic,
                              "reason": row.reason, "reasons": row.reasons, "detail": row.detail,
                              "payload": payload, "payload_encoding": encoding,
                              "size": row.size, "truncated": row.truncated}, ensure_ascii=False))
        return 0
    counts = store.counts_by_reason()
    print(f"Đang lưu / stored: {store.rows} thư / messages, {store.bytes:,} / {store.max_bytes:,} bytes; "
          f"đã loại bỏ vì đầy / evicted at the budget: {store.evicted}  "
          + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for row in rows:
        when = datetime.fromtimestamp(row.received_ms / 1000, UTC).isoformat(timespec="seconds")
        shown = row.payload[:120].decode("utf-8", errors="replace").replace("\n", "\\n")
        cut = f" (truncated, {row.size:,} bytes)" if row.truncated else ""
        print(f"#{row.id} {when} {row.reason:16} {row.topic}\n    {row.detail}\n    payload{cut}: {shown}")
    return 0
