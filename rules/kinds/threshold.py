"""``threshold``: the reading itself against a one-sided limit (``op`` above/at_or_above/below/at_or_below)."""

from rules.kinds.base import Kind, compare_limit, reading_value

KIND = Kind("threshold", needs=("op", "limit"), measure=reading_value, judge=compare_limit)
