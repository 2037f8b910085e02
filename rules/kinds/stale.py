"""``stale``: a station silent for more than ``factor`` × its interval. Judged on the engine's clock
(``Engine.tick``), not on readings: silence is about now, not about event time."""

from rules.kinds.base import Kind, compare_limit

KIND = Kind("stale", needs=("factor",), measure=None, judge=compare_limit, resolve_cites_value=False)
