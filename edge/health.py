"""Platform health for the gateway status: CPU temperature, free disk, memory (where available)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

THERMAL_ZONES = Path("/sys/class/thermal")


def cpu_temp_c() -> float | None:
    """Highest thermal-zone reading (Raspberry Pi, Orange Pi...); None on machines without one."""
    temps = []
    for zone in THERMAL_ZONES.glob("thermal_zone*/temp"):
        try:
            temps.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return round(max(temps), 1) if temps else None


def rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def platform_health(data_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    temp = cpu_temp_c()
    if temp is not None:
        out["cpu_temp_c"] = temp
    try:
        out["disk_free_mb"] = round(shutil.disk_usage(data_dir).free / 2**20)
    except OSError:
        pass
    rss = rss_mb()
    if rss is not None:
        out["rss_mb"] = rss
    try:
        out["load1"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return out


def write_status_file(path: Path, body: dict[str, Any]) -> None:
    """The last status also on disk: a technician can read it while the link is down."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
