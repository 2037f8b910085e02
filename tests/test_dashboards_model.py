"""Generated dashboards are valid modern Grafana JSON, up to date, Vietnamese first, and draw the
limits of the same rule packs the alert engine evaluates."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from dashboards import provisioning
from dashboards.generator import GENERATED_DIR, build_all, load_generated, to_json
from dashboards.interpolate import TimeRange, interpolate
from dashboards.limits import Limits
from rules import aqi
from rules.rulepack import load_rule_packs
from villagewatch.sites import DEFAULT_SITES_DIR, load_site, load_sites

PROVISIONED = yaml.safe_load((provisioning.PROVISIONING_DIR / "datasources" / "villagewatch.yaml").read_text())
PROVISIONED_UIDS = {d["uid"] for d in PROVISIONED["datasources"]}


@pytest.fixture(scope="module")
def sites():
    return load_sites(DEFAULT_SITES_DIR)


@pytest.fixture(scope="module")
def built(sites):
    return build_all(sites)


def _board(built, board: str, lang: str = "vi") -> dict:
    return next(b.dashboard for b in built if b.board == board and b.lang == lang)


def _panel(dash: dict, title_start: str) -> dict:
    return next(p for p in dash["panels"] if p["title"].startswith(title_start))


def test_generated_files_are_up_to_date(built, sites):
    """`villagewatch dashboards build` was run after the last change of sites, rule packs or code."""
    on_disk = {p.relative_to(GENERATED_DIR): p.read_text(encoding="utf-8") for p, _ in load_generated()}
    assert on_disk == {b.relpath: to_json(b.dashboard) for b in built}, "run: villagewatch dashboards build"
    for rel, text in provisioning.files(sites).items():
        assert (provisioning.PROVISIONING_DIR / rel).read_text(encoding="utf-8") == text, rel


def _datasource_refs(node, path="$"):
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield path, node["datasource"]
        for k, v in node.items():
            yield from _datasource_refs(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _datasource_refs(v, f"{path}[{i}]")


def test_every_dashboard_is_valid_modern_json():
    dashboards = load_generated()
    assert len(dashboards) >= 12
    uids = [d["uid"] for _, d in dashboards]
    assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)
    for path, dash in dashboards:
        name = f"{path.parent.name}/{path.name} ({dash['title']})"
        assert dash["schemaVersion"] >= 39, name
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for p in dash["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{name}: {p['title']} off the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]
            if p["type"] != "row":
                assert p["targets"], f"{name}: {p['title']} has no query"
        refs = list(_datasource_refs(dash))
        assert refs
        for where, ref in refs:
            if ref.get("type") == "grafana":  # Grafana's built-in annotations
                continue
            assert ref["uid"] in PROVISIONED_UIDS, f"{name}: {where} → {ref}"


def test_vietnamese_first_english_build(built):
    vi, en = _board(built, "water"), _board(built, "water", "en")
    assert vi["title"] == "Xã Tân Thuận Đông — Nước" and en["title"] == "Tan Thuan Dong commune — Water"
    assert _panel(vi, "Nhà máy nước Tân Thuận — đầu ra — Clo dư tự do")
    assert _panel(en, "Tan Thuan water plant outlet — Free residual chlorine")
    assert [v["label"] for v in vi["templating"]["list"]] == ["Xã", "Trạm"]
    assert {v["name"] for v in vi["templating"]["list"]} == {"commune", "station"}
    # English build carries no Vietnamese panel titles of its own
    assert not any("Nước" in p["title"] for p in en["panels"])


def test_limits_are_the_rule_packs(built, sites):
    site = sites["tan-thuan-dong"]
    rules = load_rule_packs()

    def limits(station: str, metric: str) -> set[float]:
        out = set()
        for r in rules.rules_for(site.stations[station], at_ms=Limits().at_ms):
            if r.metric == metric and r.kind in ("threshold", "band", "mean"):
                out |= {v for v in (r.limit, r.lo, r.hi) if v is not None}
        return out

    def drawn(p: dict) -> set[float]:
        return {s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["value"] is not None}

    flood = _board(built, "flood")
    level = _panel(flood, "Trạm đo mực nước sông Tiền (chuẩn trạm Cao Lãnh) — Mực nước")
    assert drawn(level) == limits("muc-nuoc-song-tien", "level") and len(drawn(level)) == 3
    assert [s["color"] for s in level["fieldConfig"]["defaults"]["thresholds"]["steps"]] == \
        ["green", "yellow", "orange", "red"]  # alarm levels I, II, III
    assert "Quyết định 05/2020/QĐ-TTg" in level["description"]

    water = _board(built, "water")
    do_b = _panel(water, "Sông Tiền — bến đò Tân Thuận — Oxy hòa tan (DO)")
    do_c = _panel(water, "Kênh Xáng Lấp Vò — Oxy hòa tan (DO)")
    assert drawn(do_b) == limits("song-tien-ben-do", "do") and drawn(do_c) == limits("kenh-xang-lang", "do")
    assert drawn(do_b) != drawn(do_c)  # QCVN 08 class B vs class C
    pond_do = _panel(water, "Oxy hòa tan (DO) — Ao nuôi")
    assert drawn(pond_do) == limits("ao-ca-tra-a1", "do")
    assert pond_do["targets"][0]["query"].startswith('SELECT min("do")')  # the night-time low stays visible

    noise = _panel(_board(built, "air"), "Không khí — Trường THCS Tân Thuận Đông — Tiếng ồn")
    assert drawn(noise) == limits("khi-truong-thcs", "noise") and len(drawn(noise)) == 2  # day and night


def test_pm_panels_use_vn_aqi_band_colours(built):
    pm25 = _panel(_board(built, "air"), "Bụi mịn PM2,5 — Màu theo thang VN_AQI")
    steps = pm25["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["color"] for s in steps] == [b.hex for b in aqi.BANDS]
    assert [s["value"] for s in steps[1:]] == [float(v) for v in aqi.BREAKPOINTS["pm25"][1:len(aqi.BANDS)]]


def test_interpolation_like_grafana():
    q = 'SELECT x FROM t WHERE "c" =~ /^$commune$/ AND "s" =~ /^$station$/ AND $timeFilter GROUP BY time($__interval)'
    out = interpolate(q, {"commune": ["tan-thuan-dong"], "station": ["a.1", "b"]},
                      {"station": True}, TimeRange("24h"), max_data_points=800)
    assert out == ('SELECT x FROM t WHERE "c" =~ /^tan-thuan-dong$/ AND "s" =~ /^(a\\.1|b)$/ '
                   "AND time >= now() - 24h GROUP BY time(2m)")
    absolute = interpolate("$timeFilter ${__interval}", {}, {}, TimeRange(None, 1_000, 3_601_000), 1000)
    assert absolute == "time >= 1000ms and time <= 3601000ms 5s"
    assert interpolate("time($__interval)", {}, {}, TimeRange("7d"), 800, min_interval="1d") == "time(1d)"


def test_a_new_commune_gets_dashboards_without_hand_editing(tmp_path: Path):
    (tmp_path / "my-loc.yaml").write_text(textwrap.dedent("""\
        commune: my-loc
        name_vi: "Xã Mỹ Lộc"
        name_en: "My Loc commune"
        gateways: [{id: gw-1, name_vi: "Cổng UBND"}]
        stations:
          - {id: ao-1, kind: pond, name_vi: "Ao 1", lat: 10.1, lon: 105.1, gateway: gw-1,
             metrics: [do, ph], params: {do_min: 3.5}}
          - {id: song-1, kind: river, name_vi: "Sông 1", lat: 10.2, lon: 105.2, gateway: gw-1,
             metrics: [level], params: {gauge: tan-chau}}
        """), encoding="utf-8")
    site = load_site(tmp_path / "my-loc.yaml")
    built = build_all({"my-loc": site}, langs=("vi",))
    assert {b.board for b in built} == {"overview", "water", "flood", "devices"}  # no air, no waste points
    pond = _panel(next(b.dashboard for b in built if b.board == "water"), "Ao 1 — Oxy hòa tan (DO)")
    assert 3.5 in {s["value"] for s in pond["fieldConfig"]["defaults"]["thresholds"]["steps"]}  # the pond's own do_min
    assert {f["folderUid"] for f in provisioning.providers({"my-loc": site})["providers"]} == \
        {"vw-my-loc-folder", "vw-my-loc-folder-en"}
    assert json.loads(to_json(built[0].dashboard)) == built[0].dashboard
