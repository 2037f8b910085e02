"""Realistic, seedable signal models for the pilot village's station kinds.

Every value is a pure function of (seed, station, metric, time): the live simulator and a backfill
of past data agree point for point, and a month of readings is generated in well under a second per
station with numpy. Randomness comes from a counter-based hash (splitmix64) of the time slot, not
from a stateful RNG, which is what makes that possible.

Models (local time is Asia/Ho_Chi_Minh, UTC+7, no daylight saving):
- pond: dissolved oxygen follows photosynthesis — peak mid-afternoon, lowest just before dawn;
  on overcast days (hashed per day) the pre-dawn low falls under 2 mg/L; high-stocking ponds run lower.
- river: Tiền river quality with flood-season turbidity/TSS, occasional ammonium pulses.
- flood_gauge: seasonal flood wave peaking mid-October plus a mixed semi-diurnal tide.
- air: diurnal PM2.5, harvest-season straw-burning evening episodes; PM10 tied to PM2.5.
- weather: rainy-season afternoon showers, wind, temperature/humidity.
- waste: bins fill faster by day, are emptied at 06:00 unless the collection is missed.
- water_supply: chlorine dosing drift with occasional dosing failures, turbidity events.
- faults (optional): single-sample spikes, flatline episodes, dropouts (no reading at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from villagewatch import contract
from villagewatch.influx import InfluxTarget, WriteError, write_sync
from villagewatch.lineproto import telemetry_line
from villagewatch.sites import Site, Station

TZ_OFFSET_S = 7 * 3600
DAY_S = 86_400.0

# --------------------------------------------------------------------------- counter-based noise

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def _key(*parts: object) -> int:
    """A stable 63-bit key from strings and numbers (Python's hash() is salted per process)."""
    h = 1469598103934665603
    for part in parts:
        for byte in str(part).encode():
            h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ 0xFF) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def uniform(key: int, counter: np.ndarray) -> np.ndarray:
    """U[0,1) for each counter value, deterministic in (key, counter)."""
    with np.errstate(over="ignore"):
        x = _mix(np.asarray(counter, dtype=np.int64).astype(np.uint64) * _GOLD + np.uint64(key))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def normal(key: int, counter: np.ndarray) -> np.ndarray:
    """Approximately standard normal (Box–Muller on two hashed uniforms)."""
    u1 = np.maximum(uniform(key, counter), 1e-12)
    u2 = uniform(key ^ 0x5DEECE66D, counter)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)


def smooth_noise(key: int, t: np.ndarray, period_s: float) -> np.ndarray:
    """Band-limited noise in [-1, 1]: cosine interpolation between hashed knots every period_s."""
    x = t / period_s
    i = np.floor(x).astype(np.int64)
    f = x - i
    a = uniform(key, i) * 2 - 1
    b = uniform(key, i + 1) * 2 - 1
    w = (1 - np.cos(np.pi * f)) / 2
    return a * (1 - w) + b * w


# --------------------------------------------------------------------------- time helpers


def local_hour(t: np.ndarray) -> np.ndarray:
    return ((t + TZ_OFFSET_S) % DAY_S) / 3600.0


def local_day(t: np.ndarray) -> np.ndarray:
    return np.floor((t + TZ_OFFSET_S) / DAY_S).astype(np.int64)


def day_of_year(t: np.ndarray) -> np.ndarray:
    # close enough for seasonal shapes (ignores leap days)
    return ((t + TZ_OFFSET_S) / DAY_S) % 365.2425


def diurnal(t: np.ndarray, peak_hour: float) -> np.ndarray:
    """Cosine in [-1, 1] peaking at peak_hour local time."""
    return np.cos(2 * np.pi * (local_hour(t) - peak_hour) / 24.0)


def season(t: np.ndarray, centre_doy: float, width_days: float) -> np.ndarray:
    d = (day_of_year(t) - centre_doy + 182.6) % 365.2425 - 182.6
    return np.exp(-((d / width_days) ** 2))


def rainy_season(t: np.ndarray) -> np.ndarray:
    """1 from June to October, 0 in the dry season (Mekong Delta), smooth between."""
    return season(t, 230, 75)


