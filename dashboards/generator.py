"""Build every dashboard of every commune, in Vietnamese and English, and write them as JSON.

``villagewatch dashboards build`` runs ``write_all``: sites/*.yaml + rules/packs →
``dashboards/generated/<lang>/<commune>/<board>.json`` and the provisioning files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards import grafana as g
from dashboards import queries as Q
from dashboards.boards import BOARDS
from dashboards.context import BoardContext
from dashboards.limits import Limits
from dashboards.texts import LANGS
from villagewatch.sites import Site

PACKAGE_DIR = Path(__file__).resolve().parent
GENERATED_DIR = PACKAGE_DIR / "generated"


@dataclass
class Built:
    commune: str
    lang: str
    board: str
    dashboard: dict[str, Any]

    @property
    def relpath(self) -> Path:
        return Path(self.lang) / self.commune / f"{self.board}.json"


def build_commune(site: Site, limits: Limits, lang: str) -> list[Built]:
    c = BoardContext(site, limits, lang)
    out = []
    for key, builder in BOARDS.items():
        panels, stations = builder(c)
        if not panels:
            continue  # e.g. a commune without waste points gets no waste dashboard
        annotations = [g.influx_annotation(c.t("annotation_alerts"), Q.alert_annotations(lang),
                                           text_column="text", tags_columns="rule,severity,state")]
        links = [{"type": "dashboards", "tags": [f"commune:{site.commune}", f"lang:{lang}"], "asDropdown": False,
                  "title": c.commune_name(), "includeVars": True, "keepTime": True,
                  # required by @grafana/schema's DashboardLink (dashboards/typecheck.py)
                  "icon": "external link", "targetBlank": False, "tooltip": ""}]
        dash = g.dashboard(c.uid(key), c.title(key), panels, variables=c.variables(stations),
                           annotations=annotations, links=links,
                           tags=["villagewatch", f"commune:{site.commune}", f"lang:{lang}", key],
                           time_from="now-7d" if key in ("water", "air", "flood") else "now-24h")
        out.append(Built(site.commune, lang, key, dash))
    return out


def build_all(sites: dict[str, Site], limits: Limits | None = None,
              langs: Iterable[str] = LANGS) -> list[Built]:
    limits = limits or Limits()
    return [b for site in sites.values() for lang in langs for b in build_commune(site, limits, lang)]


def to_json(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def write_all(built: list[Built], out_dir: Path = GENERATED_DIR) -> tuple[list[Path], list[Path]]:
    """Write the JSON files; stale ones (a commune or board that no longer exists) are removed.
    Returns (changed files, removed files)."""
    changed: list[Path] = []
    wanted = set()
    for b in built:
        path = out_dir / b.relpath
        wanted.add(path)
        text = to_json(b.dashboard)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    removed = [p for p in out_dir.glob("*/*/*.json") if p not in wanted]
    for p in removed:
        p.unlink()
    return changed, removed


def load_generated(out_dir: Path = GENERATED_DIR) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(out_dir.glob("*/*/*.json"))]
