"""Rule packs: regulation limits as YAML data (``rules/packs/*.yaml``), validated at load.

The alert engine evaluates these rules; dashboards draw them; reports measure compliance against
them. Everyone loads them through this module.

Public API
----------
``load_rule_packs(folder=None) -> RuleSet``
    Load and validate every ``*.yaml`` in ``folder`` (default: ``rules/packs``). A wrong file
    raises ``villagewatch.schema.ConfigError`` naming the file, line, key path and a hint.
``RuleSet.packs -> list[Pack]``
    The packs, with their regulation, titles (vi/en), source, station kinds and variant.
``RuleSet.rules_for(station, at_ms=None, include_report_only=False) -> list[Rule]``
    The concrete rules of one ``villagewatch.sites.Station``: the variant is chosen from the station
    params (``qcvn08_class``, ``noise_area``, ``gauge``), limits overridden by params (``do_min``,
    ``ph_min``, ``battery_min`` ...), the regulation choice applied (``params.regulation``: one
    choice id or a list, e.g. ``qcvn01-1``), metrics the station does not measure dropped. With
    ``at_ms``, rules outside their validity dates (``valid_from``/``valid_until``) are dropped.
    Raises ``ConfigError`` when a param names an unknown variant (e.g. a gauge that has no table).
``RuleSet.gateway_rules() -> list[Rule]``
    Rules about gateways (kind ``gateway_offline``).
``RuleSet.rule(id) -> RuleTemplate``
    A rule as written in its pack (limits still per variant).

``Rule`` fields (frozen dataclass): ``id``, ``pack``, ``metric`` (``"*"`` = whole station),
``kind`` (``threshold``, ``band``, ``mean``, ``rate``, ``aqi``, ``stale``, ``flatline``,
``gateway_offline``), ``op`` (``above`` >, ``at_or_above`` ≥, ``below`` <, ``at_or_below`` ≤), ``limit``, ``lo``/``hi`` (band), ``window_s``
(averaging period; 0 = the reading itself), ``mean`` (``arithmetic`` or ``energy`` for Leq),
``min_coverage`` (share of the window that must hold data), ``duration_s`` (must hold for T),
``hysteresis`` (clear only that far back inside the limit), ``factor`` (stale: N × interval),
``aqi`` (``hourly``/``daily``), ``hours`` (local-time window, minutes of day), ``severity``
(``info``/``warning``/``critical``), ``regulation``, ``table``, ``column``, ``averaging``,
``unverified`` (+ ``unverified_note``), ``valid_from``/``valid_until``, ``report_only``,
``variant``, ``message_vi``/``message_en`` and ``resolved_vi``/``resolved_en`` (templates, see
``rules.messages``), ``source``. A pack's ``variant.names`` gives each choice a reader's name
("Cao Lãnh / Cao Lanh"); columns use ``{variant_vi}``/``{variant_en}`` so no id reaches a reader.
``Rule.active_at(ts_ms, tz)`` tells whether the rule applies at that instant (dates, hours).
``Rule.breached_by(value)`` is THE comparison of a rule (engine, reports and portal use it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rules.kinds import REGISTRY
from rules.kinds.base import crossed
from villagewatch import contract
from villagewatch.schema import Any_, Bool, ConfigError, Ctx, Key, ListOf, Map, Num, OneOf, Str, load_yaml
from villagewatch.sites import STATION_KINDS, Station

DEFAULT_FOLDER = Path(__file__).resolve().parent / "packs"

KINDS = tuple(REGISTRY)  # one module per kind: rules/kinds/
SEVERITIES = ("info", "warning", "critical")
# above: value > limit; at_or_above: value ≥ limit (e.g. "fill ≥ 80 %"); likewise below.
OPS = ("above", "below", "at_or_above", "at_or_below")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_ID = Str(r"[a-z0-9][a-z0-9_.-]{0,80}", "rule id")


def _metric_or_star(value: Any, ctx: Ctx) -> str:
    if value != "*" and value not in contract.METRICS:
        import difflib
        near = difflib.get_close_matches(str(value), list(contract.METRICS), n=1, cutoff=0.5)
        raise ctx.error(f"unknown metric {value!r}", f"did you mean {near[0]!r}?" if near
                        else "see villagewatch/contract.py METRICS")
    return value


def _num_or_variants(value: Any, ctx: Ctx) -> Any:
    """A number, or a mapping variant → number (checked against the pack's variants later)."""
    if isinstance(value, dict):
        return Map([], extra=Num(), name="variant → number mapping")(value, ctx)
    return Num()(value, ctx)


def _bool_or_variants(value: Any, ctx: Ctx) -> Any:
    if isinstance(value, dict):
        return Map([], extra=Bool(), name="variant → true/false mapping")(value, ctx)
    return Bool()(value, ctx)


def _date(value: Any, ctx: Ctx) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ctx.error(f"{value!r} is not a date", "write it as YYYY-MM-DD") from exc


def _hours(value: Any, ctx: Ctx) -> tuple[int, int]:
    text = Str(r"\d{2}:\d{2}-\d{2}:\d{2}", "local time window HH:MM-HH:MM")(value, ctx)
    a, b = text.split("-")
    start, end = (int(x[:2]) * 60 + int(x[3:]) for x in (a, b))
    if start >= 24 * 60 or end > 24 * 60 or start == end:
        raise ctx.error(f"{text!r} is not a valid time window")
    return start, end


_RULE_KEYS = [
    Key("id", _ID),
    Key("metric", _metric_or_star, required=False),
    Key("metrics", ListOf(_metric_or_star, min_len=1), required=False,
        doc="one rule per metric; ids get '.<metric>' appended"),
    Key("kind", OneOf(*KINDS)),
    Key("op", OneOf(*OPS), required=False),
    Key("limit", _num_or_variants, required=False),
    Key("lo", _num_or_variants, required=False),
    Key("hi", _num_or_variants, required=False),
    Key("param", Str(what="station param name"), required=False, doc="station param overriding limit"),
    Key("lo_param", Str(what="station param name"), required=False),
    Key("hi_param", Str(what="station param name"), required=False),
    Key("window_s", Num(0), required=False, default=0),
    Key("mean", OneOf("arithmetic", "energy"), required=False, default="arithmetic"),
    Key("min_coverage", Num(0, 1), required=False, default=0.75),
    Key("duration_s", Num(0), required=False, default=0),
    Key("hysteresis", Num(0), required=False, default=0),
    Key("factor", Num(1), required=False),
    Key("aqi", OneOf("hourly", "daily"), required=False),
    Key("hours", _hours, required=False),
    Key("severity", OneOf(*SEVERITIES)),
    Key("table", Str()),
    Key("column", Str()),
    Key("averaging", Str()),
    Key("unverified", _bool_or_variants, required=False, default=False),
    Key("unverified_note", Str(), required=False, default=""),
    Key("valid_from", _date, required=False),
    Key("valid_until", _date, required=False),
    Key("report_only", Bool(), required=False, default=False),
    Key("message_vi", Str(), required=False),
    Key("message_en", Str(), required=False),
    Key("resolved_vi", Str(), required=False, doc="text when it resolves (default: rules.messages)"),
    Key("resolved_en", Str(), required=False),
    Key("note", Str(), required=False, default=""),
]
_RULE = Map(_RULE_KEYS, name="rule")
_DEFAULTS = Map([Key(k.name, k.type, required=False) for k in _RULE_KEYS if k.name != "id"],
                name="rule defaults")

PACK_SCHEMA = Map([
    Key("pack", _ID, doc="pack id"),
    Key("choice", _ID, doc="id a station names in params.regulation"),
    Key("regulation", Str()),
    Key("title_vi", Str()),
    Key("title_en", Str()),
    Key("source", Str()),
    Key("kinds", ListOf(OneOf(*STATION_KINDS))),
    Key("general", Bool(), required=False, default=False, doc="applies whatever the regulation choice"),
    Key("replaced_by", Str(), required=False, default="",
        doc="regulation that replaces this one (its pack sets valid_from); validity: defaults valid_from/valid_until"),
    Key("variant", Map([
        Key("param", Str()),
        Key("default", Str(), required=False),
        Key("choices", ListOf(Str(), min_len=1)),
        Key("label_vi", Str(), required=False, default=""),
        Key("label_en", Str(), required=False, default=""),
        Key("names", Map([], extra=Str(), name="choice → \"tên / name\""), required=False, default=dict,
            doc="reader's name of each choice, vi / en (ids never reach a reader)"),
    ], name="variant"), required=False),
    Key("defaults", Any_(), required=False, default=dict),
    Key("rules", ListOf(Any_(), min_len=1)),
], name="rule pack")


@dataclass(frozen=True)
class Variant:
    param: str
    default: str | None
    choices: tuple[str, ...]
    label_vi: str = ""
    label_en: str = ""
    names: tuple[tuple[str, str], ...] = ()  # choice → "tên / name"

    def name(self, choice: str, lang: str) -> str:
        from rules.labels import pick_lang  # labels reads the packs: imported here, not at the top
        return pick_lang(dict(self.names).get(choice, choice), lang)


@dataclass(frozen=True)
class Pack:
    id: str
    choice: str
    regulation: str
    title_vi: str
    title_en: str
    source: str
    kinds: tuple[str, ...]
    general: bool
    variant: Variant | None
    path: str
    replaced_by: str = ""


@dataclass(frozen=True)
class RuleTemplate:
    """A rule as written in the pack: limits may still be per variant."""

    pack: Pack
    data: dict[str, Any] = field(hash=False)
    line: int | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    pack: str
    metric: str
    kind: str
    severity: str
    regulation: str
    table: str
    column: str
    averaging: str
    op: str | None = None
    limit: float | None = None
    lo: float | None = None
    hi: float | None = None
    window_s: float = 0
    mean: str = "arithmetic"
    min_coverage: float = 0.75
    duration_s: float = 0
    hysteresis: float = 0
    factor: float | None = None
    aqi: str | None = None
    hours: tuple[int, int] | None = None
    unverified: bool = False
    unverified_note: str = ""
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    report_only: bool = False
    variant: str | None = None
    message_vi: str = ""
    message_en: str = ""
    resolved_vi: str = ""
    resolved_en: str = ""
    source: str = ""
    note: str = ""

    @property
    def severity_rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def breached_by(self, value: float) -> bool:
        """``value`` is beyond this rule's limit by the regulation's comparison (``op``; a band's
        bounds are allowed) — the one definition the engine, reports and portal share. No
        duration, hysteresis or averaging here: ``value`` is already the rule's measure."""
        if self.kind == "band":
            assert self.lo is not None and self.hi is not None
            return value < self.lo or value > self.hi
        if self.op is None or self.limit is None:
            raise ValueError(f"rule {self.id!r} ({self.kind}) has no comparison")
        return crossed(self.op, value, self.limit)

    def active_at(self, ts_ms: int, tz: str | ZoneInfo = "Asia/Ho_Chi_Minh") -> bool:
        """Whether the rule applies at this instant: validity dates and local-time hours."""
        if self.valid_from is None and self.valid_until is None and self.hours is None:
            return True
        zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        local = dt.datetime.fromtimestamp(ts_ms / 1000, zone)
        if self.valid_from and local.date() < self.valid_from:
            return False
        if self.valid_until and local.date() >= self.valid_until:
            return False
        if self.hours:
            minute = local.hour * 60 + local.minute
            start, end = self.hours
            inside = start <= minute < end if start < end else (minute >= start or minute < end)
            if not inside:
                return False
        return True


class RuleSet:
    def __init__(self, packs: list[Pack], templates: list[RuleTemplate]):
        self.packs = packs
        self.templates = templates
        self._by_id = {t.data["id"]: t for t in templates}

    def rule(self, rule_id: str) -> RuleTemplate:
        return self._by_id[rule_id]

    def pack(self, pack_id: str) -> Pack:
        return next(p for p in self.packs if p.id == pack_id)

    def rules_for(self, station: Station, at_ms: int | None = None,
                  include_report_only: bool = False) -> list[Rule]:
        chosen = station.params.get("regulation")
        if isinstance(chosen, str):
            chosen = [chosen]
        out: list[Rule] = []
        for t in self.templates:
            pack, data = t.pack, t.data
            if data["kind"] == "gateway_offline":
                continue
            if data.get("report_only") and not include_report_only:
                continue
            if pack.kinds and station.kind not in pack.kinds:
                continue
            if not pack.general and chosen is not None and pack.choice not in chosen:
                continue
            variant = _station_variant(pack, station)
            if pack.variant and variant is None:
                continue  # e.g. a river station without a `gauge` has no flood levels
            for metric in data.get("metrics") or [data.get("metric")]:
                if metric != "*" and metric not in station.metrics:
                    continue
                rule = _concrete(t, metric, variant, station.params)
                if rule is not None and (at_ms is None or _within_dates(rule, at_ms)):
                    out.append(rule)
        return out

    def gateway_rules(self) -> list[Rule]:
        return [r for t in self.templates if t.data["kind"] == "gateway_offline"
                if (r := _concrete(t, "*", None, {})) is not None]


def _within_dates(rule: Rule, at_ms: int) -> bool:
    return replace(rule, hours=None).active_at(at_ms)


def _station_variant(pack: Pack, station: Station) -> str | None:
    if not pack.variant:
        return None
    value = station.params.get(pack.variant.param, pack.variant.default)
    if value is None:
        return None
    value = str(value)
    if value not in pack.variant.choices:
        raise ConfigError(
            f"station {station.id!r}: {pack.variant.param} = {value!r} has no limits in rule pack {pack.id!r}",
            file=pack.path, hint=f"choose one of: {', '.join(pack.variant.choices)}")
    return value


def _pick(value: Any, variant: str | None) -> Any:
    if isinstance(value, dict):
        return value.get(variant) if variant is not None else None
    return value


def _param(params: dict[str, Any], name: str | None, fallback: Any) -> Any:
    if name and name in params:
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"station param {name} = {value!r} must be a number")
        return float(value)
    return fallback