# --------------------------------------------------------------------------- models per kind

Signals = dict[str, np.ndarray]


@dataclass(frozen=True)
class Ctx:
    key: int
    station: Station

    def k(self, name: str) -> int:
        return _key(self.key, name)

    def noise(self, name: str, t: np.ndarray, sigma: float) -> np.ndarray:
        return sigma * normal(self.k(name), np.floor(t).astype(np.int64))

    def day_event(self, name: str, t: np.ndarray, probability: float) -> np.ndarray:
        return uniform(self.k(name), local_day(t)) < probability


def _battery(c: Ctx, t: np.ndarray) -> np.ndarray:
    # Li-ion node with a small solar panel: charges by day, sags at night.
    return 3.85 + 0.18 * np.clip(diurnal(t, 13), -0.6, 1) + c.noise("bat", t, 0.01)


def _rssi(c: Ctx, t: np.ndarray) -> np.ndarray:
    return -78 + 6 * smooth_noise(c.k("rssi"), t, 3 * 3600) + c.noise("rssi_n", t, 2.0)


def pond(c: Ctx, t: np.ndarray) -> Signals:
    p = c.station.params
    high = p.get("stocking") == "high"
    overcast = c.day_event("overcast", t - 12 * 3600, 0.18)  # yesterday's clouds → tonight's low
    amp = np.where(overcast, 3.4, 2.4) + (0.4 if high else 0.0)
    base = 5.6 - (0.6 if high else 0.0)
    do = base + amp * diurnal(t, 15.0) + 0.4 * smooth_noise(c.k("do_s"), t, 7200) + c.noise("do", t, 0.08)
    temp = 29.0 + 1.8 * diurnal(t, 15.5) + c.noise("temp", t, 0.05)
    ph = 7.3 + 0.45 * diurnal(t, 16.0) + c.noise("ph", t, 0.03)
    nh4 = 0.35 + 0.25 * (smooth_noise(c.k("nh4"), t, 2 * DAY_S) + 1) / 2 + (0.25 if high else 0) + c.noise("nh4n", t, 0.02)
    return {"do": do, "temp": temp, "ph": ph, "nh4": nh4, "battery": _battery(c, t), "rssi": _rssi(c, t)}


def river(c: Ctx, t: np.ndarray) -> Signals:
    flood = season(t, 280, 40)
    pulse = c.day_event("nh4_pulse", t, 0.08)
    return {
        "ph": 7.1 + 0.15 * diurnal(t, 15) + c.noise("ph", t, 0.04),
        "do": 5.6 + 0.6 * diurnal(t, 15) - 0.8 * flood + c.noise("do", t, 0.1),
        "temp": 28.5 + 1.2 * diurnal(t, 15) + c.noise("temp", t, 0.05),
        "turbidity": 35 + 90 * flood + 15 * smooth_noise(c.k("turb"), t, 6 * 3600) + c.noise("turb_n", t, 2),
        "ec": 240 + 60 * (1 - rainy_season(t)) + c.noise("ec", t, 4),
        "salinity": 0.12 + 0.1 * (1 - rainy_season(t)) + c.noise("sal", t, 0.005),
        "nh4": 0.18 + np.where(pulse, 0.35, 0.0) * (1 + smooth_noise(c.k("nh4"), t, 3 * 3600)) / 2
               + c.noise("nh4n", t, 0.015),
        "cod": 11 + 5 * flood + 3 * smooth_noise(c.k("cod"), t, DAY_S) + c.noise("codn", t, 0.5),
        "bod5": 4.5 + 2 * flood + 1.2 * smooth_noise(c.k("bod"), t, DAY_S) + c.noise("bodn", t, 0.2),
        "tss": 45 + 110 * flood + 20 * smooth_noise(c.k("tss"), t, 6 * 3600) + c.noise("tssn", t, 3),
    }


