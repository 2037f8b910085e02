"""What ``/healthz`` says: healthy, or each reason it is not (also in ``/metrics``).

A health check that says 200 while nothing is being written is worse than none: the operator trusts
it. So the reasons are about data, not only connections:

- ``broker_disconnected`` / ``not_subscribed``: nothing can arrive;
- ``stalled``: the oldest message received but not yet in InfluxDB is older than
  ``ingest_stalled_after_s`` (VW_INGEST_STALLED_AFTER_S, default 60 s). Counted from the oldest
  unacknowledged message and from the oldest batch in the disk spool: while InfluxDB is down the
  ingest keeps acknowledging (the spool holds the data), but the readings are not queryable, no
  dashboard or report sees them — that is a stall for everyone downstream;
- ``spool_near_budget``: the spool holds ≥ 90 % of its byte budget; at the budget it starts
  dropping the oldest batches (ingest/stores.py).

InfluxDB being unreachable is shown (``database``) but is not a reason by itself: the spool is
doing its job, and a restart would not help; it becomes ``stalled`` after the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

SPOOL_NEAR_BUDGET_FRACTION = 0.9
REASONS = ("broker_disconnected", "not_subscribed", "stalled", "spool_near_budget")


@dataclass(frozen=True)
class HealthInputs:
    connected: bool
    subscribed: bool
    oldest_unacked_age_s: float  # 0 when nothing is unacknowledged
    spool_oldest_age_s: float  # 0 when the spool is empty
    spool_bytes: int
    spool_max_bytes: int
    stalled_after_s: float


def reasons(h: HealthInputs) -> list[tuple[str, str]]:
    """(reason, detail) for each way the ingest is unhealthy; empty when healthy."""
    out: list[tuple[str, str]] = []
    if not h.connected:
        out.append(("broker_disconnected", "not connected to the MQTT broker (reconnecting)"))
    if not h.subscribed:
        out.append(("not_subscribed", "connected but not subscribed: no message can arrive"))
    oldest = max(h.oldest_unacked_age_s, h.spool_oldest_age_s)
    if oldest > h.stalled_after_s:
        where = "in the disk spool" if h.spool_oldest_age_s >= h.oldest_unacked_age_s else "unacknowledged"
        out.append(("stalled", f"writes stalled: the oldest message not yet in InfluxDB ({where}) was "
                               f"received {oldest:.0f} s ago, threshold {h.stalled_after_s:g} s"))
    if h.spool_bytes >= SPOOL_NEAR_BUDGET_FRACTION * h.spool_max_bytes:
        out.append(("spool_near_budget", f"the write spool holds {h.spool_bytes:,} of {h.spool_max_bytes:,} "
                                         "bytes; at the budget the oldest batches are dropped"))
    return out
