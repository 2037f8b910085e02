"""bench/peers.py's own pieces: the Node-RED flow it compares against, and how it names lost readings.

The bench itself (Node-RED from npm, minutes of load) is not part of the suite; these checks are
cheap and guard what the comparison's fairness rests on: the peer's flow really is the persistent,
QoS 1 flow a pilot would build, and a lost reading is found by its identity in InfluxDB.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "bench"))

import peers  # noqa: E402


def test_the_node_red_flow_is_qos1_with_a_persistent_session_and_every_placeholder_filled():
    values = {"__MQTT_PORT__": "1883", "__CLIENT_ID__": "nodered-telemetry", "__AUTO_UNSUBSCRIBE__": False,
              "__INFLUX_PORT__": "8086", "__INFLUX_DB__": "db", "__BATCH_SIZE__": "500",
              "__BATCH_TIMEOUT_S__": "1"}
    flows = peers._fill(json.loads((peers.PEERS_DIR / "flows.json").read_text()), values)
    assert "__" not in json.dumps([{k: v for k, v in n.items() if k != "info"} for n in flows])
    by_type = {n["type"]: n for n in flows}
    broker = by_type["mqtt-broker"]
    assert broker["cleansession"] is False and broker["clientid"] == "nodered-telemetry"
    assert broker["autoUnsubscribe"] is False
    assert by_type["mqtt in"]["qos"] == "1" and by_type["mqtt in"]["topic"] == "vw/v1/+/+/telemetry"
    # the chain: mqtt in → function → join → influxdb batch (InfluxDB 1.x)
    ids = {n["id"]: n for n in flows}
    chain, node = [], by_type["mqtt in"]
    while True:
        chain.append(node["type"])
        if not node.get("wires"):
            break
        node = ids[node["wires"][0][0]]
    assert chain == ["mqtt in", "function", "join", "influxdb batch"]
    assert by_type["influxdb"]["influxdbVersion"] == "1.x"


def test_lost_positions_name_the_readings_missing_from_influxdb(stack):
    fleet = SimpleNamespace(stations=3, ids=[("xa-0000", f"tram-{i:05d}") for i in range(3)])
    landed = [0, 1, 2, 3, 6, 8]  # publish positions that reached InfluxDB; 4, 5 and 7 did not
    lines = []
    for pos in landed:
        seq, station = divmod(pos, 3)
        lines.append(f"telemetry,commune=xa-0000,station=tram-{station:05d} seq={10 + seq}i {1000 + pos}")
    lines.append(f"telemetry,commune={peers.PROBE_COMMUNE},station=probe seq=1i 5000")  # not counted
    req = urllib.request.Request(f"{stack.influx_url}/write?db={stack.influx_db}&precision=ms",
                                 data="\n".join(lines).encode(), method="POST")
    urllib.request.urlopen(req, timeout=60).close()

    runs = peers.lost_positions(stack, fleet, first_seq=10, published=9)
    assert runs == [[4, 5], [7, 7]]
    assert peers.split_lost(runs, 5) == (1, 2)
    assert peers.landed(stack) == 6 and peers.landed(stack, probe=True) == 1