def flood_gauge(c: Ctx, t: np.ndarray) -> Signals:
    # Cao Lãnh: ~0.9 m in the dry season, flood crest mid-October around 2.0 m at mean tide; the tide
    # (M2 12.42 h + K1 23.93 h) adds ±0.35 m, so crests touch alarm levels I/II on high water.
    seasonal = 0.9 + 1.15 * season(t, 287, 38) + 0.1 * smooth_noise(c.k("lvl"), t, 5 * DAY_S)
    tide_amp = 0.35 - 0.15 * season(t, 287, 38)
    tide = tide_amp * (0.7 * np.sin(2 * np.pi * t / (12.42 * 3600)) + 0.3 * np.sin(2 * np.pi * t / (23.93 * 3600) + 1.1))
    return {"level": seasonal + tide + c.noise("lvln", t, 0.01), "battery": _battery(c, t)}


def air(c: Ctx, t: np.ndarray) -> Signals:
    p = c.station.params
    harvest = season(t, 70, 25) + season(t, 190, 20) + season(t, 315, 25)  # Mar, Jul, Nov harvests
    burning_p = (0.55 if p.get("straw_burning") else 0.25) * np.clip(harvest, 0, 1)
    burn_day = uniform(c.k("burn"), local_day(t)) < burning_p
    h = local_hour(t)
    evening = np.exp(-(((h - 19.5) / 2.2) ** 2))
    intensity = 90 + 160 * uniform(c.k("burn_i"), local_day(t))
    pm25 = (18 + 8 * diurnal(t, 7) + 6 * smooth_noise(c.k("pm"), t, 6 * 3600)
            + np.where(burn_day, intensity * evening, 0.0) + c.noise("pmn", t, 1.5))
    pm25 = np.maximum(pm25, 2.0)
    pm10 = pm25 * 1.55 + 6 + c.noise("pm10", t, 2)
    air_temp = 27.5 + 4.0 * diurnal(t, 14) + c.noise("at", t, 0.1)
    out = {"pm25": pm25, "pm10": pm10, "air_temp": air_temp,
           "humidity": np.clip(78 - 14 * diurnal(t, 14) + c.noise("rh", t, 1.0), 20, 100)}
    if "noise" in c.station.metrics:
        school = (h >= 6.5) & (h <= 17) & ((local_day(t) + 4) % 7 < 5)  # Monday–Friday
        night = (h >= 21) | (h < 6)
        out["noise"] = np.where(school, 62.0, np.where(night, 43.0, 55.0)) + c.noise("noise", t, 3.0)
    return out


def weather(c: Ctx, t: np.ndarray) -> Signals:
    h = local_hour(t)
    wet_day = uniform(c.k("wet"), local_day(t)) < 0.15 + 0.6 * rainy_season(t)
    shower = np.exp(-(((h - 16.0) / 1.5) ** 2)) * (0.5 + uniform(c.k("rain_i"), local_day(t)) * 3)
    interval_h = c.station.interval_s / 3600.0
    rain = np.where(wet_day, shower * 12 * interval_h, 0.0)  # mm per interval
    air_temp = 27.5 + 4.0 * diurnal(t, 14) - np.where(wet_day, 2 * shower, 0) + c.noise("at", t, 0.1)
    return {
        "air_temp": air_temp,
        "humidity": np.clip(78 - 14 * diurnal(t, 14) + np.where(wet_day, 10 * shower, 0) + c.noise("rh", t, 1), 20, 100),
        "rain": np.round(np.maximum(rain, 0), 1),
        "wind": np.maximum(0, 2.2 + 1.3 * diurnal(t, 15) + 1.0 * smooth_noise(c.k("wind"), t, 3600) + c.noise("wn", t, 0.3)),
    }


def waste(c: Ctx, t: np.ndarray) -> Signals:
    rate = float(c.station.params.get("fill_rate_per_h", 2.5))
    t_local = t + TZ_OFFSET_S
    collect_at = 6 * 3600.0
    day = np.floor((t_local - collect_at) / DAY_S).astype(np.int64)
    last = day.copy()
    # walk back over missed collections (15 % of days), at most 4 days
    for _ in range(4):
        missed = uniform(c.k("missed"), last) < 0.15
        last = np.where(missed, last - 1, last)
    hours = (t_local - (last * DAY_S + collect_at)) / 3600.0
    fill = np.clip(3 + rate * hours * (1 + 0.15 * smooth_noise(c.k("fill"), t, 4 * 3600)), 0, 100)
    fire = c.day_event("fire", t, 0.01) & (np.abs(local_hour(t) - 13.5) < 1.0)
    bin_temp = 30 + 5 * diurnal(t, 14) + np.where(fire, 40.0, 0.0) + c.noise("bt", t, 0.3)
    return {"fill": np.round(fill, 1), "bin_temp": bin_temp, "battery": _battery(c, t), "rssi": _rssi(c, t)}


