"""What every board builder needs: the commune, its limits, the language, and shared pieces."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dashboards import grafana as g
from dashboards.limits import Limits
from dashboards.texts import t
from rules.labels import pick_lang, with_variant
from rules.messages import SEVERITY_LABELS, STATE_LABELS
from rules.rulepack import Rule
from villagewatch import contract
from villagewatch.sites import STATION_KINDS, Gateway, Site, Station

# Grafana units for the registry's units; anything else is shown as a suffix.
UNITS = {"°C": "celsius", "%": "percent", "m": "lengthm", "mm": "lengthmm", "V": "volt",
         "dBm": "dBm", "m/s": "velocityms", "": "none"}


def unit_of(metric: str) -> str:
    unit = contract.METRICS[metric].unit
    return UNITS.get(unit, f"suffix: {unit}")


def board_uid(commune: str, board: str, lang: str) -> str:
    """Stable uid (Grafana allows 40 characters): a second push overwrites instead of duplicating."""
    uid = f"vw-{commune}-{board}" + ("" if lang == "vi" else f"-{lang}")
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha1(commune.encode()).hexdigest()[:8]
    return f"vw-{commune[:40 - len(board) - len(digest) - 9]}-{digest}-{board}" + ("" if lang == "vi" else "-en")


def folder_uid(commune: str, lang: str) -> str:
    return board_uid(commune, "folder", lang)


@dataclass
class BoardContext:
    site: Site
    limits: Limits
    lang: str

    def t(self, key: str) -> str:
        return t(key, self.lang)

    def stations(self, *kinds: str) -> list[Station]:
        return [s for s in self.site.stations.values() if s.kind in kinds]

    def with_metric(self, metric: str, stations: Iterable[Station] | None = None) -> list[Station]:
        return [s for s in (stations if stations is not None else self.site.stations.values())
                if metric in s.metrics]

    def name(self, station: Station) -> str:
        return station.name(self.lang)

    def metric_label(self, metric: str) -> str:
        label = contract.METRICS[metric].label(self.lang)
        # Vietnamese regulations write the particle size with a decimal comma (QCVN 05:2023: "PM2,5")
        return label.replace("PM2.5", "PM2,5") if self.lang == "vi" else label

    def gateway_name(self, gateway: Gateway) -> str:
        # a site file names gateways in Vietnamese only (no name_en): a proper name on both boards
        return gateway.name_vi

    def severity_mappings(self) -> list[dict[str, Any]]:
        """The alert severity tag (info/warning/critical) in the reader's words and colours."""
        colors = {"info": g.YELLOW, "warning": g.ORANGE, "critical": g.RED}
        return [{"type": "value", "options": {sev: {"text": vi if self.lang == "vi" else en,
                                                    "color": colors[sev], "index": i}}}
                for i, (sev, (vi, en)) in enumerate(SEVERITY_LABELS.items())]

    def state_mappings(self) -> list[dict[str, Any]]:
        """The alert state tag (pending/firing/acknowledged/resolved) in the reader's words."""
        return [{"type": "value", "options": {state: {"text": vi if self.lang == "vi" else en, "index": i}}}
                for i, (state, (vi, en)) in enumerate(STATE_LABELS.items())]

    def rule_label(self, rule: Rule) -> str:
        """A rule as a reader names it: "Oxy hòa tan (DO): Mức B (QCVN 08:2023/BTNMT)"."""
        regulation = pick_lang(rule.regulation, self.lang)
        if rule.kind in ("stale", "gateway_offline"):
            return f"{self.t('rule_' + rule.kind)} ({regulation})"
        metric = self.metric_label(rule.metric) if rule.metric in contract.METRICS else ""
        detail = self.t("rule_flatline") if rule.kind == "flatline" else with_variant(rule.column, rule.variant, self.lang)
        head = ": ".join(x for x in (metric, detail) if x and x != "—")
        return f"{head} ({regulation})" if head else regulation

    def rule_mappings(self) -> list[dict[str, Any]]:
        """Rule ids (the alerts' rule tag) shown as rule names, for every rule of this commune."""
        rules: dict[str, Rule] = {}
        for s in self.site.stations.values():
            for r in self.limits.rules.rules_for(s, include_report_only=True):
                rules.setdefault(r.id, r)
        for r in self.limits.rules.gateway_rules():
            rules.setdefault(r.id, r)
        return [{"type": "value", "options": {rid: {"text": self.rule_label(r), "index": i}}}
                for i, (rid, r) in enumerate(sorted(rules.items()))]

    def kind_label(self, kind: str) -> str:
        vi, en = STATION_KINDS[kind]
        return vi if self.lang == "vi" else en

    def commune_name(self) -> str:
        return self.site.name_vi if self.lang == "vi" or not self.site.name_en else self.site.name_en

    def station_names(self, stations: Iterable[Station], column: str = "station") -> list[dict[str, Any]]:
        """Overrides that show station names instead of ids: in series names (alias $tag_station)
        and in a table's station column."""
        stations = list(stations)
        series = [{"matcher": {"id": "byName", "options": s.id},
                   "properties": [{"id": "displayName", "value": self.name(s)}]} for s in stations]
        table = {"matcher": {"id": "byName", "options": column},
                 "properties": [{"id": "displayName", "value": self.t("col_station")},
                                {"id": "mappings", "value": [{"type": "value", "options": {
                                    s.id: {"text": self.name(s), "index": i} for i, s in enumerate(stations)}}]}]}
        return [*series, table]

    def variables(self, stations: Iterable[Station]) -> list[dict[str, Any]]:
        """Commune and station pickers listing names (the site file's), matching ids."""
        chosen = list(stations) or list(self.site.stations.values())
        return [
            g.custom_variable("commune", self.t("var_commune"), [(self.commune_name(), self.site.commune)],
                              multi=False, include_all=False, current=self.site.commune),
            g.custom_variable("station", self.t("var_station"), [(self.name(s), s.id) for s in chosen],
                              multi=True, include_all=True, all_text=self.t("all")),
        ]

    def uid(self, board: str) -> str:
        return board_uid(self.site.commune, board, self.lang)

    def title(self, board: str) -> str:
        return f"{self.commune_name()} — {self.t(board)}"
