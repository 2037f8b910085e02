"""``band``: the reading itself inside an allowed range ``lo``..``hi`` (pH 6,5–8,5)."""

from rules.kinds.base import Kind, compare_band, reading_value

KIND = Kind("band", needs=("lo", "hi"), measure=reading_value, judge=compare_band)