def _concrete(t: RuleTemplate, metric: str, variant: str | None, params: dict[str, Any]) -> Rule | None:
    d, pack = t.data, t.pack
    limit = _param(params, d.get("param"), _pick(d.get("limit"), variant))
    lo = _param(params, d.get("lo_param"), _pick(d.get("lo"), variant))
    hi = _param(params, d.get("hi_param"), _pick(d.get("hi"), variant))
    factor = _param(params, d.get("param"), d.get("factor")) if d["kind"] == "stale" else None
    if d["kind"] in ("threshold", "mean", "rate", "aqi") and limit is None:
        return None  # no limit for this variant (e.g. class D of QCVN 08 Table 2)
    if d["kind"] == "band" and (lo is None or hi is None):
        return None
    rule_id = d["id"] + (f".{metric}" if d.get("metrics") else "")
    unverified = _pick(d.get("unverified"), variant) if isinstance(d.get("unverified"), dict) else d.get("unverified")
    fmt = {"variant": variant or "", "variant_vi": "", "variant_en": ""}
    if variant and pack.variant:
        fmt.update(variant_vi=pack.variant.name(variant, "vi"), variant_en=pack.variant.name(variant, "en"))
    return Rule(
        id=rule_id, pack=pack.id, metric=metric, kind=d["kind"], severity=d["severity"],
        regulation=pack.regulation, table=d["table"], column=d["column"].format(**fmt),
        averaging=d["averaging"], op=d.get("op"),
        limit=None if limit is None else float(limit), lo=None if lo is None else float(lo),
        hi=None if hi is None else float(hi), window_s=float(d["window_s"]), mean=d["mean"],
        min_coverage=float(d["min_coverage"]), duration_s=float(d["duration_s"]),
        hysteresis=float(d["hysteresis"]), factor=None if factor is None else float(factor),
        aqi=d.get("aqi"), hours=d.get("hours"), unverified=bool(unverified),
        unverified_note=d["unverified_note"] if unverified else "",
        valid_from=d.get("valid_from"), valid_until=d.get("valid_until"),
        report_only=d["report_only"], variant=variant,
        message_vi=d.get("message_vi") or "", message_en=d.get("message_en") or "",
        resolved_vi=d.get("resolved_vi") or "", resolved_en=d.get("resolved_en") or "",
        source=pack.source, note=d["note"],
    )


