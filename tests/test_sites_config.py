"""Site files and settings: validated at load, errors name the file, line, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from villagewatch.config import load_settings
from villagewatch.schema import ConfigError
from villagewatch.sites import STATION_KINDS, load_site, load_sites

REPO = Path(__file__).resolve().parent.parent


def test_pilot_commune_is_complete():
    sites = load_sites(REPO / "sites")
    site = sites["tan-thuan-dong"]
    assert "Đồng Tháp" in site.province
    assert len(site.stations) >= 12
    assert {s.kind for s in site.stations.values()} == set(STATION_KINDS)
    for st in site.stations.values():
        assert st.gateway in site.gateways and st.name_vi


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = """commune: xa-a
name_vi: "Xã A"
gateways:
  - id: gw-1
    name_vi: "Cổng 1"
stations:
  - id: s1
    kind: pond
    name_vi: "Ao 1"
    lat: 10.4
    lon: 105.6
    gateway: gw-1
    metrics: [do, ph]
"""


def test_minimal_site_defaults(tmp_path):
    site = load_site(write(tmp_path, BASE))
    st = site.stations["s1"]
    assert st.interval_s == 60 and st.source == {"type": "simulated"} and site.timezone == "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize("change,line,needle", [
    (("    metrics: [do, ph]", "    metrics: [do, oxy]"), 13, "unknown metric 'oxy'"),
    (("    kind: pond", "    kind: ponds"), 8, "did you mean 'pond'"),
    (("    gateway: gw-1", "    gatway: gw-1"), 12, "did you mean 'gateway'"),
    (("    lat: 10.4", "    lat: north"), 10, "expected a number"),
    (("  - id: s1", "  - id: S 1"), 7, "not a valid id"),
    (("    gateway: gw-1\n    metrics", "    gateway: gw-2\n    metrics"), 12, "did you mean 'gw-1'"),
])
def test_errors_name_file_line_key_and_suggest(tmp_path, change, line, needle):
    path = write(tmp_path, BASE.replace(*change))
    with pytest.raises(ConfigError) as exc:
        load_site(path)
    text = str(exc.value)
    assert f"{path}:{line}" in text, text
    assert needle in text, text


def test_missing_key_and_yaml_syntax(tmp_path):
    with pytest.raises(ConfigError, match="required key 'gateways' is missing"):
        load_site(write(tmp_path, "commune: a\nname_vi: b\n"))
    with pytest.raises(ConfigError, match=r"x.yaml:2: YAML syntax error"):
        load_site(write(tmp_path, "commune: a\n  - b: [\n"))


def test_env_overrides_and_errors_name_the_variable(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("influx_db: from_file\nhttp_port: 1234\n")
    s = load_settings(cfg, env={"VW_INFLUX_DB": "from_env", "VW_MQTT_URL": "mqtts://u:p%40ss@h:8883"})
    assert s.influx_db == "from_env" and s.http_port == 1234
    assert s.mqtt.tls and s.mqtt.password == "p@ss" and s.mqtt.port == 8883
    for var, value in (("VW_HTTP_PORT", "eighty"), ("VW_MQTT_URL", "http://x"), ("VW_INFLUX_URL", "influx:8086"),
                       ("VW_HTTP_PORT", "70000")):
        with pytest.raises(ConfigError, match=var):
            load_settings(env={var: value})
    cfg.write_text("influx_dbb: x\n")
    s = load_settings(cfg, env={})
    assert s.extra == {"influx_dbb": "x"}


def test_sample_config_loads():
    s = load_settings(REPO / "ingest" / "sample-config.yaml", env={})
    assert s.influx_api == "v1" and s.ingest_inflight == 20_000
