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


def test_portal_site_outline_is_optional_and_checked(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(SITE.format(flag="true"), encoding="utf-8")
    assert load_site(path).outline == ()
    good = "outline:\n  - {lat: 10.1, lon: 105.1}\n  - {lat: 10.2, lon: 105.1}\n  - {lat: 10.2, lon: 105.3}\n"
    path.write_text(good + SITE.format(flag="true"), encoding="utf-8")
    assert load_site(path).outline == ((10.1, 105.1), (10.2, 105.1), (10.2, 105.3))
    path.write_text("outline:\n  - {lat: 10.1, lon: 105.1}\n  - {lat: 95, lon: 105.1}\n  - {lat: 10, lon: 105}\n"
                    + SITE.format(flag="true"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert "x.yaml:3" in str(err.value) and "lat" in str(err.value)
    path.write_text("outline:\n  - {lat: 10.1, lon: 105.1}\n" + SITE.format(flag="true"), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_site(path)  # a polygon needs three points


def test_portal_pilot_site_outline_surrounds_its_stations():
    from pathlib import Path

    site = load_site(Path(__file__).resolve().parent.parent / "sites" / "tan-thuan-dong.yaml")
    lats, lons = [p[0] for p in site.outline], [p[1] for p in site.outline]
    for st in site.stations.values():
        assert min(lats) < st.lat < max(lats) and min(lons) < st.lon < max(lons), st.id
