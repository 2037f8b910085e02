"""Rule packs: loaded from YAML, validated with file:line errors, applied per station params."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from rules.rulepack import DEFAULT_FOLDER, load_rule_packs
from villagewatch.schema import ConfigError
from villagewatch.sites import load_site

SITE = Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml"


@pytest.fixture(scope="module")
def ruleset():
    return load_rule_packs()


@pytest.fixture(scope="module")
def site():
    return load_site(SITE)


def _by_id(rules):
    return {r.id: r for r in rules}


def test_every_rule_cites_regulation_table_column_averaging(ruleset):
    assert {p.id for p in ruleset.packs} >= {
        "qcvn08-2023", "qcvn01-1-2018", "qcvn05-2023", "vn-aqi-1459", "qcvn26-2010",
        "flood-05-2020", "pond-operational", "waste-bins", "device-health"}
    for t in ruleset.templates:
        assert t.pack.regulation and t.data["table"] and t.data["column"] and t.data["averaging"], t.data["id"]


def test_river_class_from_station_params(ruleset, site):
    b = _by_id(ruleset.rules_for(site.stations["song-tien-ben-do"]))
    assert b["qcvn08-t2-do"].limit == 5.0 and b["qcvn08-t2-do"].op == "below"
    assert b["qcvn08-t2-do"].column.startswith("Mức B")
    assert b["qcvn08-t2-do"].unverified and "bảng 2" in b["qcvn08-t2-do"].unverified_note
    assert b["qcvn08-t1-nh4"].limit == 0.3 and not b["qcvn08-t1-nh4"].unverified
    c = _by_id(ruleset.rules_for(site.stations["kenh-xang-lang"]))
    assert c["qcvn08-t2-do"].limit == 4.0
    # class D has no further bound in Table 2: only Table 1 remains
    d = _by_id(ruleset.rules_for(replace(site.stations["kenh-xang-lang"], params={"qcvn08_class": "D"})))
    assert "qcvn08-t2-do" not in d and "qcvn08-t1-nh4" in d


def test_regulation_choice_and_general_packs(ruleset, site):
    water = _by_id(ruleset.rules_for(site.stations["nmn-tan-thuan"]))
    assert water["qcvn01-chlorine"].lo == 0.2 and water["qcvn01-chlorine"].hi == 1.0
    assert "health-silent" in water  # device health applies whatever the regulation
    assert not any(r.startswith("qcvn08") for r in water)
    assert not any(r.id.startswith("qcvn01") for r in ruleset.rules_for(replace(
        site.stations["nmn-tan-thuan"], params={"regulation": "qcvn08"})))


def test_pond_params_override_defaults(ruleset, site):
    pond = site.stations["ao-ca-tra-a3"]
    rules = _by_id(ruleset.rules_for(replace(pond, params={**pond.params, "do_min": 2.5, "ph_max": 9.0})))
    assert rules["pond-do-low"].limit == 2.5
    assert (rules["pond-ph"].lo, rules["pond-ph"].hi) == (6.5, 9.0)
    assert "(không phải QCVN)" in rules["pond-do-low"].regulation


def test_noise_day_night_local_time(ruleset, site):
    rules = _by_id(ruleset.rules_for(site.stations["khi-truong-thcs"]))
    day, night = rules["qcvn26-day"], rules["qcvn26-night"]
    assert (day.limit, night.limit) == (55, 45)  # special area (school)
    assert day.mean == "energy" and day.window_s == 3600
    # 2024-05-01 14:30 UTC = 21:30 in Hồ Chí Minh city: night
    ts = int(dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert night.active_at(ts) and not day.active_at(ts)
    ts = int(dt.datetime(2024, 5, 1, 0, 30, tzinfo=dt.UTC).timestamp() * 1000)  # 07:30 local
    assert day.active_at(ts) and not night.active_at(ts)


def test_pm25_limit_changes_on_2026_01_01(ruleset, site):
    st = site.stations["khi-dong-ruong-ap3"]
    before = int(dt.datetime(2025, 12, 31, 12, tzinfo=dt.UTC).timestamp() * 1000)
    after = int(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)
    pm = [r for r in ruleset.rules_for(st, at_ms=before) if r.metric == "pm25" and r.kind == "mean"]
    assert [(r.limit, r.window_s) for r in pm] == [(50, 86400)]
    pm = [r for r in ruleset.rules_for(st, at_ms=after) if r.metric == "pm25" and r.kind == "mean"]
    assert [r.limit for r in pm] == [45]
    annual = [r for r in ruleset.rules_for(st, include_report_only=True) if r.report_only]
    assert {(r.metric, r.limit) for r in annual} == {("pm25", 25), ("pm10", 50)}


def test_flood_levels_per_gauge(ruleset, site):
    gauge = site.stations["muc-nuoc-song-tien"]
    rules = _by_id(ruleset.rules_for(gauge))
    assert [rules[f"flood-level-{i}"].limit for i in (1, 2, 3)] == [1.9, 2.1, 2.3]
    assert not rules["flood-level-2"].unverified
    tan_chau = _by_id(ruleset.rules_for(replace(gauge, params={"gauge": "tan-chau"})))
    assert tan_chau["flood-level-2"].limit == 4.0 and tan_chau["flood-level-2"].unverified
    with pytest.raises(ConfigError, match="has no limits") as exc:
        ruleset.rules_for(replace(gauge, params={"gauge": "my-thuan"}))
    assert "cao-lanh" in str(exc.value)


def test_bad_pack_names_file_line_and_hint(tmp_path):
    folder = tmp_path / "packs"
    shutil.copytree(DEFAULT_FOLDER, folder)
    path = folder / "waste-bins.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    severity: critical\n", "    severty: critical\n", 1),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_rule_packs(folder)
    err = exc.value
    assert err.file == str(path) and err.line is not None and "severity" in (err.hint or "") + str(err)
    assert path.read_text(encoding="utf-8").splitlines()[err.line - 1].strip().startswith("severty")

    path.write_text(path.read_text(encoding="utf-8").replace("severty", "severity").replace(
        "metric: fill\n", "metric: fil\n", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown metric 'fil'") as exc:
        load_rule_packs(folder)
    assert "fill" in exc.value.hint


def test_variant_names_reach_readers_and_unknown_choices_are_errors(ruleset, site, tmp_path):
    gauge = _by_id(ruleset.rules_for(site.stations["muc-nuoc-song-tien"]))["flood-level-1"]
    assert gauge.column == "Báo động I, trạm Cao Lãnh / alarm level I, Cao Lanh gauge"
    assert gauge.op == "at_or_above"  # alarm levels are reached at the level
    folder = tmp_path / "packs"
    shutil.copytree(DEFAULT_FOLDER, folder)
    path = folder / "flood-05-2020.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    chau-doc: \"Châu Đốc", "    chau-dok: \"Châu Đốc"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="chau-dok") as exc:
        load_rule_packs(folder)
    assert exc.value.file == str(path) and "chau-doc" in (exc.value.hint or "")