_NEEDS = {name: kind.needs for name, kind in REGISTRY.items()}


def load_pack(path: str | Path) -> tuple[Pack, list[RuleTemplate]]:
    path = Path(path)
    raw = load_yaml(path)
    ctx = Ctx(str(path), "", getattr(raw, "start_line", 1))
    data = PACK_SCHEMA(raw, ctx)
    v = data.get("variant")
    variant = Variant(v["param"], v.get("default"), tuple(v["choices"]), v["label_vi"], v["label_en"],
                      tuple((v["names"] or {}).items())) if v else None
    if variant and variant.default is not None and variant.default not in variant.choices:
        raise ctx.child("variant", raw).error(f"default {variant.default!r} is not one of the choices")
    if variant and any(k not in variant.choices for k in dict(variant.names)):
        bad = [k for k in dict(variant.names) if k not in variant.choices]
        raise ctx.child("variant", raw).error(f"names for unknown choice(s) {bad}",
                                              f"choices: {', '.join(variant.choices)}")
    pack = Pack(data["pack"], data["choice"], data["regulation"], data["title_vi"], data["title_en"],
                data["source"], tuple(data["kinds"]), data["general"], variant, str(path),
                data["replaced_by"])
    defaults = _DEFAULTS(data["defaults"] or {}, ctx.child("defaults", raw)) if data["defaults"] else {}
    defaults = {k: v for k, v in defaults.items() if v is not None}
    templates: list[RuleTemplate] = []
    rules_ctx = ctx.child("rules", raw)
    for i, item in enumerate(raw["rules"]):
        rctx = rules_ctx.child(i, raw["rules"])
        if not isinstance(item, dict):
            raise rctx.error("a rule must be a mapping")
        merged: Any = type(item)({**defaults, **item})
        merged.lines = getattr(item, "lines", {})
        merged.start_line = getattr(item, "start_line", None)
        rule = _RULE(merged, rctx)
        _check_rule(rule, pack, rctx.child("id", item))
        templates.append(RuleTemplate(pack, rule, rctx.line))
    return pack, templates


