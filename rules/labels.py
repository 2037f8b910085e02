"""Reader names for ids that rule packs put into texts (variants: noise areas, flood gauges).

Shared by reports/ and dashboards/ so a Vietnamese text never shows "khu vực special" or
"trạm cao-lanh": ids never reach a reader, their names do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping


@functools.cache
def _variant_names() -> dict[str, tuple[str, str]]:
    """Variant id → (Vietnamese name, English name), from the packs' own ``variant.names`` (data,
    one source: a new gauge or noise area is named where it is defined)."""
    from rules.rulepack import load_rule_packs
    names: dict[str, tuple[str, str]] = {}
    for pack in load_rule_packs().packs:
        if pack.variant:
            # only choices a pack names: a QCVN 08 class "B" is its own reader name
            for choice in dict(pack.variant.names):
                names.setdefault(choice, (pack.variant.name(choice, "vi"), pack.variant.name(choice, "en")))
    return names


class _VariantLabels(Mapping[str, tuple[str, str]]):
    """Read-only view of the packs' variant names, loaded on first use (not at import)."""

    def __getitem__(self, key: str) -> tuple[str, str]:
        return _variant_names()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_variant_names())

    def __len__(self) -> int:
        return len(_variant_names())


VARIANT_LABELS: Mapping[str, tuple[str, str]] = _VariantLabels()


def pick_lang(text: str, lang: str) -> str:
    """Rule packs write "tiếng Việt / English" in one string; return one side."""
    if " / " not in text:
        return text
    vi, en = text.split(" / ", 1)
    return vi if lang == "vi" else en


def variant_label(variant: str | None, lang: str) -> str:
    if not variant:
        return ""
    vi, en = VARIANT_LABELS.get(variant, (variant, variant))
    return vi if lang == "vi" else en


def with_variant(text: str, variant: str | None, lang: str) -> str:
    """One side of a rule-pack text with its variant id replaced by the variant's name."""
    text = pick_lang(text, lang)
    if variant:
        text = text.replace(variant, variant_label(variant, lang))
    return text
