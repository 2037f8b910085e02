"""The site file's `public` flag: default by kind, explicit value wins, wrong type names file:line."""

from __future__ import annotations

import pytest

from villagewatch.schema import ConfigError
from villagewatch.sites import load_site

SITE = """commune: x
name_vi: "Xã X"
gateways:
  - {{id: gw, name_vi: "Cổng"}}
stations:
  - {{id: river-1, kind: river, name_vi: "Sông", lat: 10, lon: 105, gateway: gw, metrics: [ph]}}
  - {{id: pond-1, kind: pond, name_vi: "Ao", lat: 10, lon: 105, gateway: gw, metrics: [do]}}
  - {{id: pond-2, kind: pond, name_vi: "Ao 2", lat: 10, lon: 105, gateway: gw, metrics: [do], public: {flag}}}
"""


def test_portal_public_flag_defaults_and_override(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(SITE.format(flag="true"), encoding="utf-8")
    site = load_site(path)
    assert site.stations["river-1"].public is True
    assert site.stations["pond-1"].public is False
    assert site.stations["pond-2"].public is True


def test_portal_public_flag_wrong_type_is_a_config_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(SITE.format(flag='"maybe"'), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "x.yaml" in str(err.value) and "public" in str(err.value)
