"""Ingest service: MQTT → validate → batch → InfluxDB, acknowledging only what is durable."""
