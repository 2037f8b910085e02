"""The simulated source: a polled source whose "sensor" is the signal model of model.py."""

from __future__ import annotations

from typing import Any, ClassVar

from edge.sources.base import Bound, PolledSource, SourceError
from edge.sources.simulated import model
from villagewatch.schema import Key, Map, Num


class SimulatedSource(PolledSource):
    type_name: ClassVar[str] = "simulated"
    options_schema: ClassVar[Map] = Map([
        Key("seed", Num(0, 2**31, integer=True), required=False, default=0,
            doc="same seed, same values as `villagewatch` backfills of this station"),
    ], name="simulated source options")

    @classmethod
    def bus_key(cls, options: dict[str, Any]) -> str:
        return ""  # all simulated stations of a gateway share one scheduler

    async def poll(self, b: Bound, now_ms: int) -> dict[str, float]:
        if self.ctx.site is None:
            raise SourceError("config", "the simulated source needs the site")
        reading = model.reading_at(self.ctx.site, b.station.id, now_ms, b.options["seed"] or self.ctx.seed)
        return reading.metrics