def _check_rule(rule: dict[str, Any], pack: Pack, ctx: Ctx) -> None:
    rid = rule["id"]
    if (rule.get("metric") is None) == (rule.get("metrics") is None):
        raise ctx.error(f"rule {rid!r} needs exactly one of `metric` or `metrics`")
    for need in _NEEDS[rule["kind"]]:
        if rule.get(need) in (None, 0) and not (need == "limit" and rule.get("limit") == 0):
            raise ctx.error(f"rule {rid!r} of kind {rule['kind']!r} needs `{need}`")
    for key in ("limit", "lo", "hi", "unverified"):
        value = rule.get(key)
        if isinstance(value, dict):
            if not pack.variant:
                raise ctx.error(f"rule {rid!r}: `{key}` is per variant but pack {pack.id!r} has no `variant`")
            bad = [k for k in value if k not in pack.variant.choices]
            if bad:
                raise ctx.error(f"rule {rid!r}: `{key}` names unknown variant(s) {bad}",
                                f"variants: {', '.join(pack.variant.choices)}")
    if rule["kind"] == "band":
        for name in pack.variant.choices if pack.variant else [None]:
            lo, hi = _pick(rule["lo"], name), _pick(rule["hi"], name)
            if lo is not None and hi is not None and lo >= hi:
                raise ctx.error(f"rule {rid!r}: lo {lo} must be below hi {hi}")
    if rule["kind"] in ("stale", "gateway_offline") and rule.get("metric") != "*":
        raise ctx.error(f"rule {rid!r} of kind {rule['kind']!r} needs metric: \"*\"")


def load_rule_packs(folder: str | Path | None = None) -> RuleSet:
    """Every pack of the folder, validated. Duplicate pack or rule ids are errors."""
    folder = Path(folder) if folder else DEFAULT_FOLDER
    if not folder.is_dir():
        raise ConfigError("rule pack folder not found", file=str(folder))
    packs: list[Pack] = []
    templates: list[RuleTemplate] = []
    seen_rules: dict[str, str] = {}
    for path in sorted(folder.glob("*.y*ml")):
        pack, items = load_pack(path)
        if any(p.id == pack.id for p in packs):
            raise ConfigError(f"pack id {pack.id!r} is declared twice", file=str(path))
        for t in items:
            rid = t.data["id"]
            if rid in seen_rules:
                raise ConfigError(f"rule id {rid!r} is also declared in {seen_rules[rid]}",
                                  file=str(path), line=t.line)
            seen_rules[rid] = str(path)
        packs.append(pack)
        templates.extend(items)
    if not packs:
        raise ConfigError("no rule pack (*.yaml) in folder", file=str(folder))
    return RuleSet(packs, templates)
