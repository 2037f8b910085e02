"""Probe sanity: a float register read in the wrong word/byte order is flagged ``suspect`` with a
source error ``decode_order`` naming the profile and the order that makes sense — never passed on
as a plausible constant (DO 0.0 mg/L). Property test over random floats in every order; a pymodbus
probe with swapped words on a pty bus; ``villagewatch edge --check --probe`` on the same bus."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_edge_modbus import CollectingSink, options, station

from app import cli
from edge.sources.base import Bound, SourceContext
from edge.sources.modbus_rtu.profiles import load_profile
from edge.sources.modbus_rtu.sanity import ORDERS, TINY, check_order, f32_words
from edge.sources.modbus_rtu.simulator import PtyBus
from edge.sources.modbus_rtu.source import ModbusRtuSource
from villagewatch import contract

DO_REG = next(r for r in load_profile("do-optical-generic").registers if r.metric == "do")
METRIC_FLOATS = st.sampled_from(["do", "temp", "ph", "turbidity", "ec", "level"]).flatmap(
    lambda m: st.tuples(st.just(m), st.floats(contract.METRICS[m].lo, contract.METRICS[m].hi, width=32)))


def as_register(metric: str, order: tuple[str, str]):
    return dataclasses.replace(DO_REG, metric=metric, word_order=order[0], byte_order=order[1])


@given(METRIC_FLOATS, st.sampled_from(ORDERS), st.sampled_from(ORDERS))
def test_detector_over_random_floats_in_every_order(metric_value, sent, configured):
    metric, value = metric_value
    words = f32_words(value, *sent)
    verdict = check_order(as_register(metric, configured), words)
    physical = value == 0.0 or abs(value) >= TINY  # what a probe can report
    if configured == sent:
        if physical:
            assert verdict is None, f"a correct probe was suspected: {verdict}"  # never a false alarm
        return
    wrong = as_register(metric, configured).decode(words)
    looks_wrong = (not math.isfinite(wrong) or 0 < abs(wrong) < TINY
                   or not contract.METRICS[metric].in_range(wrong))
    if looks_wrong and physical and value != 0.0:
        assert verdict is not None, f"{value} sent {sent}, read {configured} as {wrong}: not detected"
        assert sent in verdict.better, f"the order that was sent {sent} is not proposed: {verdict.better}"
        assert "profile do-optical-generic" in verdict.describe("do-optical-generic")
    elif not looks_wrong:
        assert verdict is None  # plausible in both orders: no evidence, no flag


def test_the_issue_case_do_5_mg_l_swapped_reads_as_a_denormal_and_is_caught():
    words = f32_words(5.25, "big", "big")  # the new probe: ABCD; the profile says CDAB
    verdict = check_order(DO_REG, words)
    assert DO_REG.decode(words) == pytest.approx(0.0, abs=1e-30)  # the plausible constant of the issue
    assert verdict is not None and "denormal" in verdict.why and verdict.better == (("big", "big"),)


def swapped_do_bus() -> PtyBus:
    # address 2: a DO probe of another brand, ABCD word order, behind a CDAB (do-optical-generic) profile
    return PtyBus({2: {4: f32_words(5.25, "big", "big") + f32_words(27.5, "big", "big")}}).start()


def test_swapped_word_order_probe_on_a_pty_bus_is_flagged_suspect():
    bus = swapped_do_bus()
    try:
        source = ModbusRtuSource(bus.client_port, [Bound(station("ao-2"), options(bus.client_port, 2,
                                                                                 "do-optical-generic"))],
                                 SourceContext(speed=4))
        sink = CollectingSink()

        async def rounds():
            task = asyncio.create_task(source.run(sink))
            deadline = asyncio.get_running_loop().time() + 60  # a loaded machine: costs time only on failure
            while len(sink.readings.get("ao-2", [])) < 3:
                assert asyncio.get_running_loop().time() < deadline, (sink.readings, sink.errors)
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await source.close()

        asyncio.run(rounds())
    finally:
        bus.stop()
    n = len(sink.readings["ao-2"])
    assert all(f == {"do": ["suspect"], "temp": ["suspect"]} for f in sink.flags["ao-2"])
    assert sink.errors.count(("ao-2", "decode_order")) == 2 * n  # DO and temperature, every poll
    assert all("profile do-optical-generic" in d and "word_order big, byte_order big" in d for d in sink.details)


def write_modbus_site(path: Path, port: str) -> Path:
    path.write_text(f"""commune: xa-thu
