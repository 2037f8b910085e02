"""Grafana dashboards as code: generated from ``sites/*.yaml`` and the alert rule packs.

``generator`` builds dashboard JSON, ``provisioning`` writes Grafana's provisioning files,
``push`` sends both through the Grafana HTTP API, ``interpolate`` substitutes template variables
the way Grafana's InfluxDB datasource does (used to prove every query on a real database).
"""
