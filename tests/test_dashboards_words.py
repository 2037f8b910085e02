"""Words on the generated dashboards (issue 13, "Words"): a Vietnamese board shows no id a reader
would not know (station, commune, gateway, noise-area or gauge ids, rule ids), no decimal point
between digits, and no limit without its unit; an English board has no Vietnamese-only leftovers.

Numbers Grafana renders itself (panel values, axes) follow the browser's locale: not checked here
(docs/dashboards.md). What is checked is every string the generator writes for a person to read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from dashboards.generator import load_generated
from dashboards.limits import Limits
from rules.labels import VARIANT_LABELS, pick_lang
from villagewatch import contract
from villagewatch.sites import DEFAULT_SITES_DIR, Site, load_sites

# keys whose string value Grafana shows to a reader
_READABLE_KEYS = {"title", "description", "content", "label", "tooltip", "text", "displayName"}
_NUMBER = r"-?\d+(?:[.,]\d+)*"
# a limit as the generator writes it: after ≤/≥ or after "…: " (flood alarm level), maybe a range
_LIMIT = re.compile(rf"(?:[≤≥<>]\s*|:\s)({_NUMBER}(?:–{_NUMBER})?)(?:\s+([^\s()]+))?")
UNITS = {m.unit for m in contract.METRICS.values() if m.unit} | {"%", "giờ", "h"}
VIETNAMESE = re.compile(r"[À-ỹĐđ]")


def readable(node: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(json path, text) of every string of ``node`` that reaches a reader."""
    if isinstance(node, dict):
        if node.get("builtIn") == 1 and node.get("hide"):
            return  # Grafana's own hidden "Annotations & Alerts" entry
        for key, value in node.items():
            sub = f"{path}.{key}"
            if isinstance(value, str):
                if key in _READABLE_KEYS or (key == "value" and node.get("id") == "displayName"):
                    yield sub, value
                elif key == "unit" and value.startswith("suffix:"):
                    yield sub, value.removeprefix("suffix:")
                elif key == "alias" and not value.startswith("$"):
                    yield sub, value  # a legend name
                elif key == "name" and not path.startswith("$.templating"):
                    yield sub, value  # annotation, map layer and basemap names (not variable ids)
            elif key == "renameByName" and isinstance(value, dict):
                yield from ((f"{sub}.{k}", v) for k, v in value.items())
            elif key != "datasource":
                yield from readable(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from readable(value, f"{path}[{i}]")


def _ids(site: Site, limits: Limits) -> set[str]:
    rule_ids = {t.data["id"] for t in limits.rules.templates}
    for s in site.stations.values():
        rule_ids |= {r.id for r in limits.rules.rules_for(s, include_report_only=True)}
    return {site.commune, *site.stations, *site.gateways, *VARIANT_LABELS, *rule_ids}


def vietnamese_problems(dash: dict[str, Any], ids: set[str]) -> list[str]:
    """What a Vietnamese reader should not see on ``dash``; empty when the board is clean."""
    id_pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(ids, key=len, reverse=True)))
                            + r")(?![\w-])")
    problems = []
    for panel in [dash, *dash.get("panels", [])]:
        dimensionless = panel.get("fieldConfig", {}).get("defaults", {}).get("unit") == "none"
        scope = {k: v for k, v in panel.items() if k != "panels"} if panel is dash else panel
        for path, text in readable(scope):
            where = f"{panel.get('title', '')!r} {path}: {text!r}"
            if m := id_pattern.search(text):
                problems.append(f"id {m.group(1)!r} in {where}")
            for token in re.findall(r"\d+(?:[.,]\d+)+", text):
                # a Vietnamese dot only groups thousands ("4.311"); anything else is a decimal point
                groups = token.split(",")[0].split(".")[1:]
                if any(len(g) != 3 for g in groups) or "." in token.split(",", 1)[-1] and "," in token:
                    problems.append(f"decimal point {token!r} in {where}")
            for m in _LIMIT.finditer(text):
                if not dimensionless and m.group(2) not in UNITS:
                    problems.append(f"limit {m.group(1)!r} without a unit in {where}")
    return problems


def english_leftovers(dash: dict[str, Any], proper_names: set[str]) -> list[str]:
    """Vietnamese words on an English board other than proper names (site file names without an
    English form, regulation titles as officially written)."""
    out = []
    for path, text in readable(dash):
        rest = text
        for name in sorted(proper_names, key=len, reverse=True):
            rest = rest.replace(name, "")
        if VIETNAMESE.search(rest):
            out.append(f"{path}: {text!r}")
    return out


@pytest.fixture(scope="module")
def sites() -> dict[str, Site]:
    return load_sites(DEFAULT_SITES_DIR)


@pytest.fixture(scope="module")
def generated() -> list[tuple[Any, dict[str, Any]]]:
    return load_generated()


