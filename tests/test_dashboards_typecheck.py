"""Generated dashboards type-check against Grafana's own published types (@grafana/schema + tsc).

No Grafana server can run here (see docs/dashboards.md); tsc over Grafana's published TypeScript
types is the strongest proof available that Grafana accepts what dashboards/generator.py writes.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from dashboards.typecheck import FOLDER, typecheck

GENERATED = Path(__file__).resolve().parent.parent / "dashboards" / "generated"


def boards() -> dict[str, dict]:
    return {f"{p.parent.parent.name}-{p.stem}": json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(GENERATED.glob("*/*/*.json"))}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if not (FOLDER / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail(f"npm packages missing in {FOLDER}: run `bash scripts/bootstrap.sh setup`")
    work = tmp_path / "typecheck"
    work.mkdir()
    (work / "node_modules").symlink_to(FOLDER / "node_modules")
    shutil.copy(FOLDER / "package.json", work)
    return work


def test_every_generated_dashboard_type_checks_against_grafana_schema(folder):
    all_boards = boards()
    assert len(all_boards) == 12
    ok, output = typecheck(all_boards, folder)
    assert ok, output


def test_a_wrong_panel_option_fails_and_names_the_dashboard_and_panel(folder):
    board = copy.deepcopy(boards()["en-overview"])
    victim, stat = [p for p in board["panels"] if p.get("type") == "stat"][:2]
    victim["options"]["colourMode"] = "value"  # misspelt option key
    stat["gridPos"]["w"] = "wide"  # not a number
    ok, output = typecheck({"broken-overview": board}, folder)
    assert not ok
    assert f"dashboard broken_overview, panel {victim['id']}" in output, output
    assert f"dashboard broken_overview, panel {stat['id']}" in output, output
    assert "colourMode" in output and "not assignable to type 'number'" in output, output
