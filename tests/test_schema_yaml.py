"""The YAML loader every site, rule pack, profile and settings file goes through: any text is either
data or a ConfigError naming the file (and line where it has one) — never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from villagewatch.schema import MAX_EXPANDED_NODES, ConfigError, load_yaml, load_yaml_text

REPO = Path(__file__).resolve().parent.parent


def test_duplicate_key_names_both_lines():
    with pytest.raises(ConfigError) as err:
        load_yaml_text("stations:\n  - id: a\n    kind: river\n    kind: pond\n", "site.yaml")
    assert "site.yaml:4" in str(err.value) and "duplicate key 'kind' (first at line 3)" in str(err.value)


def test_aliases_that_multiply_are_refused_but_plain_anchors_work():
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_yaml_text("\n".join(levels) + "\n", "bomb.yaml")
    assert load_yaml_text("base: &b {kind: river}\nst: [*b, *b]\n")["st"][1] == {"kind": "river"}
    assert MAX_EXPANDED_NODES >= 10_000  # far above any real site file


def test_deep_nesting_is_a_config_error():
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_yaml_text("a: " + "[" * 20_000, "deep.yaml")


def test_every_shipped_yaml_file_has_no_duplicate_key():
    files = [p for p in REPO.rglob("*.yaml") if ".venv" not in p.parts and "node_modules" not in p.parts
             and ".git" not in p.parts and "docker-compose" not in p.name]
    assert len(files) > 20
    for path in files:
        load_yaml(path)  # raises ConfigError on a duplicate key


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_text_is_data_or_a_config_error(text):
    try:
        load_yaml_text(text, "x.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("x.yaml")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a:", " b:", "  - c", "- ", "&x ", "*x", "[", "]", "{", "}", ": ", "\n",
                                 "1", "'q'", "!!str ", "? ", "|", ">", "#", ",", "&y [*x, *x]"]), max_size=60))
def test_yaml_shaped_noise_is_data_or_a_config_error(parts):
    try:
        load_yaml_text("".join(parts), "x.yaml")
    except ConfigError:
        pass
