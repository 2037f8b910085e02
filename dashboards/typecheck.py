"""Type-check generated dashboards against Grafana's own published types (`@grafana/schema` on npm).

No Grafana server can run here; this is the strongest proof available that Grafana's types accept what
we generate. Each dashboard becomes one TypeScript file in which the dashboard is typed as
`Dashboard` and every panel as `Panel<Options, FieldConfig>` of its panel type, one named constant
per panel, so a tsc error names the dashboard file and the panel (``panel_<id>_<title>``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "typecheck"
RAW = "./node_modules/@grafana/schema/dist/types/raw/composable"
# panel type -> module with its Options / FieldConfig interfaces
PANEL_TYPES = {
    "timeseries": "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
    "stat": "stat/panelcfg/x/StatPanelCfg_types.gen",
    "table": "table/panelcfg/x/TablePanelCfg_types.gen",
    "bargauge": "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
    "geomap": "geomap/panelcfg/x/GeomapPanelCfg_types.gen",
}
# The InfluxDB plugin's own fields, named one by one so that a misspelt schema key still fails
INFLUX_QUERY_KEYS = ("query", "rawQuery", "resultFormat", "textColumn", "tagsColumn", "titleColumn")
INFLUX_ANNOTATION_KEYS = ("query", "textColumn", "tagsColumn", "titleColumn")
HAS_FIELD_CONFIG = {"timeseries", "table"}
# A dashboard is JSON: Grafana's TypeScript enums (ThresholdsMode, GraphDrawStyle…) are nominal, so
# their string values are accepted through a template literal (`${Enum}` is the union of its values).
JSON_OF = """type JsonOf<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<JsonOf<U>> : T extends object ? { [K in keyof T]: JsonOf<T[K]> } : T;
// @grafana/schema's Panel<TOptions> does not use TOptions (options stay Record<string, unknown>): type them
type TypedPanel<O, F> = Omit<Panel<Record<string, unknown>, F>, "options"> & { options?: O };"""
TSCONFIG = {"compilerOptions": {"strict": True, "noEmit": True, "module": "esnext", "target": "es2022",
                                "moduleResolution": "bundler", "skipLibCheck": True, "types": []},
            "include": ["generated/*.ts"]}


def _ident(text: str) -> str:
    return re.sub(r"\W", "_", text.encode("ascii", "ignore").decode())[:40] or "x"


def _without_datasource_extensions(rest: dict) -> dict:
    """The schema types an annotation's target and a variable as the datasource-neutral part only;
    InfluxDB's own fields (an annotation target's ``query``, a variable's ``definition``, the query
    editor's display text) are the datasource plugin's extension, not checked by these types."""
    rest = json.loads(json.dumps(rest))
    for ann in rest.get("annotations", {}).get("list", []):
        if isinstance(ann.get("target"), dict):
            for key in INFLUX_QUERY_KEYS:
                ann["target"].pop(key, None)
        for key in INFLUX_ANNOTATION_KEYS:
            ann.pop(key, None)
    for var in rest.get("templating", {}).get("list", []):
        var.pop("definition", None)
    return rest


def dashboard_to_ts(name: str, board: dict) -> str:
    """TypeScript source typing ``board`` (a dashboard JSON model) against @grafana/schema."""
    lines = ['import type { Dashboard, Panel, RowPanel } from "@grafana/schema";', JSON_OF]
    for kind, module in PANEL_TYPES.items():
        field = f", FieldConfig as {kind}Field" if kind in HAS_FIELD_CONFIG else ""
        lines.append(f'import type {{ Options as {kind}Options{field} }} from "../{RAW}/{module}";')
    refs = []
    for panel in board.get("panels", []):
        kind = panel.get("type", "")
        const = f"panel_{panel.get('id', 'noid')}_{_ident(str(panel.get('title', '')))}"
        if kind == "row":
            typ = "RowPanel"
        elif kind in PANEL_TYPES:
            field = f"{kind}Field" if kind in HAS_FIELD_CONFIG else "Record<string, unknown>"
            typ = f"TypedPanel<{kind}Options, {field}>"
        else:
            typ = "Panel"
        lines.append(f"export const {const}: JsonOf<{typ}> = {json.dumps(panel, ensure_ascii=False, indent=1)};")
        refs.append(const)
    rest = _without_datasource_extensions({k: v for k, v in board.items() if k != "panels"})
    lines.append(f"export const dashboard_{_ident(name)}: JsonOf<Omit<Dashboard, 'panels'>> = "
                 f"{json.dumps(rest, ensure_ascii=False, indent=1)};")
    return "\n".join(lines) + "\n"


def typecheck(boards: dict[str, dict], folder: Path = FOLDER) -> tuple[bool, str]:
    """Write one .ts per dashboard under ``folder/generated`` and run tsc; (ok, tsc output)."""
    tsc = folder / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        raise FileNotFoundError(f"{tsc} is missing: run `npm ci` in {folder} (scripts/bootstrap.sh does)")
    out = folder / "generated"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.ts"):
        old.unlink()
    for name, board in boards.items():
        (out / f"{_ident(name)}.ts").write_text(dashboard_to_ts(name, board), encoding="utf-8")
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2), encoding="utf-8")
    proc = subprocess.run([str(tsc), "-p", str(folder / "tsconfig.json")], capture_output=True, text=True,
                          cwd=folder, timeout=300)
    return proc.returncode == 0, name_the_panels(proc.stdout + proc.stderr, out)


_ERROR = re.compile(r"^generated/(?P<file>[^(]+)\.ts\((?P<line>\d+),\d+\): (?P<msg>.*)$", re.M)


def name_the_panels(output: str, out: Path) -> str:
    """Prefix each tsc error with the dashboard and the panel (the constant it stands in)."""
    named = []
    for m in _ERROR.finditer(output):
        lines = (out / f"{m['file']}.ts").read_text(encoding="utf-8").splitlines()[: int(m["line"])]
        owner = next((ln.split()[2].rstrip(":") for ln in reversed(lines) if ln.startswith("export const ")), "?")
        named.append(f"dashboard {m['file']}, {owner.replace('_', ' ', 2) if owner.startswith('panel_') else owner}: "
                     f"{m['msg']}")
    return "\n".join(named) or output