name_vi: "Xã thử nghiệm"
gateways:
  - id: gw-ao
    name_vi: "Cổng ao"
stations:
  - id: ao-2
    kind: pond
    name_vi: "Ao 2"
    lat: 10.4
    lon: 105.6
    gateway: gw-ao
    interval_s: 60
    metrics: [do, temp]
    source:
      type: modbus_rtu
      port: {port}
      timeout_ms: 1000
      devices:
        - {{address: 2, profile: do-optical-generic}}
""", encoding="utf-8")
    return path


def test_check_probe_prints_raw_decoded_and_other_orders_and_writes_nothing(stack, tmp_path, capsys, monkeypatch):
    bus = swapped_do_bus()
    try:
        site = write_modbus_site(tmp_path / "site.yaml", bus.client_port)
        monkeypatch.setenv("VW_MQTT_URL", stack.mqtt_url)
        monkeypatch.chdir(tmp_path)
        before = sorted(p.name for p in tmp_path.iterdir())
        code = cli.main(["edge", "--site", str(site), "--gateway", "gw-ao", "--check", "--probe",
                         "--data-dir", str(tmp_path / "edge")])
    finally:
        bus.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"cổng {bus.client_port}: mở được" in out and "kết nối được" in out
    assert "[0x40A8 0x0000]" in out  # the raw registers of 5.25 in ABCD
    assert "word big/byte big = 5,25 mg/L" in out  # the order that makes sense, among the others
    assert "NGHI NGỜ / SUSPECT: do @ 0 (profile do-optical-generic" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "--check wrote something"


def test_check_with_broker_down_and_a_missing_port_says_so_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    from app.stack import free_port
    port = free_port()  # nothing listens here
    monkeypatch.setenv("VW_MQTT_URL", f"mqtt://127.0.0.1:{port}")
    site = write_modbus_site(tmp_path / "site.yaml", "/dev/ttyVW-not-plugged-in")
    code = cli.main(["edge", "--site", str(site), "--gateway", "gw-ao", "--check",
                     "--data-dir", str(tmp_path / "edge")])
    captured = capsys.readouterr()
    assert code == 1
    assert f"LỖI: không kết nối được mqtt://127.0.0.1:{port}: connection refused" in captured.out
    assert "LỖI: không mở được cổng /dev/ttyVW-not-plugged-in" in captured.out
    assert "CÓ 2 LỖI / 2 PROBLEM(S)" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "edge").exists()


def test_swapped_probe_through_the_gateway_arrives_flagged_and_status_names_the_profile(stack, tmp_path):
    from conftest import eventually
    from test_edge_clock import RunningGateway
    from test_edge_gateway import Collector

    from edge.gateway import Gateway, GatewayOptions
    from villagewatch.config import MqttUrl
    from villagewatch.sites import load_site

    bus = swapped_do_bus()
    try:
        site = load_site(write_modbus_site(tmp_path / "site.yaml", bus.client_port))
        col = Collector(stack.mosquitto.port, "probe-collector")
        gw = Gateway(site, "gw-ao", GatewayOptions(brokers=[MqttUrl.parse(stack.mqtt_url)], data_dir=tmp_path / "edge",
                                                   speed=60, status_interval_s=0.5))
        run = RunningGateway(gw)
        try:
            eventually(lambda: len(col.seqs("ao-2")) >= 3, 30, "readings of the swapped probe")
            status = run.status()
        finally:
            run.stop()
        col.stop()
    finally:
        bus.stop()
    bodies = col.telemetry["ao-2"]
    assert all(b["flags"] == {"do": ["suspect"], "temp": ["suspect"]} for b in bodies)
    src = status["sources"][f"modbus_rtu:{bus.client_port}"]
    assert src["errors"]["decode_order"] >= 2 * len(bodies) - 2
    assert "profile do-optical-generic" in src["last_error"] and "word_order big, byte_order big" in src["last_error"]
