"""A gateway whose wall clock is wrong at boot (no RTC, NTP not reachable yet) neither loses nor
misplaces a reading: readings are held with their monotonic time and re-timed once the clock is
trusted (flag ``clock_corrected``), or published with a best estimate after a time-out (flag
``clock_unsynced``). Real Mosquitto + InfluxDB + ingest; the gateway runs in-process with a fake
clock, because a test cannot set the machine's clock back to 1970 (the only fake here)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import eventually
from test_edge_gateway import Collector, write_site

from edge.clock import BUILD_FLOOR_MS, STEPPED, SYNCED, UNSYNCED, ClockGuard
from edge.gateway import Gateway, GatewayOptions
from edge.spool import Spool
from villagewatch import contract
from villagewatch.config import MqttUrl
from villagewatch.sites import load_site

pytestmark = pytest.mark.integration

BOOT_1970 = "1970"
BEHIND_730_DAYS = "730 days behind"


class FakeClock:
    """The machine's clocks with the wall clock shifted by ``shift`` seconds (changed by the test:
    a step), and the OS sync state the test says. Monotonic is the real one."""

    def __init__(self, shift: float = 0.0, os_synced: bool | None = None):
        self.shift, self.os_synced = shift, os_synced
        self.elapsed = 0.0  # advance(): time passes faster than real (both clocks, no step)

    def wall(self) -> float:
        return time.time() + self.shift + self.elapsed

    def monotonic(self) -> float:
        return time.monotonic() + self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def synced(self) -> bool | None:
        return self.os_synced

    def boot_id(self) -> str:
        return "test-boot"


# ------------------------------------------------------------------ the guard alone
def test_guard_floor_os_mode_step_and_settle():
    clock = FakeClock(shift=-time.time() + 10)  # 1970-01-01T00:00:10
    guard = ClockGuard(clock, settle_s=0.2)
    assert (guard.state, guard.trusted) == (UNSYNCED, False)
    assert guard.best_estimate_ms(guard.monotonic()) >= BUILD_FLOOR_MS  # never below what ingest accepts
    clock.shift = 0.0
    assert guard.observe() is False and guard.state == STEPPED and guard.last_step_s > 1e9
    eventually(guard.observe, 5, "clock settled after the step")
    assert guard.state == SYNCED
    guard.raise_floor(int((time.time() + 3600) * 1000))  # a spooled reading from the future of this clock
    assert guard.state == UNSYNCED and not guard.trusted
    strict = ClockGuard(FakeClock(os_synced=False), mode="os")
    assert not strict.trusted and "NTP" in strict.reason
    strict.clock.os_synced = True
    assert strict.observe()
    offset = ClockGuard(FakeClock(shift=-800 * 86400, os_synced=False), mode="os", operator_offset_s=800 * 86400)
    assert offset.trusted and abs(offset.wall() - time.time()) < 5  # two clock reads: a stall between them


def test_held_readings_survive_a_restart_and_keep_their_order(tmp_path: Path):
    spool = Spool(tmp_path / "spool.sqlite")
    spool.hold([(contract.Reading("xa", "st-1", 10_000, 0, {"ph": 7.0 + i / 10}), 100.0 + i) for i in range(5)], "b1")
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    assert spool.held_depth == 5 and spool.depth == 0
    moved = spool.release(lambda mono, boot: (int(mono * 1000), "clock_corrected"), "b1", mono_before=102.5)
    assert moved == 3 and spool.held_depth == 2  # only the readings held too long
    assert spool.release(lambda mono, boot: (int(mono * 1000), "clock_corrected"), "b1") == 2
    rows = spool.fetch(0, 100)
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4] and [r.ts for r in rows] == [100_000 + 1000 * i for i in range(5)]
    assert all(b'"clock_corrected"' in r.payload for r in rows)
    spool.close()


# ------------------------------------------------------------------ the gateway end to end
class RunningGateway:
    """The gateway in a thread of this process (its own event loop), so the test holds its clock.
    Records the true (machine) time at which each reading was taken, per station, in seq order."""

    def __init__(self, gw: Gateway):
        self.gw = gw
        self.taken: dict[str, list[float]] = defaultdict(list)
        real = gw.reading

        def spy(station_id: str, ts_ms: int, metrics: dict[str, float], flags=None) -> None:
            self.taken[station_id].append(time.time())
            real(station_id, ts_ms, metrics, flags)

        gw.reading = spy  # the sources call the gateway as their sink
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        eventually(lambda: self.stop_event is not None, 10, "gateway loop")

    def _run(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.gw.run(self.stop_event)
        self.loop.run_until_complete(main())

    def status(self) -> dict:
        fut = asyncio.run_coroutine_threadsafe(self._status(), self.loop)
        return fut.result(10)

    async def _status(self) -> dict:
        return self.gw.status()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.thread.is_alive()


def rejected(ingest) -> dict[str, int]:
    return {m[0]: int(float(m[1])) for m in re.findall(r'vw_ingest_rejected_total\{reason="(\w+)"\} (\S+)',
                                                        ingest.metrics_text())}


def stored(stack, station: str) -> list[dict]:
    res = stack.influx_query(f"SELECT * FROM telemetry WHERE station = '{station}'", db=stack.influx_db)
    series = res["results"][0].get("series") or [{"columns": [], "values": []}]
    return [dict(zip(series[0]["columns"], row, strict=True)) for row in series[0]["values"]]


def make_gateway(stack, tmp_path: Path, clock: FakeClock, **opts) -> tuple[Gateway, list[str]]:
    site = load_site(write_site(tmp_path / "site.yaml", 3))
    gw = Gateway(site, "gw-test", GatewayOptions(brokers=[MqttUrl.parse(stack.mqtt_url)], data_dir=tmp_path / "edge",
                                                 speed=4, status_interval_s=0.5, clock=clock, **opts))
    return gw, list(site.stations)


@pytest.mark.parametrize("boot", [BOOT_1970, BEHIND_730_DAYS])
def test_boot_on_a_wrong_clock_then_step_every_reading_lands_at_its_true_time(stack, ingest_factory, tmp_path, boot):
    ingest = ingest_factory()
    col = Collector(stack.mosquitto.port, f"clock-collector-{len(boot)}")
    if boot == BOOT_1970:  # no RTC: the board starts at the epoch; the OS says "not synchronised"
        clock, mode = FakeClock(shift=-time.time() + 30, os_synced=False), "os"
    else:  # fake-hwclock from two years ago; the OS says nothing: the build-date floor catches it
        assert (time.time() - 730 * 86400) * 1000 < BUILD_FLOOR_MS, "raise edge.clock.BUILD_FLOOR_MS with the release"
        clock, mode = FakeClock(shift=-730 * 86400, os_synced=None), "sane"
    gw, stations = make_gateway(stack, tmp_path, clock, clock_mode=mode)
    run = RunningGateway(gw)
    try:
        eventually(lambda: all(len(run.taken[s]) >= 8 for s in stations), 30, "readings taken on the wrong clock")
        st = run.status()
        assert st["clock"]["state"] == UNSYNCED and st["clock"]["held"] > 0
        assert col.total() == 0, "a reading was published with a made-up time"
        step_at = time.time()
        clock.shift, clock.os_synced = 0.0, True  # NTP answers: the clock steps to the true time
        eventually(lambda: run.status()["clock"]["state"] == SYNCED, 20, "clock trusted after the step")
        trusted_at = time.time()
        assert run.status()["clock"]["last_step_s"] > 600 * 86400
        eventually(lambda: all(len(run.taken[s]) and run.taken[s][-1] > trusted_at + 1.5 for s in stations), 20,
                   "readings taken on the trusted clock")
    finally:
        run.stop()
    produced = {s: len(run.taken[s]) for s in stations}
    eventually(lambda: col.total() >= sum(produced.values()), 30, "every reading at the subscriber")
    eventually(lambda: all(len(stored(stack, s)) == produced[s] for s in stations), 30, "every reading in InfluxDB")
    col.stop()
    assert rejected(ingest) == {}, "the ingest rejected readings"
    for s in stations:
        by_seq = {b["seq"]: b for b in col.telemetry[s]}
        assert sorted(by_seq) == list(range(produced[s])), f"{s}: seq lost or extra"  # arrived == produced, lost 0
        corrected = 0
        for seq, true_t in enumerate(run.taken[s]):
            body = by_seq[seq]
            assert abs(body["ts"] / 1000 - true_t) <= 1.0, f"{s} seq {seq}: misplaced by {body['ts'] / 1000 - true_t:.1f} s"
            flags = body.get("flags") or {}
            flagged = bool(flags) and all("clock_corrected" in fl for fl in flags.values())
            if true_t < step_at:
                assert flagged, f"{s} seq {seq}: taken on the wrong clock but not flagged"
            if true_t > trusted_at + 1.0:
                assert not flagged, f"{s} seq {seq}: taken on a trusted clock but flagged"
            corrected += flagged
        assert corrected >= 8
        points = stored(stack, s)
        assert sorted(p["seq"] for p in points) == list(range(produced[s]))  # landed once each, at its ts
        assert {p["seq"]: p["time"] for p in points} == {seq: b["ts"] for seq, b in by_seq.items()}
        assert sum("clock_corrected" in (p.get("flags") or "") for p in points) == corrected


def test_never_trusted_clock_publishes_best_estimate_flagged_after_the_hold_limit(stack, ingest_factory, tmp_path):
    ingest = ingest_factory()
    col = Collector(stack.mosquitto.port, "clock-unsynced-collector")
    clock = FakeClock(shift=-time.time() + 30, os_synced=False)  # stays at 1970 for the whole test
    gw, stations = make_gateway(stack, tmp_path, clock, clock_mode="os", clock_hold_max_s=2.0)
    run = RunningGateway(gw)
    try:
        eventually(lambda: col.total() >= 3 * 10, 30, "readings published after the hold limit")
        st = run.status()
        assert st["clock"]["state"] == UNSYNCED and st["clock"]["released"].get("clock_unsynced", 0) >= 30
    finally:
        run.stop()
    # what is still held at the stop stays in the spool for the next start (not lost, not published)
    held = Spool(tmp_path / "edge" / "spool.sqlite").held_depth
    produced = {s: len(run.taken[s]) for s in stations}
    eventually(lambda: col.total() >= sum(produced.values()) - held, 30, "the released readings at the subscriber")
    col.stop()
    assert rejected(ingest) == {}
    now_ms = time.time() * 1000
    for s in stations:
        bodies = sorted(col.telemetry[s], key=lambda b: b["seq"])
        assert [b["seq"] for b in bodies] == list(range(len(bodies)))
        assert all("clock_unsynced" in fl for b in bodies for fl in b["flags"].values())
        ts = [b["ts"] for b in bodies]
        assert ts == sorted(ts) and len(set(ts)) == len(ts), f"{s}: estimated times out of order or shared"
        assert ts[0] >= BUILD_FLOOR_MS and ts[-1] <= now_ms
    eventually(lambda: sum(len(stored(stack, s)) for s in stations) == col.total(), 30, "all stored")


def test_step_while_running_is_detected_and_readings_around_it_are_retimed(stack, ingest_factory, tmp_path):
    """A trusted clock that jumps back an hour (a VM restored, a wrong NTP server): the step is seen
    (wall − monotonic), readings are held while the clock settles, then re-timed consistently with
    the clock that follows and flagged; nothing lost, nothing rejected."""
    ingest = ingest_factory()
    col = Collector(stack.mosquitto.port, "clock-step-collector")
    clock = FakeClock(shift=0.0, os_synced=True)
    gw, stations = make_gateway(stack, tmp_path, clock)
    run = RunningGateway(gw)
    try:
        eventually(lambda: all(len(col.seqs(s)) >= 4 for s in stations), 30, "readings on the trusted clock")
        step_at = time.time()
        clock.shift = -3600.0
        # "stepped" lasts settle_s (3 s) only: a poll on a loaded machine can miss it; the count cannot
        eventually(lambda: run.status()["clock"]["steps"] >= 1, 30, "the step seen")
        eventually(lambda: run.status()["clock"]["state"] == SYNCED, 30, "the clock settled")
        settled_at = time.time()
        st = run.status()["clock"]
        assert st["steps"] == 1 and abs(st["last_step_s"] + 3600) < 2
        eventually(lambda: all(run.taken[s][-1] > settled_at + 1.5 for s in stations), 20, "readings after it")
    finally:
        run.stop()
    produced = {s: len(run.taken[s]) for s in stations}
    eventually(lambda: col.total() >= sum(produced.values()), 30, "every reading at the subscriber")
    eventually(lambda: all(len(stored(stack, s)) == produced[s] for s in stations), 30, "every reading stored")
    col.stop()
    assert rejected(ingest) == {}
    for s in stations:
        by_seq = {b["seq"]: b for b in col.telemetry[s]}
        assert sorted(by_seq) == list(range(produced[s]))
        flagged = 0
        for seq, true_t in enumerate(run.taken[s]):
            body = by_seq[seq]
            is_flagged = any("clock_corrected" in fl for fl in (body.get("flags") or {}).values())
            expected = true_t if true_t < step_at - 0.5 else true_t - 3600
            if abs(true_t - step_at) > 0.5:  # the tick of the step itself may fall either side
                assert abs(body["ts"] / 1000 - expected) <= 1.0, f"{s} seq {seq}"
            if true_t < step_at - 0.5 or true_t > settled_at + 1.0:
                assert not is_flagged, f"{s} seq {seq}: flagged outside the step"
            flagged += is_flagged
        assert flagged >= 3, f"{s}: readings of the settling window not held and re-timed"


def test_an_os_synchronised_clock_wins_over_a_future_reading_in_the_spool():
    clock = FakeClock(os_synced=None)
    guard = ClockGuard(clock)
    guard.raise_floor(int((time.time() + 86400) * 1000))  # spooled while an RTC glitch said "tomorrow"
    assert not guard.trusted
    clock.os_synced = True  # NTP says the clock is right: our own file was wrong
    assert guard.observe() and guard.state == SYNCED
    clock.shift = BUILD_FLOOR_MS / 1000 - 86400 - time.time()  # never before the build date, whatever the OS says
    assert not guard.observe() and guard.state == UNSYNCED


def test_held_readings_are_bounded_by_the_budget_oldest_go_out_flagged_not_dropped(tmp_path):
    site = load_site(write_site(tmp_path / "site.yaml", 1))
    clock = FakeClock(shift=-time.time() + 30, os_synced=False)
    gw = Gateway(site, "gw-test", GatewayOptions(brokers=[MqttUrl.parse("mqtt://127.0.0.1:1")], data_dir=tmp_path / "edge",
                                                 budget_bytes=40_000, clock=clock, clock_mode="os"))

    async def feed() -> None:
        for k in range(300):
            clock.advance(1.0)  # a reading a second
            gw.reading("ao-00", gw.guard.wall_ms(), {"do": 5.0 + (k % 10) / 10, "temp": 28.0})
            gw._flush()
        gw._release_timed_out()

    asyncio.run(feed())
    bound = 40_000 // 200
    assert gw.spool.held_depth == bound and gw.spool.depth == 300 - bound and gw.spool.total_drops == 0
    rows = gw.spool.fetch(0, 1000)
    assert [r.seq for r in rows] == list(range(300 - bound)), "released out of order"
    assert all(b'"clock_unsynced"' in r.payload for r in rows)
    ts = [r.ts for r in rows]
    assert ts[0] >= BUILD_FLOOR_MS and all(900 <= b - a <= 1100 for a, b in zip(ts, ts[1:], strict=False)), "spacing lost"
    gw.spool.close()
