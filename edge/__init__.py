"""Edge gateway: sources → edge processing → durable spool → MQTT (QoS 1)."""