def water_supply(c: Ctx, t: np.ndarray) -> Signals:
    failure = c.day_event("dosing_fail", t, 0.06) & (np.abs(local_hour(t) - 10) < 3)
    chlorine = 0.55 + 0.18 * smooth_noise(c.k("cl"), t, 2.5 * DAY_S) + 0.06 * smooth_noise(c.k("cl2"), t, 8 * 3600)
    chlorine = np.where(failure, 0.12, chlorine) + c.noise("cln", t, 0.01)
    turb_event = c.day_event("turb_event", t, 0.05) & (np.abs(local_hour(t) - 15) < 2)
    return {
        "chlorine": np.maximum(chlorine, 0.0),
        "turbidity": np.maximum(0.05, 0.6 + 0.25 * smooth_noise(c.k("tu"), t, DAY_S) + np.where(turb_event, 2.4, 0)
                                + c.noise("tun", t, 0.05)),
        "ph": 7.05 + 0.12 * smooth_noise(c.k("ph"), t, DAY_S) + c.noise("ph_n", t, 0.02),
        "temp": 28.3 + 0.8 * diurnal(t, 16) + c.noise("temp", t, 0.05),
    }


MODELS: dict[str, Callable[[Ctx, np.ndarray], Signals]] = {
    "pond": pond, "river": river, "flood_gauge": flood_gauge, "air": air,
    "weather": weather, "waste": waste, "water_supply": water_supply,
}


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Faults:
    spike_probability: float = 0.0008  # per reading and metric
    flatline_day_probability: float = 0.01  # a metric sticks for some hours on such a day
    dropout_probability: float = 0.002  # the node sends nothing for that slot

    @classmethod
    def none(cls) -> Faults:
        return cls(0.0, 0.0, 0.0)


def _apply_faults(c: Ctx, t: np.ndarray, values: Signals, faults: Faults) -> tuple[Signals, np.ndarray, dict]:
    slot = np.floor(t).astype(np.int64)
    flags: dict[str, np.ndarray] = {}
    for name, v in values.items():
        if faults.spike_probability:
            spike = uniform(c.k("spike" + name), slot) < faults.spike_probability
            # a spike is a single implausible jump of the sensor's output, in either direction
            values[name] = np.where(spike, np.where(v > 0, v * 1.8 + 1, v * 0.5), v)
        if faults.flatline_day_probability:
            stuck_day = c.day_event("flat" + name, t, faults.flatline_day_probability)
            h = local_hour(t)
            stuck = stuck_day & (h >= 1) & (h < 7)
            if stuck.any():
                # hold the value seen at the start of the episode (01:00 local)
                start = (local_day(t) * DAY_S + 3600 - TZ_OFFSET_S).astype(np.float64)
                held = MODELS[c.station.kind](c, start)[name] if name in values else v
                values[name] = np.where(stuck, held, values[name])
            flags[name] = stuck
    keep = np.ones(len(t), dtype=bool)
    if faults.dropout_probability:
        keep = uniform(c.k("drop"), slot) >= faults.dropout_probability
    return values, keep, flags


# --------------------------------------------------------------------------- public API


