"""Ingest self-metrics: counters and histograms, rendered as Prometheus text for ``/metrics``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ingest.health import REASONS as HEALTH_REASONS

WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10000)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.n += 1
        self.total += value
        for i, edge in enumerate(self.buckets):
            if value <= edge:
                self.counts[i] += 1

    def render(self, name: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{edge}"}} {c}' for edge, c in zip(self.buckets, self.counts, strict=True)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total:.6f}", f"{name}_count {self.n}"]
        return out


@dataclass
class IngestMetrics:
    received: int = 0  # MQTT messages handed to the pipeline
    readings: int = 0  # valid telemetry readings (points) accepted
    written: int = 0  # points confirmed written to InfluxDB (directly or from the spool)
    status_points: int = 0
    rejected: Counter = field(default_factory=Counter)  # by reason (per message part)
    spooled_points: int = 0
    write_errors: int = 0
    acked: int = 0
    mqtt_connected: bool = False
    db_up: bool = False
    spool_batches: int = 0
    inflight: int = 0
    read_pauses: int = 0
    sessions_lost: int = 0
    deadletter_evicted: int = 0  # rejected messages evicted at the dead-letter byte budget
    deadletter_bytes: int = 0
    deadletter_rows: int = 0
    # health (ingest/health.py), refreshed when /metrics or /healthz is read
    oldest_unacked_age_s: float = 0.0
    spool_oldest_age_s: float = 0.0
    spool_bytes: int = 0
    spool_max_bytes: int = 0
    unhealthy: tuple[str, ...] = ()
    write_seconds: Histogram = field(default_factory=lambda: Histogram(WRITE_BUCKETS))
    batch_points: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))

    def render(self) -> str:
        lines: list[str] = []

        def counter(name: str, value: float, help_text: str) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"])

        def gauge(name: str, value: float, help_text: str) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"])

        counter("vw_ingest_received_total", self.received, "MQTT messages received")
        counter("vw_ingest_readings_total", self.readings, "valid telemetry readings accepted")
        counter("vw_ingest_written_points_total", self.written, "points confirmed written to InfluxDB")
        counter("vw_ingest_status_points_total", self.status_points, "station/gateway status points")
        counter("vw_ingest_spooled_points_total", self.spooled_points, "points spooled to disk while InfluxDB was unavailable")
        counter("vw_ingest_write_errors_total", self.write_errors, "failed write attempts (retried)")
        counter("vw_ingest_read_pauses_total", self.read_pauses, "times reading paused: inflight window full (backpressure)")
        counter("vw_ingest_sessions_lost_total", self.sessions_lost,
                "reconnects where the broker had no session for us (subscribed again)")
        counter("vw_ingest_acked_total", self.acked, "messages acknowledged to the broker after being made durable")
        lines += ["# HELP vw_ingest_rejected_total rejected messages or metrics by reason",
                  "# TYPE vw_ingest_rejected_total counter"]
        lines += [f'vw_ingest_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(self.rejected.items())]
        counter("vw_ingest_deadletter_evicted_total", self.deadletter_evicted,
                "rejected messages evicted (oldest first) at the dead-letter byte budget")
        gauge("vw_ingest_deadletter_bytes", self.deadletter_bytes, "bytes held by the dead-letter store")
        gauge("vw_ingest_deadletter_messages", self.deadletter_rows, "rejected messages held in the dead-letter store")
        gauge("vw_ingest_mqtt_connected", int(self.mqtt_connected), "1 when connected to the broker")
        gauge("vw_ingest_db_up", int(self.db_up), "1 when the last write to InfluxDB succeeded")
        gauge("vw_ingest_spool_batches", self.spool_batches, "batches waiting in the disk spool")
        gauge("vw_ingest_inflight_messages", self.inflight, "messages received but not yet acknowledged")
        gauge("vw_ingest_oldest_unacked_age_seconds", round(self.oldest_unacked_age_s, 3),
              "age of the oldest message received and not yet durable (0 = none)")
        gauge("vw_ingest_spool_oldest_age_seconds", round(self.spool_oldest_age_s, 3),
              "age of the oldest batch waiting in the disk spool, not yet in InfluxDB (0 = empty)")
        gauge("vw_ingest_spool_bytes", self.spool_bytes, "bytes held by the disk spool")
        gauge("vw_ingest_spool_max_bytes", self.spool_max_bytes, "byte budget of the disk spool")
        gauge("vw_ingest_healthy", int(not self.unhealthy), "1 when /healthz answers 200")
        lines += ["# HELP vw_ingest_unhealthy 1 for each reason /healthz answers 503 (ingest/health.py)",
                  "# TYPE vw_ingest_unhealthy gauge"]
        lines += [f'vw_ingest_unhealthy{{reason="{r}"}} {int(r in self.unhealthy)}' for r in HEALTH_REASONS]
        lines += self.write_seconds.render("vw_ingest_write_seconds", "InfluxDB write latency")
        lines += self.batch_points.render("vw_ingest_batch_points", "points per write batch")
        return "\n".join(lines) + "\n"
