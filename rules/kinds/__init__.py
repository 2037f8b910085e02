"""Rule kinds: one module per kind, one registry line per kind.

Adding a kind: write ``rules/kinds/<kind>.py`` with a ``KIND = Kind(...)`` (see ``base.Kind``: the
pack keys it needs, how it measures, how it judges), add its line below, and give it a wording in
``rules.messages``. The loader accepts exactly the kinds registered here.
"""

from rules.kinds import aqi, band, flatline, gateway_offline, mean, rate, stale, threshold
from rules.kinds.base import BREACH, CLEAR, HOLD, Evidence, Kind

REGISTRY: dict[str, Kind] = {
    "threshold": threshold.KIND,
    "band": band.KIND,
    "mean": mean.KIND,
    "rate": rate.KIND,
    "aqi": aqi.KIND,
    "stale": stale.KIND,
    "flatline": flatline.KIND,
    "gateway_offline": gateway_offline.KIND,
}

__all__ = ["BREACH", "CLEAR", "HOLD", "REGISTRY", "Evidence", "Kind"]