def test_the_scanner_finds_what_issue_13_saw():
    """The scan is not vacuous: the texts quoted in issue 13 are flagged, their fixes are not."""
    def board(description: str, unit: str = "suffix: mg/L") -> dict[str, Any]:
        return {"title": "x", "panels": [{"title": "p", "description": description,
                                          "fieldConfig": {"defaults": {"unit": unit}}}]}
    ids = {"special", "cao-lanh", "ao-ca-tra-a1"}
    assert vietnamese_problems(board("Từ 6 giờ đến 21 giờ, khu vực special: ≤ 55 dBA"), ids)
    assert vietnamese_problems(board("Báo động I, trạm cao-lanh: 1,9 m", "lengthm"), ids)
    assert vietnamese_problems(board("Nhóm A: 0.2–1 mg/L"), ids)
    assert vietnamese_problems(board("Báo động I: 1.9 m", "lengthm"), ids)
    assert vietnamese_problems(board("Nhóm A: ≤ 2"), ids)
    assert vietnamese_problems({"title": "x", "panels": [{"title": "ao-ca-tra-a1 — DO"}]}, ids)
    assert not vietnamese_problems(board("Nhóm A: 0,2–1 mg/L (mẫu đơn) — 4.311 bản tin"), ids)
    assert not vietnamese_problems(board("Báo động I, trạm Cao Lãnh: 1,9 m", "lengthm"), ids)
    assert not vietnamese_problems(board("Mức B: 6–8,5 (mẫu đơn)", "none"), ids)
    assert english_leftovers({"title": "Khu vực đặc biệt"}, set())
    assert not english_leftovers({"title": "Ao nuôi A1 — DO"}, {"Ao nuôi A1"})


def test_vietnamese_boards_use_names_decimal_commas_and_units(generated, sites):
    limits = Limits()
    boards = [(p, d) for p, d in generated if p.parent.parent.name == "vi"]
    assert boards, "no Vietnamese dashboards generated"
    problems = []
    for path, dash in boards:
        site = sites[path.parent.name]
        problems += [f"{path.parent.name}/{path.name}: {x}" for x in vietnamese_problems(dash, _ids(site, limits))]
    assert not problems, "\n".join(problems)


def test_vietnamese_limit_texts_read_as_in_issue_13(generated):
    """The two examples of the brief, as a reader now sees them on the boards."""
    texts = {text for p, d in generated if p.parent.parent.name == "vi" for _, text in readable(d)}
    joined = "\n".join(texts)
    assert "Báo động I, trạm Cao Lãnh: 1,9 m" in joined
    assert "0,2–1 mg/L" in joined
    assert "khu vực đặc biệt" in joined
    assert "Thông tin" in joined and "Khẩn cấp" in joined  # severity tag values, not "info"/"critical"


def test_data_panels_carry_a_unit(generated):
    """Every panel that plots or states a metric has a Grafana unit; "none" only for a metric that
    has no unit in the registry (pH)."""
    unitless = {m.label(lang) for m in contract.METRICS.values() if not m.unit for lang in ("vi", "en")}
    for path, dash in generated:
        for panel in dash["panels"]:
            if panel["type"] not in ("timeseries", "stat", "bargauge"):
                continue
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit, (path, panel["title"])
            if unit == "none":
                assert any(label in panel["title"] for label in unitless), (path.name, panel["title"])


def test_english_boards_have_no_vietnamese_leftovers(generated, sites):
    limits = Limits()
    proper = {pick_lang(p.regulation, "en") for p in limits.rules.packs}
    for site in sites.values():
        proper |= {s.name("en") for s in site.stations.values()}
        proper |= {g.name_vi for g in site.gateways.values()}  # gateways have no English name
        proper |= {site.name_en or site.name_vi}
    boards = [(p, d) for p, d in generated if p.parent.parent.name == "en"]
    assert boards
    leftovers = [f"{p.name} {x}" for p, d in boards for x in english_leftovers(d, proper)]
    assert not leftovers, "\n".join(leftovers)


def test_pickers_list_names_and_match_ids(generated, sites):
    """The commune and station pickers show the site file's names; the queries still get ids."""
    from dashboards.grafana import custom_values
    for path, dash in generated:
        site, lang = sites[path.parent.name], path.parent.parent.name
        commune, station = dash["templating"]["list"]
        assert custom_values(commune["query"]) == [site.commune]
        assert commune["current"]["text"] == (site.name_vi if lang == "vi" else site.name_en or site.name_vi)
        names = {o["value"]: o["text"] for o in station["options"]}
        assert set(custom_values(station["query"])) == set(names) <= set(site.stations)
        assert all(names[i] == site.stations[i].name(lang) for i in names)


def _outer_columns(query: str) -> list[str]:
    """Column names of a query's outer SELECT (its AS names, or the bare field)."""
    head = query.removeprefix("SELECT ").split(" FROM ", 1)[0]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(head):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(head[start:i])
            start = i + 1
    items.append(head[start:])
    return [item.split(" AS ")[-1].strip().strip('"') for item in items]


def test_every_series_and_column_has_a_reader_name(generated):
    """No legend reads "telemetry.chlorine" and no table header reads "fill", "seq" or "Time":
    time series carry an alias, every table column a display name (or is hidden). The geomap's
    lat/lon/state fields are left (docs/dashboards.md)."""
    missing = []
    for path, dash in generated:
        for panel in dash["panels"]:
            if panel["type"] in ("row", "geomap"):
                continue
            named = {o["matcher"]["options"] for o in panel["fieldConfig"].get("overrides", [])
                     if any(p["id"] in ("displayName", "custom.hidden") for p in o["properties"])}
            for tg in panel.get("targets", []):
                if tg.get("resultFormat") == "table":
                    missing += [f"{path.parent.parent.name}/{path.name} {panel['title']!r}: column {col!r}"
                                for col in ["Time", "station", *_outer_columns(tg["query"])] if col not in named]
                elif not tg.get("alias"):
                    missing.append(f"{path.parent.parent.name}/{path.name} {panel['title']!r}: series {tg['refId']}")
    assert not missing, "\n".join(missing)
