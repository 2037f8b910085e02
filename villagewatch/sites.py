"""Communes as data: ``sites/*.yaml`` loaded and validated through one schema.

Every service (edge, ingest, alerts, dashboards, reports) reads sites through this module.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from villagewatch import contract
from villagewatch.schema import (
    Any_,
    Bool,
    ConfigError,
    Ctx,
    Key,
    ListOf,
    Map,
    Num,
    OneOf,
    Str,
    load_yaml,
)

# Station kinds. Each kind has a simulator model and dashboard/rule defaults.
STATION_KINDS = {
    "water_supply": ("Trạm cấp nước sinh hoạt", "Rural water-supply plant"),
    "river": ("Sông, kênh rạch", "River or canal"),
    "pond": ("Ao nuôi thủy sản", "Aquaculture pond"),
    "air": ("Chất lượng không khí", "Air quality"),
    "weather": ("Thời tiết", "Weather"),
    "waste": ("Điểm tập kết rác", "Waste collection point"),
    "flood_gauge": ("Trạm đo mực nước", "River level gauge"),
}

# Kinds whose stations are private by default (a farmer's pond is not open data); every other
# kind is an environment station, shown to residents unless the site file says `public: false`.
PRIVATE_KINDS = frozenset({"pond"})


def default_public(kind: str) -> bool:
    return kind not in PRIVATE_KINDS


_ID = Str(contract.ID_PATTERN, "id ([a-z0-9][a-z0-9_-]*, at most 64 characters)")


def _metric_name(value: Any, ctx: Ctx) -> str:
    if value not in contract.METRICS:
        near = difflib.get_close_matches(str(value), list(contract.METRICS), n=1, cutoff=0.5)
        hint = f"did you mean {near[0]!r}?" if near else "see docs/protocol.md for the metric registry"
        raise ctx.error(f"unknown metric {value!r}", hint)
    return str(value)


_SOURCE = Map([Key("type", Str(what="source type"))], extra=Any_(), name="source")

_STATION = Map([
    Key("id", _ID),
    Key("kind", OneOf(*STATION_KINDS)),
    Key("name_vi", Str(what="Vietnamese name")),
    Key("name_en", Str(what="English name"), required=False, default=""),
    Key("lat", Num(-90, 90)),
    Key("lon", Num(-180, 180)),
    Key("gateway", _ID),
    Key("interval_s", Num(1, 86_400), required=False, default=60),
    Key("metrics", ListOf(_metric_name, min_len=1)),
    Key("source", _SOURCE, required=False, default=lambda: {"type": "simulated"}),
    Key("params", Map([], extra=Any_(), name="params"), required=False, default=dict,
        doc="per-station parameters for rules and simulation"),
    Key("public", Bool(), required=False,
        doc="shown to residents on the portal (default: true, false for ponds)"),
], name="station")

_GATEWAY = Map([
    Key("id", _ID),
    Key("name_vi", Str(what="Vietnamese name")),
    Key("lat", Num(-90, 90), required=False),
    Key("lon", Num(-180, 180), required=False),
    Key("params", Map([], extra=Any_(), name="params"), required=False, default=dict),
], name="gateway")

SITE_SCHEMA = Map([
    Key("commune", _ID, doc="commune id used in topics"),
    Key("name_vi", Str(what="Vietnamese name")),
    Key("name_en", Str(what="English name"), required=False, default=""),
    Key("province", Str(), required=False, default=""),
    Key("timezone", Str(), required=False, default="Asia/Ho_Chi_Minh"),
    Key("center", Map([Key("lat", Num(-90, 90)), Key("lon", Num(-180, 180))]), required=False),
    Key("outline", ListOf(Map([Key("lat", Num(-90, 90)), Key("lon", Num(-180, 180))], name="point"), min_len=3),
        required=False, doc="commune boundary as a polygon of lat/lon points (drawn on the portal's map)"),
    Key("gateways", ListOf(_GATEWAY, min_len=1)),
    Key("stations", ListOf(_STATION, min_len=1)),
    Key("notes", Str(), required=False, default=""),
], name="site")


@dataclass(frozen=True)
class Station:
    commune: str
    id: str
    kind: str
    name_vi: str
    name_en: str
    lat: float
    lon: float
    gateway: str
    interval_s: float
    metrics: tuple[str, ...]
    source: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    public: bool = True

    def name(self, lang: str = "vi") -> str:
        return self.name_vi if lang == "vi" or not self.name_en else self.name_en


@dataclass(frozen=True)
class Gateway:
    commune: str
    id: str
    name_vi: str
    lat: float | None = None
    lon: float | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Site:
    commune: str
    name_vi: str
    name_en: str
    province: str
    timezone: str
    gateways: dict[str, Gateway]
    stations: dict[str, Station]
    path: str = ""
    center: tuple[float, float] | None = None
    outline: tuple[tuple[float, float], ...] = ()

    def stations_of(self, gateway: str) -> list[Station]:
        return [s for s in self.stations.values() if s.gateway == gateway]

    def gateway(self, gateway_id: str) -> Gateway:
        if gateway_id not in self.gateways:
            near = difflib.get_close_matches(gateway_id, list(self.gateways), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"gateways: {', '.join(self.gateways)}"
            raise ConfigError(f"no gateway {gateway_id!r} in commune {self.commune!r}", file=self.path, hint=hint)
        return self.gateways[gateway_id]


def load_site(path: str | Path) -> Site:
    path = Path(path)
    raw = load_yaml(path)
    data = SITE_SCHEMA(raw, Ctx(str(path), "", getattr(raw, "start_line", 1)))
    commune = data["commune"]
    gateways: dict[str, Gateway] = {}
    for i, g in enumerate(data["gateways"]):
        if g["id"] in gateways:
            raise _item_error(path, raw, "gateways", i, "id", f"duplicate gateway id {g['id']!r}")
        gateways[g["id"]] = Gateway(commune, g["id"], g["name_vi"], g.get("lat"), g.get("lon"), g["params"])
    stations: dict[str, Station] = {}
    for i, s in enumerate(data["stations"]):
        if s["id"] in stations:
            raise _item_error(path, raw, "stations", i, "id", f"duplicate station id {s['id']!r}")
        if s["gateway"] not in gateways:
            near = difflib.get_close_matches(s["gateway"], list(gateways), n=1)
            raise _item_error(path, raw, "stations", i, "gateway",
                              f"gateway {s['gateway']!r} is not declared under gateways",
                              f"did you mean {near[0]!r}?" if near else None)
        stations[s["id"]] = Station(
            commune, s["id"], s["kind"], s["name_vi"], s["name_en"], float(s["lat"]), float(s["lon"]),
            s["gateway"], float(s["interval_s"]), tuple(s["metrics"]), s["source"], s["params"],
            s["public"] if s.get("public") is not None else default_public(s["kind"]))
    center = (data["center"]["lat"], data["center"]["lon"]) if data.get("center") else None
    outline = tuple((float(pt["lat"]), float(pt["lon"])) for pt in data.get("outline") or ())
    return Site(commune, data["name_vi"], data["name_en"], data["province"], data["timezone"],
                gateways, stations, str(path), center, outline)


def _item_error(path: Path, raw: Any, section: str, index: int, key: str, message: str,
                hint: str | None = None) -> ConfigError:
    line = None
    try:
        line = raw[section][index].lines.get(key)
    except (AttributeError, KeyError, IndexError, TypeError):
        pass
    return ConfigError(message, file=str(path), line=line, path=f"{section}[{index}].{key}", hint=hint)


def load_sites(folder: str | Path) -> dict[str, Site]:
    """All ``*.yaml`` files of a folder, keyed by commune id. A commune declared twice is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("sites folder not found", file=str(folder))
    sites: dict[str, Site] = {}
    for path in sorted(folder.glob("*.y*ml")):
        site = load_site(path)
        if site.commune in sites:
            raise ConfigError(f"commune {site.commune!r} is also declared in {sites[site.commune].path}",
                              file=str(path))
        sites[site.commune] = site
    return sites


class SiteIndex:
    """Fast (commune, station) → Station lookup for services that tag data by station kind."""

    def __init__(self, sites: dict[str, Site] | None = None):
        self.sites = sites or {}
        self._by_key = {(s.commune, s.id): s for site in self.sites.values() for s in site.stations.values()}

    def station(self, commune: str, station: str) -> Station | None:
        return self._by_key.get((commune, station))

    def kind(self, commune: str, station: str) -> str | None:
        s = self._by_key.get((commune, station))
        return s.kind if s else None

    def stations_of_gateway(self, commune: str, gateway: str) -> list[Station]:
        return [s for (c, _), s in self._by_key.items() if c == commune and s.gateway == gateway]

    def all_stations(self) -> list[Station]:
        return list(self._by_key.values())


DEFAULT_SITES_DIR = Path(__file__).resolve().parent.parent / "sites"