def station_series(station: Station, start_ms: int, end_ms: int, seed: int = 0,
                   faults: Faults | None = None) -> tuple[np.ndarray, Signals, np.ndarray]:
    """Timestamps (ms, aligned to the station's interval), values per metric, kept-mask (dropouts)."""
    step_ms = int(station.interval_s * 1000)
    first = -(-start_ms // step_ms) * step_ms
    ts = np.arange(first, end_ms, step_ms, dtype=np.int64)
    t = ts / 1000.0
    c = Ctx(_key(seed, station.commune, station.id), station)
    values = MODELS[station.kind](c, t)
    values = {m: values[m] for m in station.metrics if m in values}
    keep = np.ones(len(ts), dtype=bool)
    if faults is not None:
        values, keep, _ = _apply_faults(c, t, values, faults)
    for name, v in values.items():
        metric = contract.METRICS[name]
        values[name] = np.round(np.clip(v, metric.lo, metric.hi), max(metric.decimals, 2))
    return ts, values, keep


def simulate(site: Site, start_ms: int, end_ms: int, seed: int = 0, faults: Faults | None = None,
             stations: Iterable[str] | None = None, gateway: str | None = None) -> Iterator[contract.Reading]:
    """Readings of the site's stations over [start_ms, end_ms), station by station.

    ``seq`` is the station's slot number (ts // interval), so it increases with time and the same
    instant always carries the same seq, whether generated live or as a backfill.
    """
    wanted = set(stations) if stations is not None else None
    for st in site.stations.values():
        if (wanted is not None and st.id not in wanted) or (gateway and st.gateway != gateway):
            continue
        ts, values, keep = station_series(st, start_ms, end_ms, seed, faults)
        step_ms = int(st.interval_s * 1000)
        names = list(values)
        columns = [values[n].tolist() for n in names]
        ts_list = ts.tolist()
        keep_list = keep.tolist()
        for i, ts_ms in enumerate(ts_list):
            if not keep_list[i]:
                continue
            yield contract.Reading(site.commune, st.id, ts_ms, ts_ms // step_ms,
                                   {n: col[i] for n, col in zip(names, columns, strict=True)}, st.gateway)


def reading_at(site: Site, station_id: str, ts_ms: int, seed: int = 0) -> contract.Reading:
    """The reading a station takes at one instant (used by the live simulated source)."""
    st = site.stations[station_id]
    _, values, _ = station_series(st, ts_ms, ts_ms + 1, seed)
    step_ms = int(st.interval_s * 1000)
    if not len(next(iter(values.values()))):
        # ts not on the station's grid: evaluate the models at that exact instant
        c = Ctx(_key(seed, st.commune, st.id), st)
        raw = MODELS[st.kind](c, np.array([ts_ms / 1000.0]))
        values = {m: np.round(np.clip(raw[m], contract.METRICS[m].lo, contract.METRICS[m].hi), 2)
                  for m in st.metrics if m in raw}
    return contract.Reading(site.commune, st.id, ts_ms, ts_ms // step_ms,
                            {m: float(v[0]) for m, v in values.items()}, st.gateway)


def backfill(site: Site, start_ms: int, end_ms: int, influx_url: str, db: str = "villagewatch",
             seed: int = 0, faults: Faults | None = None, batch: int = 5000,
             user: str | None = None, password: str | None = None,
             progress: Callable[[int], None] | None = None) -> int:
    """Write simulated past readings straight to InfluxDB (villagewatch.influx). Returns points written."""
    target = InfluxTarget(influx_url.rstrip("/"), db, user, password, timeout_s=60)
    kinds = {s.id: s.kind for s in site.stations.values()}
    written = 0
    lines: list[str] = []

    def flush() -> None:
        nonlocal written
        if not lines:
            return
        try:
            write_sync(target, "\n".join(lines).encode())
        except WriteError as exc:
            raise RuntimeError(f"InfluxDB refused the backfill: {exc}") from exc
        written += len(lines)
        if progress:
            progress(len(lines))
        lines.clear()

    for reading in simulate(site, start_ms, end_ms, seed, faults):
        lines.append(telemetry_line(reading, kinds.get(reading.station)))
        if len(lines) >= batch:
            flush()
    flush()
    return written


def expected_count(site: Site, start_ms: int, end_ms: int, faults: Faults | None = None, seed: int = 0) -> dict[str, int]:
    """Readings per station that simulate() yields over the range (for tests and reports)."""
    out = {}
    for st in site.stations.values():
        _, _, keep = station_series(st, start_ms, end_ms, seed, faults)
        out[st.id] = int(keep.sum())
    return out

