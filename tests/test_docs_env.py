"""Every VW_* environment variable the code reads is documented in the README, where a deployer
looks first (a setting nobody can find is a setting nobody can use)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("villagewatch", "app", "simulator", "edge", "ingest", "alerts", "portal", "dashboards", "reports",
            "firmware_tools", "rules")


def test_every_environment_variable_is_in_the_readme():
    used: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            used |= set(re.findall(r"\bVW_[A-Z][A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
    assert len(used) > 20
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = sorted(v for v in used if v not in readme)
    assert not missing, f"not documented in README.md: {missing}"
