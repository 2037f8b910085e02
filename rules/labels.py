"""Reader names for ids that rule packs put into texts (variants: noise areas, flood gauges).

Shared by reports/ and dashboards/ so a Vietnamese text never shows "khu vực special" or
"trạm cao-lanh": ids never reach a reader, their names do.
"""

from __future__ import annotations

VARIANT_LABELS: dict[str, tuple[str, str]] = {
    # rule-pack variant ids as a reader names them: flood gauges (flood-05-2020.yaml),
    # noise areas (qcvn26-*.yaml)
    "cao-lanh": ("Cao Lãnh", "Cao Lanh"), "truong-xuan": ("Trường Xuân", "Truong Xuan"),
    "tan-chau": ("Tân Châu", "Tan Chau"), "chau-doc": ("Châu Đốc", "Chau Doc"),
    "special": ("đặc biệt", "special"), "common": ("thông thường", "common"),
}


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
