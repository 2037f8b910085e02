"""Technician tools: device identity and credentials, inventory, project CA, flashing ESP32-class
nodes (esptool + NVS configuration partition), signed over-the-air updates, broker security files.

Entry point: ``villagewatch device|ca|ota`` (firmware_tools/cli.py). docs/technician.md is the guide.
"""
