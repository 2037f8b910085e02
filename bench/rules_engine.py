"""Rules engine throughput in event time (issue 11 §3): readings/s of ``rules.engine.Engine.feed``
for a simulated day of the pilot commune's 13 stations, fed three ways:

- in order (the live case),
- live-first backlog: each gateway's readings of an outage (default 2 h of the day) arrive after
  the live readings that follow it, drained oldest-first at 5 backlog readings per live reading,
- locally shuffled: every reading displaced by up to ±10 positions (network reordering).

    .venv/bin/python bench/rules_engine.py [--hours 24] [--outage-h 2]

Also checks that all three end with the same alerts (``Engine.alerts()``). Pure CPU, one core.
Results: bench/results/rules-engine-*.json and docs/performance.md ("Rules engine").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.sources.simulated.model import simulate  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.rulepack import load_rule_packs  # noqa: E402
from villagewatch.sites import load_site  # noqa: E402

T0 = 1_714_521_600_000
H = 3_600_000


def live_first(readings, outage_from: int, outage_to: int):
    backlog = [r for r in readings if outage_from <= r.ts_ms < outage_to]
    rest = [r for r in readings if not outage_from <= r.ts_ms < outage_to]
    before = [r for r in rest if r.ts_ms < outage_from]
    after = [r for r in rest if r.ts_ms >= outage_to]
    out = list(before)
    k = 0
    for i, r in enumerate(backlog):
        out.append(r)
        if i % 5 == 4 and k < len(after):
            out.append(after[k])
            k += 1
    return out + after[k:]


def run(ruleset, site, readings) -> tuple[float, list]:
    e = Engine(ruleset, {site.commune: site}, start_ms=T0)
    t = time.perf_counter()
    for r in readings:
        e.feed(r)
    return len(readings) / (time.perf_counter() - t), e.alerts()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--outage-h", type=float, default=2)
    args = ap.parse_args()
    site = load_site(REPO / "sites" / "tan-thuan-dong.yaml")
    ruleset = load_rule_packs()
    readings = sorted(simulate(site, T0, T0 + int(args.hours * H), seed=3), key=lambda r: r.ts_ms)
    rng = random.Random(1)
    idx = list(range(len(readings)))
    for i in range(len(idx)):
        j = min(len(idx) - 1, max(0, i + rng.randint(-10, 10)))
        idx[i], idx[j] = idx[j], idx[i]
    mid = T0 + int(args.hours * H / 2)
    cases = {
        "in_order": readings,
        "live_first_backlog": live_first(readings, mid, mid + int(args.outage_h * H)),
        "locally_shuffled": [readings[i] for i in idx],
    }
    result = {"readings": len(readings), "stations": len(site.stations), "hours": args.hours}
    alerts = {}
    for name, order in cases.items():
        rate, alerts[name] = run(ruleset, site, order)
        result[f"{name}_per_s"] = round(rate)
        print(f"{name:20s} {rate:9,.0f} readings/s")
    result["same_alerts"] = alerts["in_order"] == alerts["live_first_backlog"] == alerts["locally_shuffled"]
    print("same alerts in all three orders:", result["same_alerts"], f"({len(alerts['in_order'])} alerts)")
    out = REPO / "bench" / "results" / f"rules-engine-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not result["same_alerts"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
