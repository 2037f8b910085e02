"""What a technician on site reads on the console: connection failures with reason and next try,
the first reading of each station, source errors by kind — Vietnamese first, at most one line per
cause per minute (the minute is an injected clock here). Real paho against a port where nothing
listens; a real pty Modbus bus with one silent device."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import eventually
from test_edge_clock import RunningGateway

from app.stack import free_port
from edge.console import Console
from edge.gateway import Gateway, GatewayOptions
from edge.link import Link
from edge.sources.modbus_rtu.simulator import PtyBus
from villagewatch.config import MqttUrl
from villagewatch.sites import load_site


class Minute:
    """A monotonic clock the test moves by hand (the console's rate limit is per minute)."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Lines:
    def __init__(self):
        self.lock = threading.Lock()
        self.lines: list[str] = []

    def __call__(self, level: int, text: str) -> None:
        with self.lock:
            self.lines.append(text)

    def matching(self, needle: str) -> list[str]:
        with self.lock:
            return [line for line in self.lines if needle in line]


def test_one_line_per_cause_per_minute_and_the_repeats_are_counted():
    clock, lines = Minute(), Lines()
    console = Console(clock, lines)
    assert console.say("a", "một / one") and console.say("b", "hai / two")
    assert not console.say("a", "một / one") and not console.say("a", "một / one")
    clock.t += 59.9
    assert not console.say("a", "một / one")
    clock.t += 0.2
    assert console.say("a", "một / one")
    assert lines.lines == ["một / one", "hai / two",
                           "một / one (+3 lần trong 60 s qua / more times in the last 60 s)"]


def test_unreachable_broker_says_reason_and_next_try_once_a_minute():
    clock, lines = Minute(), Lines()
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    link = Link([MqttUrl.parse(url)], "vw-test-console", "vw/v1/x/gw/status", b"{}", reconnect_max_s=4,
                console=Console(clock, lines))
    link.start()
    try:
        eventually(lambda: lines.matching("không kết nối được"), 15, "the first failure on the console")
        assert lines.matching("đang kết nối " + url)
        first = lines.matching("không kết nối được")
        assert first == [f"không kết nối được {url}: connection refused, thử lại sau 1 s / "
                         f"cannot connect to {url}: connection refused, retrying in 1 s"]
        # paho keeps trying (1 s, 2 s, ...): the same cause stays one line within the minute
        eventually(lambda: link.failed_connects >= 2, 15, "a second attempt")
        assert len(lines.matching("không kết nối được")) == 1
        clock.t += 61
        eventually(lambda: len(lines.matching("không kết nối được")) == 2, 15, "the next minute's line")
        again = lines.matching("không kết nối được")[1]
        assert "connection refused, thử lại sau 4 s" in again  # 1, 2, 4 (the maximum here) s
        assert int(again.split("(+")[1].split(" ")[0]) >= 1 and "lần trong 60 s qua" in again
    finally:
        link.stop()


def write_bus_site(path: Path, port: str) -> Path:
    stations = []
    for sid, address, profile in (("ao-1", 1, "ph-generic"), ("ao-5", 5, "ph-generic")):
        stations.append(f"""  - id: {sid}
    kind: pond
    name_vi: "Ao {address}"
    lat: 10.4
    lon: 105.6
    gateway: gw-test
    interval_s: 1
    metrics: [ph, temp]
    source:
      type: modbus_rtu
      port: {port}
      timeout_ms: 500
      retries: 0
      devices:
        - {{address: {address}, profile: {profile}}}
""")
    path.write_text('commune: xa-thu\nname_vi: "Xã thử"\ngateways:\n  - id: gw-test\n    name_vi: "Cổng"\n'
                    "stations:\n" + "".join(stations), encoding="utf-8")
    return path


def test_gateway_console_first_readings_and_source_errors_rate_limited(tmp_path):
    bus = PtyBus({1: {3: [712, 281]}}).start()  # address 5 is silent: a timeout every poll
    clock, lines = Minute(), Lines()
    try:
        site = load_site(write_bus_site(tmp_path / "site.yaml", bus.client_port))
        broker = f"mqtt://127.0.0.1:{free_port()}"
        gw = Gateway(site, "gw-test", GatewayOptions(brokers=[MqttUrl.parse(broker)], data_dir=tmp_path / "edge",
                                                     speed=4, console=Console(clock, lines)))
        source = gw.sources[0]
        run = RunningGateway(gw)
        try:
            eventually(lambda: source.errors["timeout"] >= 4 and len(run.taken["ao-1"]) >= 4, 30, "polls")
            first = lines.matching("bản ghi đầu tiên")
            assert first == ["trạm ao-1: bản ghi đầu tiên — ph 7,12, temp 28,1 °C / "
                             "station ao-1: first reading — ph 7.12, temp 28.1 °C"]
            timeouts = lines.matching(": timeout:")
            assert len(timeouts) == 1 and timeouts[0].startswith("lỗi nguồn modbus_rtu:")
            assert "trạm ao-5" in timeouts[0]
            assert len(lines.matching("không kết nối được " + broker)) == 1
            clock.t += 61
            suppressed = source.errors["timeout"] - 1  # at least these were not printed
            eventually(lambda: len(lines.matching(": timeout:")) == 2, 15, "the next minute's timeout line")
            repeats = int(lines.matching(": timeout:")[1].split("(+")[1].split(" ")[0])
            assert repeats >= suppressed >= 3
        finally:
            run.stop()
    finally:
        bus.stop()
    assert len(lines.matching("bản ghi đầu tiên")) == 1  # ao-5 never produced one
