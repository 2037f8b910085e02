"""The rules floor: what a regulation says and how a reading is judged against it.

Shared by alerts, dashboards and reports (issue 14). Imports only ``villagewatch.*`` (the ground
floor) and third-party packages; nothing here does I/O beyond reading the pack YAML files.

- ``rules.rulepack``   rule packs (``rules/packs/*.yaml``): loader, validation, per-station rules
- ``rules.kinds``      one module per rule kind + the registry (``rules.kinds.REGISTRY``)
- ``rules.engine``     the pure, event-time alert engine (state machine, windows, correlation)
- ``rules.series``     bounded per-metric history used by windowed kinds
- ``rules.aqi``        VN_AQI (Decision 1459/QĐ-TCMT)
- ``rules.messages``   alert wording, Vietnamese first
"""
