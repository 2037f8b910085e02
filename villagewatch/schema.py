"""A small declarative schema for YAML data files (sites, rule packs, sensor profiles, config).

Errors carry the file, the line, the key path and the value, and suggest the nearest valid key
(the ESPHome way): a technician editing a site file on a laptop must see exactly what to fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A data file is wrong (not a bug): names the file, line, key path and value."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: str = "", hint: str | None = None):
        self.file, self.line, self.path, self.hint, self.bare = file, line, path, hint, message
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: {path + ': ' if path else ''}{message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and value."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    mapping = LineDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (dict, list)):
            raise ConfigError("a key must be a plain value, not a list or mapping", file=loader.name,
                              line=key_node.start_mark.line + 1)
        if key in mapping:
            # YAML keeps the last of two equal keys: a station or a limit written twice would
            # silently replace the first — the technician must hear of it
            raise ConfigError(f"duplicate key {key!r} (first at line {mapping.lines[key]})",
                              file=loader.name, line=key_node.start_mark.line + 1,
                              hint="remove or rename one of them")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    mapping.start_line = node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    seq = LineList(loader.construct_object(child, deep=True) for child in node.value)
    seq.lines = [child.start_mark.line + 1 for child in node.value]
    seq.start_line = node.start_mark.line + 1
    return seq


class LineDict(dict[Any, Any]):
    lines: dict[Any, int]
    start_line: int | None

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lines = {}
        self.start_line = None


class LineList(list[Any]):
    lines: list[int]
    start_line: int | None = None


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from exc
    return load_yaml_text(text, str(path))


# A configuration file is small; anchors and aliases are fine, but aliases that multiply (the
# "billion laughs" document) would make validation walk millions of nodes.
MAX_EXPANDED_NODES = 200_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def load_yaml_text(text: str, filename: str = "<string>") -> Any:
    try:
        loader = _LineLoader(text)  # the reader refuses control characters already here
    except yaml.YAMLError as exc:
        raise ConfigError(f"not a YAML text: {exc}", file=filename) from exc
    loader.name = filename
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise ConfigError(f"the document expands to more than {MAX_EXPANDED_NODES:,} values "
                              "(aliases that multiply?)", file=filename, hint="write the values out")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem}", file=filename, line=line) from exc
    except yaml.YAMLError as exc:  # e.g. ReaderError: a control character in the text
        raise ConfigError(f"not a YAML text: {exc}", file=filename) from exc
    except RecursionError as exc:
        raise ConfigError("nested too deeply to be a configuration file", file=filename) from exc
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- schema types

Validator = Callable[[Any, "Ctx"], Any]


@dataclass
class Ctx:
    file: str
    path: str = ""
    line: int | None = None

    def child(self, key: Any, container: Any) -> Ctx:
        line = self.line
        if isinstance(container, LineDict):
            line = container.lines.get(key, container.start_line or line)
        elif isinstance(container, LineList) and isinstance(key, int) and key < len(container.lines):
            line = container.lines[key]
        sub = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else str(key))
        return Ctx(self.file, sub, line)

    def error(self, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line, path=self.path, hint=hint)


@dataclass
class Key:
    name: str
    type: Validator
    required: bool = True
    default: Any = None
    doc: str = ""


@dataclass
class Map:
    """A mapping with known keys; unknown keys are errors with the nearest valid suggestion."""

    keys: list[Key]
    extra: Validator | None = None  # validator for free-form keys (e.g. metric -> limit)
    extra_key: Validator | None = None
    name: str = "mapping"
    index: dict[str, Key] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {k.name: k for k in self.keys}

    def __call__(self, value: Any, ctx: Ctx) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ctx.error(f"expected a {self.name} (key: value pairs), got {_show(value)}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = ctx.child(key, value)
            if key in self.index:
                out[key] = self.index[key].type(item, sub)
            elif self.extra is not None:
                if self.extra_key is not None:
                    self.extra_key(key, sub)
                out[key] = self.extra(item, sub)
            else:
                near = difflib.get_close_matches(str(key), list(self.index), n=1, cutoff=0.5)
                hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(self.index)}"
                raise sub.error(f"unknown key {key!r}", hint)
        for key in self.keys:
            if key.name not in out:
                if key.required:
                    raise ctx.error(f"required key {key.name!r} is missing"
                                    + (f" ({key.doc})" if key.doc else ""))
                out[key.name] = key.default() if callable(key.default) else key.default
        return out


def ListOf(item: Validator, min_len: int = 0) -> Validator:
    def check(value: Any, ctx: Ctx) -> list[Any]:
        if not isinstance(value, list):
            raise ctx.error(f"expected a list, got {_show(value)}")
        if len(value) < min_len:
            raise ctx.error(f"needs at least {min_len} item(s)")
        return [item(v, ctx.child(i, value)) for i, v in enumerate(value)]
    return check


def Str(pattern: str | None = None, what: str = "text") -> Validator:
    regex = re.compile(pattern) if pattern else None

    def check(value: Any, ctx: Ctx) -> str:
        if not isinstance(value, str):
            raise ctx.error(f"expected {what}, got {_show(value)}")
        if regex and not regex.fullmatch(value):
            raise ctx.error(f"{value!r} is not a valid {what} (must match {pattern})")
        return value
    return check


def Num(lo: float | None = None, hi: float | None = None, integer: bool = False) -> Validator:
    def check(value: Any, ctx: Ctx) -> float | int:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            raise ctx.error(f"expected {'an integer' if integer else 'a number'}, got {_show(value)}")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise ctx.error(f"{value} is outside {lo}..{hi}")
        number: float | int = value
        return number
    return check


def Bool() -> Validator:
    def check(value: Any, ctx: Ctx) -> bool:
        if not isinstance(value, bool):
            raise ctx.error(f"expected true or false, got {_show(value)}")
        return value
    return check


def OneOf(*choices: str) -> Validator:
    def check(value: Any, ctx: Ctx) -> str:
        if value not in choices:
            near = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}?" if near else f"choose one of: {', '.join(choices)}"
            raise ctx.error(f"{value!r} is not allowed", hint)
        return str(value)
    return check


def Any_() -> Validator:
    return lambda value, ctx: value


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def validate_file(path: str | Path, schema: Validator) -> Any:
    data = load_yaml(path)
    return schema(data, Ctx(str(path), "", getattr(data, "start_line", 1)))
